"""Token id -> exact bytes, for every tokenizer family, plus the byte trie the index walks.

The engine constrains *bytes*, never decoded text: a token may carry half of a multi-byte character, and a
SentencePiece ``▁`` is really a space. So a tokenizer is reduced, once, to the bytes each token contributes
to the output. Special and control tokens (BOS, EOS, chat markers, ``<unk>``) get ``None``: they are never
content, and EOS is handled separately by the index.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from . import text_runs
from .arrays import concatenated_ranges
from .errors import VocabularyError
from .text_runs import TextRun

_BYTE_FALLBACK = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
_SPIECE_SPACE = "\u2581"


@functools.lru_cache(maxsize=1)
def _gpt2_unicode_to_byte() -> dict[str, int]:
    """Inverse of GPT-2's byte -> printable-character map used by byte-level BPE vocabularies."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    mapping = {}
    extra = 0
    for byte in range(256):
        if byte in printable:
            mapping[chr(byte)] = byte
        else:
            mapping[chr(256 + extra)] = byte
            extra += 1
    return mapping


@dataclass(frozen=True, eq=False)
class TokenTrie:
    """The vocabulary's token bytes as a trie in breadth-first order.

    Children of a node are contiguous (``child_start[n]`` .. ``+ child_count[n]``) and sorted by byte, so a
    whole frontier of nodes can be expanded with a few numpy operations. Tokens ending at node ``n`` are
    ``token_ids[token_start[n]:token_start[n + 1]]`` (several ids may share the same bytes).
    """

    node_byte: np.ndarray
    child_start: np.ndarray
    child_count: np.ndarray
    token_start: np.ndarray
    token_ids: np.ndarray

    @property
    def num_nodes(self) -> int:
        return int(self.node_byte.shape[0])

    @functools.cached_property
    def root_child(self) -> np.ndarray:
        """The root's child node for each first byte (0 where no token starts with it)."""
        children = np.arange(self.child_start[0], self.child_start[0] + self.child_count[0])
        child = np.zeros(256, dtype=np.int64)
        child[self.node_byte[children]] = children
        return child

    @functools.cached_property
    def single_byte_tokens(self) -> np.ndarray:
        """Per byte value: some token is that byte alone (read-only; ``Index._check_no_dead_ends``'s test)."""
        children = np.arange(self.child_start[0], self.child_start[0] + self.child_count[0])
        has_token = self.token_start[children + 1] > self.token_start[children]
        single = np.zeros(256, dtype=bool)
        single[self.node_byte[children[has_token]]] = True
        single.setflags(write=False)
        return single

    @functools.cached_property
    def third_level_counts(self) -> np.ndarray:
        """``[b1, b2]``: how many tokens' prefixes of three bytes start with ``b1 b2`` (the children of that
        second-level node), as float32 for the lookahead's cost estimate (``lookahead.third_level_estimate``'s
        products; exact, every count is below 2**24)."""
        parents = self.root_child[self.root_child != 0]
        children = self.child_count[parents]
        first = np.repeat(self.node_byte[parents], children)
        second = concatenated_ranges(self.child_start[parents], children, int(children.sum()))
        counts = np.zeros((256, 256))
        np.add.at(counts, (first, self.node_byte[second]), self.child_count[second])
        counts = counts.astype(np.float32)
        counts.setflags(write=False)
        return counts


