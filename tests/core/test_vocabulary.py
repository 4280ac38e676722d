"""Vocabulary: every token maps to the exact bytes it adds to the output, for every tokenizer family."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import TOKENIZER_NAMES, load_encoder_without_dummy_prefix, load_hf_tokenizer, load_vocabulary
from outlines_core import Vocabulary
from outlines_core.errors import VocabularyError

TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")) | st.sampled_from("\n\t  "),
    max_size=40,
)


@pytest.mark.parametrize("name", TOKENIZER_NAMES)
@settings(max_examples=60, deadline=None)
@given(text=TEXT)
def test_concatenated_token_bytes_reproduce_the_text(name, text):
    encoder = load_encoder_without_dummy_prefix(name)
    vocabulary = load_vocabulary(name)
    ids = encoder.encode(text, add_special_tokens=False).ids
    decoded = vocabulary.decode(ids)
    if name == "phi-3" or name == "llama-spm":
        # SentencePiece maps characters it cannot spell to <unk> unless byte fallback covers them.
        unk = load_hf_tokenizer(name).unk_token_id
        if unk in ids:
            return
        # SentencePiece writes spaces as U+2581 ('▁'), so a literal '▁' in the text is a space to it: the
        # tokenizer's own decode gives a space too. No token sequence can spell a literal '▁'.
        text = text.replace("\u2581", " ")
    assert decoded == text.encode("utf-8")


def test_special_tokens_are_not_content_and_eos_is_known(vocabulary, hf_tokenizer):
    for token_id in hf_tokenizer.all_special_ids:
        assert vocabulary.token_bytes(token_id) is None
    assert hf_tokenizer.eos_token_id in vocabulary.eos_token_ids
    assert vocabulary.size >= len(hf_tokenizer)


def test_byte_level_and_sentencepiece_specifics():
    gpt2 = load_vocabulary("gpt-2")
    tokenizer = load_hf_tokenizer("gpt-2")
    assert gpt2.token_bytes(tokenizer.convert_tokens_to_ids("Ġthe")) == b" the"
    assert gpt2.token_bytes(tokenizer.convert_tokens_to_ids("Ċ")) == b"\n"
    spm = load_vocabulary("llama-spm")
    spm_tokenizer = load_hf_tokenizer("llama-spm")
    assert spm.token_bytes(spm_tokenizer.convert_tokens_to_ids("<0x0A>")) == b"\n"
    assert spm.token_bytes(spm_tokenizer.convert_tokens_to_ids("<0xE6>")) == b"\xe6"
    assert spm.token_bytes(spm_tokenizer.convert_tokens_to_ids("▁the")) == b" the"


def test_every_byte_is_spellable_by_a_single_token(vocabulary):
    singles = {vocabulary.token_bytes(i) for i in range(vocabulary.size)}
    # Byte-level BPE and byte fallback both cover all 256 bytes... except bytes a byte-level vocabulary
    # never needs; all five shared tokenizers cover every byte.
    assert all(bytes([b]) in singles for b in range(256))


def test_added_non_special_tokens_are_literal_text():
    qwen = load_hf_tokenizer("qwen2")
    vocabulary = load_vocabulary("qwen2")
    added = [(i, t) for i, t in qwen.added_tokens_decoder.items() if not t.special]
    assert added, "qwen2 is expected to carry non-special added tokens"
    for token_id, token in added[:20]:
        assert vocabulary.token_bytes(token_id) == token.content.encode()


def test_trie_contains_every_token_exactly_once(vocabulary):
    trie = vocabulary.trie
    assert sorted(trie.token_ids.tolist()) == [i for i in range(vocabulary.size) if vocabulary.token_bytes(i)]
    # Children are contiguous and sorted by byte.
    for node in [0, 1, 2, trie.num_nodes // 2]:
        start, count = trie.child_start[node], trie.child_count[node]
        children_bytes = trie.node_byte[start : start + count]
        assert list(children_bytes) == sorted(set(children_bytes.tolist()))


def assert_trie_is_the_breadth_first_prefix_trie(tokens):
    """The trie, rebuilt node by node into {prefix: node}, is exactly the breadth-first trie of the
    tokens' distinct prefixes (sorted within a level), with every token at the node of its bytes."""
    from outlines_core.vocabulary import _build_trie

    trie = _build_trie(tokens)
    content = {t for t in tokens if t}
    prefixes = sorted({t[:d] for t in content for d in range(1, len(t) + 1)}, key=lambda p: (len(p), p))
    assert trie.num_nodes == len(prefixes) + 1
    prefix_of = {0: b""}
    for node in range(trie.num_nodes):
        start, count = int(trie.child_start[node]), int(trie.child_count[node])
        for child in range(start, start + count):
            prefix_of[child] = prefix_of[node] + bytes([int(trie.node_byte[child])])
    assert [prefix_of[n] for n in range(1, trie.num_nodes)] == prefixes
    ids_of: dict[bytes, list[int]] = {}
    for token_id, token in enumerate(tokens):
        if token:
            ids_of.setdefault(token, []).append(token_id)
    for node in range(trie.num_nodes):
        ids = trie.token_ids[trie.token_start[node] : trie.token_start[node + 1]].tolist()
        assert ids == ids_of.get(prefix_of[node], [])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.binary(max_size=6, min_size=0).map(lambda b: b.replace(b"\x03", b"\x00"))), max_size=40))
def test_trie_of_any_vocabulary_is_its_prefix_trie(tokens):
    assert_trie_is_the_breadth_first_prefix_trie(tokens)


def test_trie_keeps_tokens_apart_that_differ_by_trailing_zero_bytes():
    # Sorted neighbours where one is the other plus NUL bytes compare equal once zero-padded.
    assert_trie_is_the_breadth_first_prefix_trie([b"a", b"a\x00", b"a\x00\x00", b"\x00", b"ab", b"ab", None, b"b\x00a", b"b"])


@pytest.mark.parametrize("name", ["gpt-2", "llama-spm"])
def test_trie_of_a_real_vocabulary_is_its_prefix_trie(name):
    vocabulary = load_vocabulary(name)
    assert_trie_is_the_breadth_first_prefix_trie([vocabulary.token_bytes(i) for i in range(vocabulary.size)])


def test_handmade_vocabulary_validation():
    with pytest.raises(VocabularyError, match="must be bytes or None"):
        Vocabulary(["a"], [0])  # type: ignore[list-item]
    with pytest.raises(VocabularyError, match="outside the vocabulary"):
        Vocabulary([b"a", b"b"], [5])
    with pytest.raises(VocabularyError, match="smaller than the number of tokens"):
        Vocabulary([b"a", b"b"], [], size=1)
    vocabulary = Vocabulary([b"a", b"", None, b"eos-text"], [3], size=40)
    assert vocabulary.token_bytes(1) is None  # empty tokens can never make progress
    assert vocabulary.token_bytes(3) is None  # EOS is never content
    assert vocabulary.decode([0, 2, 3, 0, 39]) == b"aa"
    assert len(vocabulary) == 40
    assert vocabulary.fingerprint != Vocabulary([b"a"], [0], size=40).fingerprint


def test_unsupported_tokenizer_family_is_refused():
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import decoders, models

    backend = tokenizers.Tokenizer(models.WordPiece({"[UNK]": 0, "a": 1, "##b": 2}, unk_token="[UNK]"))
    backend.decoder = decoders.WordPiece()
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", eos_token="[UNK]")
    with pytest.raises(VocabularyError, match="unsupported tokenizer decoder"):
        Vocabulary.from_transformers(tokenizer)