class Vocabulary:
    """The bytes of each token of a tokenizer, and which ids end a sequence.

    Parameters
    ----------
    tokens:
        ``tokens[i]`` is the exact bytes token ``i`` adds to the output, or ``None`` for tokens that are
        never content (special, control and unused tokens).
    eos_token_ids:
        Ids that end generation; allowed exactly where the constraint can end.
    size:
        Width of the model's logits (defaults to ``len(tokens)``); ids beyond ``tokens`` are never allowed.
    """

    def __init__(
        self,
        tokens: Sequence[bytes | None],
        eos_token_ids: Iterable[int],
        *,
        size: int | None = None,
    ) -> None:
        normalized: list[bytes | None] = []
        for token_id, token in enumerate(tokens):
            if token is None or token == b"":
                normalized.append(None)  # an empty token would let generation stall without progress
            elif isinstance(token, (bytes, bytearray)):
                normalized.append(bytes(token))
            else:
                raise VocabularyError(f"token {token_id} must be bytes or None, got {type(token).__name__}")
        self._tokens = normalized
        self.size = len(normalized) if size is None else int(size)
        if self.size < len(normalized):
            raise VocabularyError(f"size {self.size} is smaller than the number of tokens {len(normalized)}")
        eos = tuple(sorted({int(i) for i in eos_token_ids}))
        for token_id in eos:
            if not 0 <= token_id < self.size:
                raise VocabularyError(f"EOS id {token_id} is outside the vocabulary (size {self.size})")
        self.eos_token_ids = eos
        # EOS ids are never content even if a tokenizer gives them text.
        for token_id in eos:
            if token_id < len(self._tokens):
                self._tokens[token_id] = None
        self._trie: TokenTrie | None = None
        self._fingerprint: str | None = None
        self._token_table: TokenTable | None = None
        self._eos_bitmask: np.ndarray | None = None

    # -- basic queries -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        content = sum(token is not None for token in self._tokens)
        return f"Vocabulary(size={self.size}, content_tokens={content}, eos_token_ids={self.eos_token_ids})"

    @property
    def tokens(self) -> list[bytes | None]:
        return list(self._tokens)

    @property
    def token_list(self) -> list[bytes | None]:
        """The tokens' bytes by id (``None``: special), the vocabulary's own list: read it, do not change it
        (``tokens`` is a copy). Its length may be below ``size``: ids past it have no bytes."""
        return self._tokens

    def token_bytes(self, token_id: int) -> bytes | None:
        """The bytes of ``token_id`` (``None`` for special tokens and ids beyond the tokenizer)."""
        if 0 <= token_id < len(self._tokens):
            return self._tokens[token_id]
        return None

    def decode(self, token_ids: Iterable[int]) -> bytes:
        """Concatenated bytes of ``token_ids``; special tokens (EOS included) contribute nothing."""
        tokens = self._tokens
        limit = len(tokens)
        return b"".join(tokens[i] or b"" for i in map(int, token_ids) if 0 <= i < limit)

    @property
    def fingerprint(self) -> str:
        """A stable hash of the tokens, EOS ids and size: the cache key of anything built from them."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            digest.update(f"{self.size}|{self.eos_token_ids}|".encode())
            for token in self._tokens:
                digest.update(b"\x00" if token is None else b"\x01" + len(token).to_bytes(4, "little") + token)
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    @property
    def eos_bitmask(self) -> np.ndarray:
        """The packed bitmask (int32 words, bit ``t % 32`` of word ``t // 32``, read-only) with only the EOS
        ids set: every index ORs it into its accepting states' masks, so it is made once."""
        if self._eos_bitmask is None:
            ids = np.array(self.eos_token_ids, dtype=np.int64)
            words = np.zeros((self.size + 31) // 32, dtype=np.uint32)
            np.bitwise_or.at(words, ids >> 5, np.left_shift(np.uint32(1), (ids & 31).astype(np.uint32)))
            mask = words.view(np.int32)
            mask.setflags(write=False)
            self._eos_bitmask = mask
        return self._eos_bitmask

    def prepare(self) -> "Vocabulary":
        """Build now the tables every index over this vocabulary reads, which are otherwise built on first use,
        inside the first request: the byte trie, the token table (with the text run of a JSON string's
        characters, which every JSON Schema with a string asks for), the EOS bitmask and the fingerprint
        (the cache key). About half a second on a 128k vocabulary, once; the steerable backends call it when
        they wrap a model, as the other engines preprocess a tokenizer at load time. Returns ``self``."""
        self.trie
        self.token_table.text_run(text_runs.JSON_STRING_TEXT, characters=True)
        self.eos_bitmask
        self.fingerprint
        return self

    # -- the trie ----------------------------------------------------------------------------------
    @property
    def trie(self) -> TokenTrie:
        """The byte trie of all content tokens, built on first use and kept for the vocabulary's life."""
        if self._trie is None:
            trie = _build_trie(self._tokens)
            trie.third_level_counts  # with the trie, not in the first Index built on it
            trie.single_byte_tokens
            self._trie = trie
        return self._trie

    @property
    def token_table(self) -> "TokenTable":
        """The content tokens as flat arrays (longest first), built on first use and kept."""
        if self._token_table is None:
            table = _token_table(self._tokens)
            # Made with the table (5 ms on a 128k vocabulary), not in the first loop walk of a process's first
            # request: every loop walk reads it; likewise the length order every index's mask classes read.
            table.first_byte_order
            table.by_length
            self._token_table = table
        return self._token_table

    def longest_token_within(self, byte_allowed: np.ndarray) -> int:
        """Length of the longest content token whose bytes are all in ``byte_allowed`` (256 bools)
        (``TokenTable.longest_within``)."""
        return self.token_table.longest_within(byte_allowed)

    # -- construction from tokenizers --------------------------------------------------------------
    @classmethod
    def from_transformers(
        cls,
        tokenizer,
        *,
        eos_token_ids: Iterable[int] | None = None,
        size: int | None = None,
    ) -> "Vocabulary":
        """Build the vocabulary of a Hugging Face tokenizer.

        Handles byte-level BPE (GPT-2, Llama 3, Qwen2: the ``Ġ``/``Ċ`` byte map), SentencePiece-style BPE
        (``▁`` for space, ``<0xNN>`` byte-fallback tokens) and added tokens (special ones are not content;
        the others contribute their literal text). ``eos_token_ids`` defaults to the tokenizer's EOS.

        Raises
        ------
        VocabularyError
            For a tokenizer whose token-to-bytes mapping the engine does not know (e.g. WordPiece).
        """
        vocab: dict[str, int] = tokenizer.get_vocab()
        added = dict(getattr(tokenizer, "added_tokens_decoder", {}) or {})
        special_ids = {int(i) for i in getattr(tokenizer, "all_special_ids", []) or []}
        scheme = _decoding_scheme(tokenizer)
        n_tokens = max(max(vocab.values(), default=-1), max(added, default=-1)) + 1
        tokens: list[bytes | None] = [None] * n_tokens
        for text, token_id in vocab.items():
            if token_id in added or token_id in special_ids:
                continue
            tokens[token_id] = _token_to_bytes(text, scheme)
        for token_id, added_token in added.items():
            if getattr(added_token, "special", False) or token_id in special_ids:
                continue
            content = getattr(added_token, "content", str(added_token))
            tokens[token_id] = content.encode("utf-8")
        if eos_token_ids is None:
            eos = getattr(tokenizer, "eos_token_id", None)
            if eos is None:
                raise VocabularyError("the tokenizer has no eos_token_id; pass eos_token_ids explicitly")
            eos_token_ids = [eos]
        return cls(tokens, eos_token_ids, size=size if size is not None else max(n_tokens, len(tokenizer)))


def _decoding_scheme(tokenizer) -> str:
    """How token strings map to bytes: 'byte_level', 'sentencepiece' or 'raw'."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        # Slow tokenizers: SentencePiece-based ones expose sp_model; anything else is unknown.
        if hasattr(tokenizer, "sp_model"):
            return "sentencepiece"
        raise VocabularyError(
            f"cannot derive token bytes from a slow tokenizer of type {type(tokenizer).__name__}; "
            "load it with use_fast=True"
        )
    # The decoder's own JSON: serializing the whole tokenizer (``to_str``) costs half a second on 128k
    # vocabularies.
    decoder_component = backend.decoder
    decoder = json.loads(decoder_component.__getstate__()) if decoder_component is not None else None
    kinds = _decoder_kinds(decoder)
    if "ByteLevel" in kinds:
        return "byte_level"
    if kinds & {"ByteFallback", "Metaspace"} or (
        "Replace" in kinds and _SPIECE_SPACE in json.dumps(decoder, ensure_ascii=False)
    ):
        return "sentencepiece"
    if not kinds:
        return "raw"
    raise VocabularyError(
        f"unsupported tokenizer decoder {sorted(kinds)}: the engine needs byte-level BPE, SentencePiece "
        "or plain-text tokens to know each token's exact bytes"
    )


def _decoder_kinds(decoder) -> set[str]:
    if not decoder:
        return set()
    kinds = {decoder.get("type", "")}
    for child in decoder.get("decoders", []) or []:
        kinds |= _decoder_kinds(child)
    return kinds


def _token_to_bytes(text: str, scheme: str) -> bytes | None:
    if scheme == "byte_level":
        table = _gpt2_unicode_to_byte()
        try:
            return bytes(table[char] for char in text)
        except KeyError:
            return text.encode("utf-8")  # not byte-mapped: a literal added piece
    if scheme == "sentencepiece":
        match = _BYTE_FALLBACK.match(text)
        if match:
            return bytes([int(match.group(1), 16)])
        return text.replace(_SPIECE_SPACE, " ").encode("utf-8")
    return text.encode("utf-8")


_ALL_BITS = (1 << 64) - 1
#: ``TokenTable.char_counts`` of a token that is not UTF-8 text.
NOT_TEXT = np.iinfo(np.int16).max


@dataclass(frozen=True, eq=False)
class TokenTable:
    """Every token in id order (special tokens are empty rows that ``content`` marks False): ``lengths``,
    their bytes concatenated in ``flat`` (token ``t`` is ``flat[offsets[t]:offsets[t] + lengths[t]]``), and
    the set of bytes each uses as a 256-bit bitmap stored column-wise (``byte_sets``: 4 rows of uint64, one
    per 64 byte values) so testing every token against a byte set is 4 vector operations. Id order lets a
    per-token result pack straight into a token bitmask."""

    lengths: np.ndarray  # int16 unless some token has 32k bytes or more
    offsets: np.ndarray
    flat: np.ndarray
    byte_sets: np.ndarray  # special tokens: every bit set, so they fit no byte set short of all 256
    content: np.ndarray  # bool: the token has bytes (special tokens do not)
    first_bytes: np.ndarray  # each token's first byte (0 for special tokens)
    first_byte_counts: np.ndarray  # how many content tokens start with each byte value (256)
    #: Characters per token (int16), a trailing incomplete character counted as one; ``NOT_TEXT`` for
    #: special tokens and tokens that are not UTF-8 text from their first byte (a stray continuation byte,
    #: an invalid or overlong sequence), so one ``char_counts <= n`` test also drops them.
    char_counts: np.ndarray
    longest: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "_runs", {})
        object.__setattr__(self, "_within_counts", {})
        object.__setattr__(self, "_longest_within", {})  # ``longest_within`` per byte set
        object.__setattr__(self, "_short_words", {})
        object.__setattr__(self, "_longer_than", {})
        object.__setattr__(self, "_runs_lock", threading.Lock())

    def within(self, byte_allowed: np.ndarray) -> np.ndarray:
        """Bool per token (id order): a content token whose bytes are all in ``byte_allowed`` (256 bools)."""
        forbidden = np.packbits(~np.asarray(byte_allowed, dtype=bool), bitorder="little").view("<u8")
        if not forbidden.any():
            return self.content.copy()
        sets = self.byte_sets
        clash = (sets[0] & forbidden[0]) | (sets[1] & forbidden[1])
        high = int(forbidden[2]), int(forbidden[3])
        if high == (0, 0):  # every non-ASCII byte allowed: only the ASCII half can clash
            return clash == 0
        if high == (_ALL_BITS, _ALL_BITS):  # none allowed: tokens with any non-ASCII byte clash
            return (clash == 0) & self.ascii_only
        clash |= (sets[2] & forbidden[2]) | (sets[3] & forbidden[3])
        return clash == 0

    def count_within(self, byte_allowed: np.ndarray) -> int:
        """How many content tokens ``within(byte_allowed)`` holds: computed once per byte set and kept (the
        loop walk asks it of the same few sets, a hex digit's or an e-mail label's, in every index)."""
        return self._kept_per_byte_set(
            self._within_counts, byte_allowed, lambda: int(np.count_nonzero(self.within(byte_allowed)))
        )

    def longest_within(self, byte_allowed: np.ndarray) -> int:
        """Length of the longest content token whose bytes are all in ``byte_allowed`` (256 bools): computed
        once per byte set and kept, like ``count_within`` (a number's digits scan most of a 128k vocabulary
        before a fit, 0.1 ms of its 1 ms compile)."""
        return self._kept_per_byte_set(
            self._longest_within, byte_allowed, lambda: self._first_fit_length(byte_allowed)
        )

    def _kept_per_byte_set(self, memo: dict, byte_allowed: np.ndarray, compute) -> int:
        """``memo``'s answer for the byte set ``byte_allowed``, made by ``compute()`` when it has none; at
        most ``MAX_WITHIN_COUNTS`` are kept, the oldest dropped first."""
        key = np.packbits(np.asarray(byte_allowed, dtype=bool)).tobytes()
        answer = memo.get(key)
        if answer is None:
            answer = compute()
            with self._runs_lock:
                while len(memo) >= MAX_WITHIN_COUNTS:
                    memo.pop(next(iter(memo)))
                memo[key] = answer
        return answer

    def _first_fit_length(self, byte_allowed: np.ndarray) -> int:
        lengths, ids = self.by_length
        forbidden = np.packbits(~np.asarray(byte_allowed, dtype=bool), bitorder="little").view("<u8")
        # Longest first: on the five test vocabularies a regex's first fit is among the first 130 tokens, so
        # the chunks grow from 256 (a tenth of the time of one 8192 chunk) to 8192.
        begin, chunk = 0, 256
        while begin < len(lengths):
            block = self.byte_sets[:, ids[begin : begin + chunk]]
            clash = (block[0] & forbidden[0]) | (block[1] & forbidden[1])
            clash |= (block[2] & forbidden[2]) | (block[3] & forbidden[3])
            fits = np.flatnonzero(clash == 0)
            if fits.size:
                return int(lengths[begin + fits[0]])
            begin, chunk = begin + chunk, min(chunk * 8, 8192)
        return 0

    def short_words(self, length: int, num_words: int) -> np.ndarray:
        """The packed bitmask (``num_words`` int32 words, read-only) of the tokens of at most ``length``
        bytes, special tokens included (they have none): where two states agree on every such token, a loop
        walk takes these bits from one state's mask for the other. Kept per length (a handful are asked)."""
        key = (length, num_words)
        words = self._short_words.get(key)
        if words is None:
            short = np.zeros(num_words * 32, dtype=bool)
            short[: self.lengths.size] = self.lengths <= length
            words = np.packbits(short, bitorder="little").view("<i4").astype(np.int32, copy=False)
            words.setflags(write=False)
            with self._runs_lock:
                self._short_words[key] = words
        return words

    def longer_than(self, length: int) -> np.ndarray:
        """The ids of the tokens of more than ``length`` bytes (read-only): the ones a loop walk decides
        itself when an alike state's mask gives it the shorter ones. Kept per length (a handful are asked)."""
        ids = self._longer_than.get(length)
        if ids is None:
            ids = np.flatnonzero(self.lengths > length)
            ids.setflags(write=False)
            with self._runs_lock:
                self._longer_than[length] = ids
        return ids

    @functools.cached_property
    def utf8_text(self) -> np.ndarray:
        """Per token: its bytes are UTF-8 text (a cut last character allowed), so ``char_counts`` counts it."""
        return self.char_counts != NOT_TEXT

    @functools.cached_property
    def num_content(self) -> int:
        return int(np.count_nonzero(self.content))

    @functools.cached_property
    def ascii_only(self) -> np.ndarray:
        return (self.byte_sets[2] | self.byte_sets[3]) == 0

    @functools.cached_property
    def by_first_byte(self) -> np.ndarray:
        """Content token ids ordered by first byte (stable)."""
        order = np.argsort(self.first_bytes.astype(np.uint8), kind="stable")
        return order[self.content[order]]

    @functools.cached_property
    def first_byte_order(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The content tokens' bytes in ``by_first_byte``'s order, one after the other: (data, offsets with
        one entry more than the tokens, each token id's place in that order or -1). The loop walk reads a
        text run's tokens by first byte (``TextRun.lead_positions``): by token id, those starting with one
        byte lie all over the vocabulary's bytes, a cache miss each. Made with the table (``Vocabulary.token_table``,
        1 MB)."""
        order = self.by_first_byte
        lengths = self.lengths[order].astype(np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        data = self.flat[np.repeat(self.offsets[order] - offsets[:-1], lengths) + np.arange(offsets[-1])]
        place = np.full(self.content.size, -1, dtype=np.int32)
        place[order] = np.arange(order.size, dtype=np.int32)
        for array in (data, offsets, place):
            array.setflags(write=False)
        return data, offsets, place

    @functools.cached_property
    def by_length(self) -> tuple[np.ndarray, np.ndarray]:
        """(lengths, ids) of the content tokens, longest first: a search for the longest token of some kind
        stops at its first hit. Ids, not the byte sets in that order: the search reads a few hundred tokens'
        sets, where gathering all of them cost 3 ms of a process's first request on a 128k vocabulary."""
        order = np.argsort(-self.lengths, kind="stable")
        order = order[self.content[order]]
        return self.lengths[order], order

    def text_run(self, text_bytes: np.ndarray, characters: bool) -> TextRun:
        """The tokens of a text byte set, for the index's loop walk: computed once per (vocabulary, byte
        set) and kept, because the same few sets (a JSON string's characters, a sentence's letters) recur
        across states and constraints. At most ``MAX_TEXT_RUNS`` are kept, the oldest dropped first."""
        key = (np.packbits(text_bytes).tobytes(), characters)
        run = self._runs.get(key)
        if run is None:
            run = text_runs.build(self, np.asarray(text_bytes, dtype=bool), characters)
            with self._runs_lock:
                while len(self._runs) >= MAX_TEXT_RUNS:
                    self._runs.pop(next(iter(self._runs)))
                self._runs[key] = run
        return run


#: Byte sets whose ``TextRun`` one vocabulary keeps (each costs a few bytes per token).
MAX_TEXT_RUNS = 32

#: Byte sets whose ``count_within`` and ``longest_within`` one vocabulary keeps (an integer each).
MAX_WITHIN_COUNTS = 256


def _token_table(tokens: Sequence[bytes | None]) -> TokenTable:
    data = [token or b"" for token in tokens]
    content = np.fromiter((bool(token) for token in data), dtype=bool, count=len(data))
    lengths = np.fromiter((len(token) for token in data), dtype=np.int64, count=len(data))
    flat = np.frombuffer(b"".join(data), dtype=np.uint8)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if len(data) else lengths
    owner = np.repeat(np.arange(len(data)), lengths)
    present = np.zeros((len(data), 256), dtype=bool)
    present[owner, flat] = True
    present[~content] = True
    byte_sets = np.packbits(present, axis=1, bitorder="little").view("<u8")
    first_bytes = np.zeros(len(data), dtype=np.intp)  # intp: fast gathers
    first_bytes[content] = flat[offsets[content]]
    first_byte_counts = np.bincount(first_bytes[content], minlength=256)
    char_counts = np.fromiter((_utf8_char_count(token) if token else -1 for token in data), dtype=np.int64, count=len(data))
    char_counts = np.where(char_counts < 0, NOT_TEXT, np.minimum(char_counts, NOT_TEXT - 1)).astype(np.int16)
    longest = int(lengths.max()) if lengths.size else 0
    # Narrow lengths: a loop walk compares all of them on a first visit, which a decode makes with its
    # caches cold (the model ran in between): 1 MB of int64 for 128k tokens cost a tenth of such a walk.
    narrow = np.int16 if longest < 2**15 else np.int64
    return TokenTable(
        lengths.astype(narrow), offsets, flat, np.ascontiguousarray(byte_sets.T), content, first_bytes,
        first_byte_counts, char_counts, longest,
    )


def _utf8_char_count(token: bytes) -> int:
    """Characters in ``token`` read as UTF-8 (an incomplete last character that some bytes can still
    complete counts as one), or -1 when it is not UTF-8 text from its first byte."""
    if token.isascii():
        return len(token)
    for cut in range(0, min(3, len(token)) + 1):
        head, tail = token[: len(token) - cut], token[len(token) - cut :]
        try:
            count = len(head.decode("utf-8"))
        except UnicodeDecodeError:
            continue
        if not tail:
            return count
        return count + 1 if _completable(tail) else -1
    return -1


def _completable(prefix: bytes) -> bool:
    """Whether ``prefix`` is a proper start of some valid UTF-8 character."""
    lead = prefix[0]
    need = 2 if 0xC2 <= lead <= 0xDF else 3 if 0xE0 <= lead <= 0xEF else 4 if 0xF0 <= lead <= 0xF4 else 0
    if len(prefix) >= need:
        return False
    # Only the second byte has lead-dependent bounds (E0, ED, F0, F4); the rest are any continuation byte.
    seconds = (b"\x80", b"\x90", b"\xa0") if len(prefix) == 1 else (b"",)
    for second in seconds:
        candidate = prefix + second
        try:
            (candidate + b"\x80" * (need - len(candidate))).decode("utf-8")
            return True
        except UnicodeDecodeError:
            pass
    return False


def _build_trie(tokens: Sequence[bytes | None]) -> TokenTrie:
    """Breadth-first trie: level ``d`` holds the sorted distinct ``d``-byte prefixes of the tokens.

    Built from the tokens in sorted order without a Python loop over nodes: token ``i`` (sorted) adds the
    nodes of its prefixes longer than its common prefix with token ``i - 1``, so a node is (depth, the
    first sorted token that has it), and breadth-first order is the order of those pairs.
    """
    content_ids = [token_id for token_id, token in enumerate(tokens) if token]
    if not content_ids:
        nothing = np.zeros(1, dtype=np.int64)
        return TokenTrie(np.zeros(1, dtype=np.int32), nothing, nothing.copy(), np.zeros(2, dtype=np.int64), np.zeros(0, dtype=np.int32))
    order = sorted(content_ids, key=tokens.__getitem__)
    sorted_ids = np.array(order, dtype=np.int64)
    lengths = np.array([len(tokens[token_id]) for token_id in order], dtype=np.int64)
    flat = np.frombuffer(b"".join(tokens[token_id] for token_id in order), dtype=np.uint8)
    count, width = len(order), int(lengths.max())
    rows = np.repeat(np.arange(count), lengths)
    starts = np.cumsum(lengths) - lengths
    padded = np.zeros((count, width), dtype=np.uint8)
    padded[rows, np.arange(flat.size) - starts[rows]] = flat
    # Common prefix with the previous sorted token (padding may compare equal: clip to both lengths).
    differs = padded[1:] != padded[:-1]
    first_difference = np.where(differs.any(axis=1), differs.argmax(axis=1), width)
    common = np.zeros(count, dtype=np.int64)
    common[1:] = np.minimum(first_difference, np.minimum(lengths[1:], lengths[:-1]))
    # The token that created the node of token i's first `common[i]` bytes: the last earlier token whose
    # common prefix with its predecessor is shorter.
    creator = np.arange(count)
    for depth in np.unique(common[common > 0]).tolist():
        at = np.flatnonzero(common == depth)
        shorter = np.flatnonzero(common < depth)
        creator[at] = shorter[np.searchsorted(shorter, at) - 1]
    new_counts = lengths - common  # nodes token i adds: depths common[i] + 1 .. lengths[i]
    first_new = np.cumsum(new_counts) - new_counts  # where token i's nodes start, in creation order
    total = int(new_counts.sum())
    node_token = np.repeat(np.arange(count), new_counts)
    node_depth = np.arange(total) - np.repeat(first_new, new_counts) + np.repeat(common, new_counts) + 1
    breadth_first = np.lexsort((node_token, node_depth))
    node_id = np.empty(total, dtype=np.int64)
    node_id[breadth_first] = np.arange(1, total + 1)

    def node_at(depth: np.ndarray, token: np.ndarray) -> np.ndarray:  # node of a created (depth, token)
        return node_id[first_new[token] + depth - common[token] - 1]

    # A node's parent is the same token's previous node, or for its first node the creator's node.
    parent = np.zeros(total, dtype=np.int64)
    inner = node_depth > np.repeat(common, new_counts) + 1
    parent[inner] = node_id[np.flatnonzero(inner) - 1]
    with_prefix = np.flatnonzero((new_counts > 0) & (common > 0))
    parent[first_new[with_prefix]] = node_at(common[with_prefix], creator[with_prefix])
    n_nodes = total + 1
    parent_bfs = parent[breadth_first]  # non-decreasing: children of a node are contiguous
    child_count = np.bincount(parent_bfs, minlength=n_nodes).astype(np.int64)
    child_start = np.where(child_count > 0, np.searchsorted(parent_bfs, np.arange(n_nodes)) + 1, 0)
    node_byte = np.zeros(n_nodes, dtype=np.int32)
    node_byte[node_id] = padded[node_token, node_depth - 1]
    # Each token ends at its last node, or at its creator's node of the same depth (equal bytes).
    owner = np.where(common < lengths, np.arange(count), creator)
    token_node = node_at(lengths, owner)
    by_node = np.lexsort((sorted_ids, token_node))
    token_start = np.searchsorted(token_node[by_node], np.arange(n_nodes + 1)).astype(np.int64)
    return TokenTrie(
        node_byte=node_byte,
        child_start=child_start.astype(np.int64),
        child_count=child_count,
        token_start=token_start,
        token_ids=sorted_ids[by_node].astype(np.int32),
    )