@pytest.mark.parametrize("name", ["gpt-2", "llama-spm"])
def test_counts_of_tokens_within_a_byte_set_match_the_tokens(name):
    table = load_vocabulary(name).token_table
    hex_digits = np.zeros(256, dtype=bool)
    hex_digits[list(b"0123456789abcdefABCDEF")] = True
    ascii_letters = np.zeros(256, dtype=bool)
    ascii_letters[list(b"abcdefghijklmnopqrstuvwxyz")] = True
    for byte_set in (hex_digits, ascii_letters, ~hex_digits, np.ones(256, dtype=bool), np.zeros(256, dtype=bool)):
        expected = int(np.count_nonzero(table.within(byte_set)))
        assert table.count_within(byte_set) == expected == table.count_within(byte_set.copy())  # kept
    assert 0 < table.count_within(hex_digits) < table.count_within(~hex_digits)


@pytest.mark.parametrize("name", ["gpt-2", "llama-spm"])
def test_the_longest_token_within_a_byte_set_is_found_whatever_chunk_holds_it(name):
    """``longest_token_within`` scans the tokens longest first in chunks growing from 256: its answer is the
    longest token made of the set's bytes, whether that token comes first, after the first chunk or not at
    all; asked again, the answer kept for the byte set is the same."""
    vocabulary = load_vocabulary(name)
    tokens = [token for token in vocabulary.tokens if token is not None]
    rng = np.random.default_rng(7)
    byte_sets = [np.ones(256, dtype=bool), np.zeros(256, dtype=bool)]
    for chosen in (b"0123456789", b"abcdef", b"xyz", b" ", b"-=", b"Q"):
        byte_set = np.zeros(256, dtype=bool)
        byte_set[list(chosen)] = True
        byte_sets.append(byte_set)
    byte_sets += [rng.random(256) < share for share in (0.1, 0.3, 0.6)]
    for byte_set in byte_sets:
        allowed = set(np.flatnonzero(byte_set).tolist())
        expected = max((len(token) for token in tokens if set(token) <= allowed), default=0)
        assert vocabulary.longest_token_within(byte_set) == expected, sorted(allowed)[:10]
        assert vocabulary.longest_token_within(byte_set.copy()) == expected


def test_the_eos_bitmask_sets_the_eos_ids_only():
    vocabulary = Vocabulary([b"a", b"b", None] + [b"c"] * 70, eos_token_ids=[2, 40, 71])
    bits = np.unpackbits(vocabulary.eos_bitmask.view(np.uint8), bitorder="little")
    assert vocabulary.eos_bitmask.dtype == np.int32 and vocabulary.eos_bitmask.size == 3
    assert np.flatnonzero(bits).tolist() == [2, 40, 71]
    assert not vocabulary.eos_bitmask.flags.writeable


@settings(max_examples=60, deadline=None)
@given(
    tokens=st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=60),
    single=st.lists(st.booleans(), min_size=256, max_size=256),
    stepped=st.sampled_from([0, 3, 10**6]),
)
def test_leading_runs_count_the_bytes_in_the_set_from_each_start(tokens, single, stepped):
    """``_leading_runs`` (the numpy text runs' prefixes and resumes): stepped byte by byte while many runs go
    on, the rest in one pass; either way, per start, the bytes in the set up to the limit."""
    from outlines_core import text_runs

    flat = np.frombuffer(b"".join(tokens), dtype=np.uint8)
    offsets = np.cumsum([0] + [len(token) for token in tokens])[:-1]
    starts, limits, expected = [], [], []
    for offset, token in zip(offsets.tolist(), tokens):
        for skip in (0, len(token) // 2, len(token)):  # the last: an empty run at the token's end
            starts.append(offset + skip)
            limits.append(len(token) - skip)
            run = 0
            while run < len(token) - skip and single[token[skip + run]]:
                run += 1
            expected.append(run)
    arguments = (flat, np.array(single), np.array(starts, dtype=np.int64), np.array(limits, dtype=np.int64))
    saved = text_runs._RUNS_STEPPED
    text_runs._RUNS_STEPPED = stepped
    try:
        assert text_runs._leading_runs(*arguments).tolist() == expected
    finally:
        text_runs._RUNS_STEPPED = saved


_RUN_FIELDS = ("is_text", "others", "prefix", "resume", "lead_bounds", "exit_byte", "exit_bounds", "lead_positions")


def _assert_c_and_numpy_runs_equal(table, text_bytes, characters, monkeypatch):
    from outlines_core import text_runs

    built = text_runs.build(table, text_bytes, characters)
    with monkeypatch.context() as patched:
        patched.setattr(text_runs, "kernels", None)
        reference = text_runs.build(table, text_bytes, characters)
    for field in _RUN_FIELDS:
        ours, theirs = getattr(built, field), getattr(reference, field)
        assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs), field


@pytest.mark.parametrize("tokenizer", ["gpt-2", "llama-spm"])
@pytest.mark.parametrize("characters", [False, True])
def test_the_c_text_run_tables_are_the_numpy_ones_on_real_vocabularies(tokenizer, characters, monkeypatch):
    """``_native.text_run_tables`` (``text_runs.build``) against the numpy tables, field for field, on byte
    sets of the kinds that loop: a JSON string's characters, an e-mail label, a sentence's letters, random."""
    table = load_vocabulary(tokenizer).token_table
    sets = [np.array([32 <= byte < 128 and byte not in (34, 92) for byte in range(256)])]
    for text in (b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", b"abcdefghijklmnopqrstuvwxyz ,"):
        sets.append(np.isin(np.arange(256), list(text)))
    sets.append(np.random.default_rng(7).random(256) < 0.5)
    for text_bytes in sets:
        _assert_c_and_numpy_runs_equal(table, text_bytes, characters, monkeypatch)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    tokens=st.lists(st.binary(min_size=1, max_size=12), min_size=1, max_size=80),
    text=st.lists(st.booleans(), min_size=256, max_size=256),
    characters=st.booleans(),
)
def test_the_c_text_run_tables_are_the_numpy_ones_on_random_vocabularies(tokens, text, characters, monkeypatch):
    vocabulary = Vocabulary(tokens + [None], eos_token_ids=[len(tokens)])
    _assert_c_and_numpy_runs_equal(vocabulary.token_table, np.array(text), characters, monkeypatch)


def test_the_c_text_run_tables_order_prefixes_of_thousands_of_bytes(monkeypatch):
    """Prefixes of thousands of bytes (a vocabulary with long runs) are ordered as numpy orders them: by exit
    byte, the longest prefix first, then by id."""
    tokens = [b"a" * 3000 + b"b", b"ab", b"a" * 1500 + b"c", b"a" * 3000 + b"c", b"b", b"aab", b"a" * 1500 + b"b"]
    vocabulary = Vocabulary(tokens + [None], eos_token_ids=[len(tokens)])
    for characters in (False, True):
        _assert_c_and_numpy_runs_equal(vocabulary.token_table, np.isin(np.arange(256), [ord("a")]), characters, monkeypatch)


def test_the_c_text_run_tables_refuse_malformed_input():
    """Sizes that do not fit, a token outside the data, and a token marked other that is all in the set
    are ValueErrors naming the problem, not reads out of bounds."""
    from outlines_core.native import kernels

    data = np.frombuffer(b"abxab", dtype=np.uint8)
    single = np.isin(np.arange(256), list(b"ab"))

    def tables(offsets, lengths, other, count):
        outputs = [np.empty(count, dtype=np.int64) for _ in range(3)]
        bounds = [np.empty(257, dtype=np.int64), np.empty(count, dtype=np.uint8), np.empty(257, dtype=np.int64)]
        return kernels.text_run_tables(
            data, np.array(offsets, dtype=np.int64), np.array(lengths, dtype=np.int64), np.array(other, dtype=bool),
            single, np.zeros(len(offsets), dtype=np.int32), *outputs, *bounds, np.empty(count, dtype=np.int32),
        )

    assert tables([0, 2], [2, 3], [False, True], 1) == 1  # "xab" starts outside the set: one with no prefix
    with pytest.raises(ValueError, match="one entry per token marked other"):
        tables([0, 2], [2, 3], [False, True], 2)
    with pytest.raises(ValueError, match="token 1's bytes lie outside data"):
        tables([0, 4], [2, 3], [False, True], 1)
    with pytest.raises(ValueError, match="token 0 is marked other but all its bytes"):
        tables([0, 2], [2, 3], [True, True], 2)
    with pytest.raises(ValueError, match="array sizes do not fit"):
        tables([0, 2], [2], [False, True], 1)


def test_prepare_builds_the_text_run_every_json_string_asks_for():
    """``Vocabulary.prepare`` builds the text run of ``text_runs.JSON_STRING_TEXT``, and it is one an index of
    a JSON Schema with strings asks for: the constant is the byte set the string regex of
    ``outlines_core.types`` loops on."""
    from outlines_core import Index
    from outlines_core.types import json_schema_to_regex

    tokens = [bytes([byte]) for byte in range(32, 127)] + [b'"', b'":"', b'","', b"ab", b" the", "é".encode(), b"<eos>"]
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}},
        "required": ["name", "tags"],
    }
    indexed = Vocabulary(tokens, eos_token_ids=[len(tokens) - 1])
    Index(json_schema_to_regex(schema), indexed)
    prepared = Vocabulary(tokens, eos_token_ids=[len(tokens) - 1])
    assert prepared.prepare() is prepared
    assert prepared._trie is not None and prepared._fingerprint is not None
    built = set(prepared.token_table._runs)
    assert len(built) == 1 and built <= set(indexed.token_table._runs)


def test_token_lengths_are_stored_narrow_unless_a_token_is_too_long_for_it():
    """``TokenTable.lengths`` is int16 (a loop walk reads all of it on a first visit); a token of 32k
    bytes or more keeps the lengths int64, exact either way, and a loop walk over it still decides right."""
    from outlines_core import Index, Guide

    short = Vocabulary([b"a", b"ab", b"b" * 300, b"<eos>"], [3])
    assert short.token_table.lengths.dtype == np.int16
    assert short.token_table.lengths.tolist() == [1, 2, 300, 0]  # the special token has no bytes
    huge = b"a" * 40_000
    tokens = [bytes([byte]) for byte in range(256)] + [huge, b"<eos>"]
    vocabulary = Vocabulary(tokens, [257])
    table = vocabulary.token_table
    assert table.lengths.dtype == np.int64 and table.lengths[256] == 40_000 and table.longest == 40_000
    # Inside a run of letters (a loop walk's state), the 40,000-byte token of letters fits; without
    # ``a`` in the run, it does not.
    assert Guide(Index("[a-z ]*!", vocabulary)).is_allowed(256)
    guide = Guide(Index("[b-z ]*!", vocabulary))
    assert guide.is_allowed(ord("b")) and not guide.is_allowed(256)


@pytest.mark.parametrize("characters", [False, True])
def test_a_text_runs_whole_chain_is_its_text_tokens_kept_read_only_and_packed(characters):
    vocabulary = load_vocabulary("gpt-2")
    table = vocabulary.token_table
    text_bytes = np.zeros(256, dtype=bool)
    text_bytes[[*range(ord("a"), ord("z") + 1), ord(" ")]] = True
    run = table.text_run(text_bytes, characters)
    counts = table.char_counts if characters else None
    num_words = (vocabulary.size + 31) // 32
    whole = run.whole_chain(counts, table.longest, num_words)
    expected = run.is_text & (table.char_counts <= table.longest) if characters else run.is_text
    assert np.array_equal(whole.chained, expected) and whole.count == np.count_nonzero(expected) > 1000
    bits = np.unpackbits(whole.packed.view(np.uint8), bitorder="little")
    assert np.array_equal(np.flatnonzero(bits), np.flatnonzero(expected))
    assert not whole.chained.flags.writeable and not whole.packed.flags.writeable
    assert run.whole_chain(counts, table.longest, num_words) is whole  # kept with the run
