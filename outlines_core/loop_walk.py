"""Masks of permissive DFA states (inside JSON strings, free text, counted runs of characters) without a
trie walk: byte-set and character-count tests over the whole vocabulary decide most tokens at once, and
only the tokens that leave the run are walked. ``Index`` asks it first on every first visit; restrictive
states, where it returns None, get the pruning trie walk instead.
"""

from __future__ import annotations

import bisect
import functools
from typing import NamedTuple

import numpy as np

from . import config
from .arrays import concatenated_ranges
from .loop_walk_numpy import UTF8_LEADS, NumpyTokenWalk, character_targets
from .native import kernels
from .regex.dfa import DEAD, Dfa
from .vocabulary import Vocabulary

#: Up to this many DFA states, ``LoopWalk._majority_move`` weighs a row's targets with one ``np.bincount``.
_MAJORITY_BINCOUNT_STATES = 16384

#: Up to this many (state, class, class) entries (a sentence's 204 states by 6 classes: 7,344),
#: ``LoopWalk._majority_move`` makes every state's move at once when ``_MAJORITY_ONE_BY_ONE`` states were
#: asked one by one (4 us each; all of a small table cost 0.3 ms after a collection, so a constraint whose
#: few permissive states ask a handful is better served one by one).
_MAJORITY_AT_ONCE_ENTRIES = 1 << 14
_MAJORITY_ONE_BY_ONE = 32

#: ``LoopWalk._chain`` derives the chains of up to this many states ahead of the one asked (a counted
#: run's next positions) from the chain of the last, which alone is followed move by move.
_CHAINS_DERIVED_AHEAD = 32

#: An empty list of token ids (``LoopWalk._text_walk_in_c``'s counted-run tokens where there are none).
_NO_TOKENS = np.zeros(0, dtype=np.int64)


class _Chain(NamedTuple):
    """A state's chain of majority moves (``LoopWalk._chain``)."""

    #: The byte sets ``I`` as (class bit set, longest length it holds for), ``I`` shrinking.
    spans: list[tuple[int, int]]
    #: The moves ``(c(i), c(i+1))``, and the states ``c(0) .. c(L)`` they pass.
    moves: list[tuple[int, int]]
    states: list[int]
    #: How many leading moves every valid multi-byte UTF-8 character makes too (``_characters_follow_for``).
    characters_follow_for: int


def _walk_in_c() -> bool:
    """The C token walk is built and not turned off (``config.NATIVE_LOOP_WALK``)."""
    return kernels is not None and config.NATIVE_LOOP_WALK


def _int64(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.int64)


class LoopWalk:
    """The loop walk over one DFA and vocabulary, with its per-DFA memos (majority moves, chains, byte sets
    of class sets); the per-vocabulary preparation lives in ``TokenTable.text_run``, the token walk without
    the C kernels in ``loop_walk_numpy``."""

    def __init__(self, dfa: Dfa, vocabulary: Vocabulary) -> None:
        self.dfa = dfa
        self.vocabulary = vocabulary
        self.num_words = (vocabulary.size + 31) // 32
        self._class_sizes: list[int] = dfa.class_sizes.tolist()
        self._class_size_weights = np.array(self._class_sizes, dtype=np.float64)
        self._majority: dict[int, tuple[int, int]] = {}
        self._class_set_bytes: dict[int, int] = {}
        # Per state: every lead byte of a multi-byte UTF-8 character lives (``_too_few_chain``).
        self._all_leads_live = (dfa.class_transitions[:, dfa.byte_classes[UTF8_LEADS]] != DEAD).all(axis=1)
        self._character_target = self._character_targets()  # for _characters_follow_for
        self._first_byte_shares: dict[int, int] = {}
        self._within_counts: dict[int, int] = {}  # class set: the tokens made of its bytes (``_too_few_chain``)
        self._class_set_masks: dict[int, np.ndarray] = {}
        self._ascii_class_sets: dict[int, bool] = {}  # class set: its bytes are all ASCII (``_text_kind``)
        self._decided: dict[tuple[int, bool, int], tuple] = {}  # ``_decided_tokens`` per its arguments
        self._more_text: dict[tuple[int, int, bool], bool] = {}  # ``_takes_more_text`` per its arguments
        self._chains: dict[int, _Chain | None] = {}  # state: its chain (None: not a loop walk's state)
        self._numpy_walk = NumpyTokenWalk(dfa, vocabulary, self._bytes_of_classes)  # without the C kernels

    def mask(self, state: int, alike: tuple[np.ndarray, int] | None = None) -> np.ndarray | None:
        """The mask of a permissive state (inside a JSON string, free text, a counted run of characters)
        without walking the trie.

        From ``state`` follow the chain of majority moves: ``c0 = state``, ``c(i+1)`` = the target most
        bytes of ``c(i)`` lead to, and ``I(m)`` = the bytes that make each of the first ``m`` moves. A
        token of length ``m`` whose bytes are all in ``I(m)`` walks exactly that chain, so it is alive:
        a few vector operations over the vocabulary's byte sets decide all of them (a self-loop keeps
        ``I`` constant; a counted repetition keeps it until the count runs out). Only the other tokens
        (quotes, escapes, multi-byte characters...) are walked, one vectorized step per byte position.
        Returns None when few tokens qualify (restrictive states): the trie walk, which prunes dead
        prefixes, is cheaper there.

        ``alike``: the mask of a state that no string of ``length`` bytes tells apart from ``state``, and
        that length. Both allow the same tokens of up to ``length`` bytes, so only longer tokens are walked
        (the others' bits come from that mask): a counted run's next position, a second field's string.
        """
        chain = self._chain(state)
        if chain is None:
            return None
        spans = chain.spans
        table = self.vocabulary.token_table
        minimum = self._minimum_chained()
        byte_sets = [(self._bytes_of_classes(class_set), up_to) for class_set, up_to in spans]
        longer_than = 0 if alike is None else alike[1]
        # Chained tokens of any length are exact below; the short ones not walked come from ``alike``.
        short = None if alike is None else alike[0] & table.short_words(longer_than, self.num_words)
        if len(byte_sets) == 1 and _walk_in_c():
            # The tokens to walk picked by groups and walked in one C call, into the packed mask.
            packed = self._text_walk_in_c(chain, spans[0][0], spans[0][1], minimum, longer_than, short)
            if packed is None:
                return None
        else:
            alive = self._picked_then_walked(state, chain, byte_sets, minimum, longer_than)
            if alive is None:
                return None
            packed = self._packed(alive)
            if short is not None:
                packed |= short
        if self.dfa.accepting[state]:
            bits = packed.view(np.uint32)
            for eos in self.vocabulary.eos_token_ids:
                bits[eos >> 5] |= np.uint32(1 << (eos & 31))
        return packed

    def _packed(self, alive: np.ndarray) -> np.ndarray:
        """The packed mask (int32 words) of ``alive`` (bool per token)."""
        allowed = np.zeros(self.num_words * 32, dtype=bool)
        allowed[: alive.size] = alive
        return np.packbits(allowed, bitorder="little").view("<i4").astype(np.int32, copy=False)

    def takes(self, state: int) -> bool:
        """Whether ``mask(state)`` would make the mask (False: a restrictive state, for the trie walk). Kept
        per state: ``mask`` asks the same."""
        return self._chain(state) is not None

    def _picked_then_walked(
        self, state: int, chain: _Chain, byte_sets: list[tuple[np.ndarray, int]], minimum: float, longer_than: int
    ) -> np.ndarray | None:
        """The tokens alive (bool per token) where ``_text_walk_in_c`` does not apply (a narrowing chain, or no
        C kernels): picked with numpy (``_text_chain``, ``_narrowing_chain``), then walked in C
        (``walk_tokens``) or with numpy (``loop_walk_numpy``); None when too few tokens chain."""
        spans = chain.spans
        if len(byte_sets) == 1:
            walk = self._text_chain(state, chain, spans[0][0], spans[0][1], minimum, longer_than)
        else:
            walk = self._narrowing_chain(state, byte_sets, minimum, longer_than)
        if walk is None:
            return None
        alive, rest, current_states, position, remaining, chain_classes, resume = walk
        if rest.size and _walk_in_c():
            # Each token from where its run of chain bytes ends, byte by byte: no jumps or tail needed.
            kernels.walk_tokens(
                self.dfa.transitions, self.vocabulary.token_table.flat, _int64(rest), _int64(current_states),
                _int64(position), _int64(remaining), alive.view(np.uint8),
            )
        elif rest.size:
            self._numpy_walk.walk(rest, current_states, position, remaining, resume, alive, chain.states, chain_classes)
        return alive

    def _chain(self, state: int) -> _Chain | None:
        """The chain of majority moves from ``state`` (``mask``); None when the state is not one for a loop
        walk (too few bytes move alike, too few tokens chain).

        A counted run's positions each have a chain of up to a longest token's length (128 moves on
        llama-bpe), and each chain is the next position's with one move before it: followed move by move,
        they made a sentence's loop walks quadratic (half of a ``[a-z ,]{10,200}`` position's first visit).
        So the majority moves are followed at most ``_CHAINS_DERIVED_AHEAD`` states ahead, to a state
        whose chain is known or else is followed, and the chains of the states on the way are derived
        backwards, each from its successor's (``_chain_before``), and kept: the positions a decode or
        the eager pass meets next then cost a lookup."""
        known = self._chains
        if state in known:
            return known[state]
        _, moves = self._majority_move(state)
        if self._bytes_in_classes(moves) < config.LOOP_WALK_MIN_BYTES or self._too_few_chain(
            state, moves, self._minimum_chained()
        ):
            known[state] = None  # a restrictive state: its first move already fails
            return None
        path, current = [], state
        while len(path) < _CHAINS_DERIVED_AHEAD and current not in known:
            target, _ = self._majority_move(current)
            if target == DEAD or target == current:
                break
            path.append(current)
            current = target
        chain = known[current] if current in known else self._followed_chain(current)
        known[current] = chain
        for before in reversed(path):
            chain = self._chain_before(before, chain)
            known[before] = chain
        return known[state]

    def _chain_before(self, state: int, after: _Chain | None) -> _Chain | None:
        """``state``'s chain from ``after``, the chain of its majority move's target ``t``: the move to ``t``,
        then ``after``'s moves, cut at a longest token's length, when the bytes that move ``state`` to ``t``
        include those of ``t``'s first move (so every later byte set is ``after``'s too); else followed."""
        target, moves = self._majority_move(state)
        longest = self.vocabulary.token_table.longest
        if after is None or longest < 2 or after.spans[0][0] & ~moves:
            return self._followed_chain(state)
        # The tests ``after``'s state passed answer alike for the same first move where both states agree on
        # whether every lead byte lives (``_too_few_chain``): a counted run's positions, one after another.
        same_tests = moves == after.spans[0][0] and self._all_leads_live.item(state) == self._all_leads_live.item(
            after.states[0]
        )
        if not same_tests:
            if self._bytes_in_classes(moves) < config.LOOP_WALK_MIN_BYTES:
                return None
            if self._too_few_chain(state, moves, self._minimum_chained()):
                return None
        spans = [] if after.spans[0][0] == moves else [(moves, 1)]
        for classes, up_to in after.spans:
            spans.append((classes, min(up_to + 1, longest)))
            if up_to + 1 >= longest:
                break
        follows = self._character_target.item(state) == target
        return _Chain(
            spans,
            [(state, target), *after.moves[: longest - 1]],
            [state, *after.states[:longest]],
            1 + after.characters_follow_for if follows else 0,
        )

    def _followed_chain(self, state: int) -> _Chain | None:
        """``state``'s chain, move by move: ``c0 = state``, then majority moves while their byte sets'
        intersection keeps ``config.LOOP_WALK_MIN_BYTES`` bytes, for at most a longest token's length."""
        if np.count_nonzero(self.dfa.transitions[state] != DEAD) < config.LOOP_WALK_MIN_BYTES:
            return None  # the chain could not make its first move
        table = self.vocabulary.token_table
        longest = table.longest
        # Byte sets as Python ints over byte classes (bit k: class k), so the chain costs a few integer
        # operations per step.
        spans: list[tuple[int, int]] = []  # (I, longest length it holds for), I shrinking
        chain: list[tuple[int, int]] = []  # the moves (c(i), c(i+1)) made so far
        current, common, length = state, None, 0
        minimum = self._minimum_chained()
        while length < longest:
            target, moves = self._majority_move(current)
            if target == DEAD:
                break
            narrowed = moves if common is None else common & moves
            if self._bytes_in_classes(narrowed) < config.LOOP_WALK_MIN_BYTES:
                break
            if common is None and self._too_few_chain(state, narrowed, minimum):
                return None
            if common is not None and narrowed != common:
                spans.append((common, length))
            common, length = narrowed, length + 1
            chain.append((current, target))
            if target == current:  # a self-loop: I stays the same for every longer token
                length = longest
                break
            current = target
        if common is None:
            return None
        spans.append((common, length))
        states = [state, *(target for _, target in chain)]
        return _Chain(spans, chain, states, self._characters_follow_for(chain))

    def _minimum_chained(self) -> float:
        """How many tokens must chain for a loop walk to beat the trie walk (``config.LOOP_WALK_MIN_SHARE``)."""
        return config.LOOP_WALK_MIN_SHARE * self.vocabulary.token_table.num_content

    def prepare(self, state: int) -> None:
        """Build what ``mask(state)`` would build on first use, if anything: the vocabulary's text run of its
        byte set (5 ms on a 128k vocabulary for a set met for the first time) and its run regex: at
        construction rather than in a decode step."""
        chain = self._chain(state)
        if chain is not None and len(chain.spans) == 1:
            classes = chain.spans[0][0]
            text_bytes, characters = self._text_kind(classes, chain)
            self._text_run_for_alike_walks(text_bytes, characters)
            if not _walk_in_c():
                self._numpy_walk.run_pattern(classes)  # for the walk's last tokens

    def _text_run_for_alike_walks(self, text_bytes: np.ndarray, characters: bool):
        """The vocabulary's text run of a byte set, with what the alike walks of its states read per alike
        depth (the run's longer tokens, the vocabulary's tokens longer than the depth and the packed bits of
        the shorter ones) made with it, once per vocabulary and byte set: made on the first alike walk,
        they cost 2 ms of a second compile of a kind, whose first spent its budget on the run itself
        (``[a-z ,]{10,200}``: 11 ms)."""
        table = self.vocabulary.token_table
        run = table.text_run(text_bytes, characters)
        depths = config.LOOP_WALK_ALIKE_DEPTHS
        if depths:
            run.longer_run(depths[0], table.lengths, depths)  # every depth's, together
        for depth in depths:  # lookups once made (a few per index)
            table.longer_than(depth)
            table.short_words(depth, self.num_words)
        return run

    def _text_kind(self, classes: int, chain: _Chain) -> tuple[np.ndarray, bool]:
        """The byte set of ``classes`` and whether the chain moves alike on whole UTF-8 characters."""
        text_bytes = self._bytes_of_classes(classes)
        ascii_only = self._ascii_class_sets.get(classes)
        if ascii_only is None:
            ascii_only = self._ascii_class_sets[classes] = not text_bytes[128:].any()
        # Every multi-byte character makes the same move as the ASCII bytes of T (inside JSON strings, free
        # text): a UTF-8 token of T's ASCII bytes and other characters walks the chain one character at a
        # time, so its character count decides it (a cut last character included).
        return text_bytes, ascii_only and chain.characters_follow_for >= len(chain.moves)

    def _text_chain(
        self, state: int, chain: _Chain, classes: int, up_to: int, minimum: float, longer_than: int
    ):
        """The loop walk's start when one byte set ``T`` (the byte classes ``classes``) makes every chain
        move: (tokens alive so far, then the tokens left to walk with their states, byte positions and
        remaining lengths, and ``classes``), or None when too few tokens chain.

        Tokens of ``T`` no longer than the chain are alive. Every other token starts with a run of ``T``
        bytes (``TextRun.prefix``, computed once per vocabulary) that walks the chain, so it starts its
        walk where that run ends, at its first byte outside ``T``. Only tokens longer than
        ``longer_than`` bytes are walked.
        """
        table = self.vocabulary.token_table
        text = self._chained_text(chain, classes, up_to, minimum, longer_than)
        if text is None:
            return None
        run, text_bytes, characters, looping, tokens, is_text, chained, _ = text
        chain_states = np.array(chain.states, dtype=np.int64)
        steps = len(chain.moves)
        # Others with no prefix start with a byte outside T: only those whose first byte lives need a walk.
        # Others with a prefix leave T at their exit byte, taken in a chain state: only those whose exit
        # byte lives in some chain state need a walk, plus, on a counted run, those whose prefix outruns
        # the chain (they leave T beyond it).
        bounds = run.lead_bounds
        first_live = self.dfa.transitions[state] != DEAD
        exit_live = (self.dfa.transitions[chain_states] != DEAD).any(axis=0)
        if tokens is None:
            leads = np.flatnonzero(first_live)
            begins, lead_counts = bounds[leads], bounds[leads + 1] - bounds[leads]
            picked = concatenated_ranges(begins, lead_counts, int(lead_counts.sum()))
            keep = exit_live[run.exit_byte]
            if not looping:
                keep |= run.prefix[bounds[256]:] > steps
            picked = np.concatenate([picked, bounds[256] + np.flatnonzero(keep)])
        else:
            picked = run.others_longer_than(longer_than, table.lengths)  # positions in ``others``
            bare = picked < bounds[256]
            exit_byte = run.exit_byte[np.where(bare, 0, picked - bounds[256])] if run.exit_byte.size else 0
            keep = np.where(bare, first_live[table.first_bytes[run.others[picked]]], exit_live[exit_byte])
            if not looping:
                keep |= ~bare & (run.prefix[picked] > steps)
            picked = picked[keep]
        rest = run.others[picked]
        prefix, resume = run.prefix[picked], run.resume[picked]
        jump = prefix if looping else np.minimum(prefix, steps)
        resume = np.where(jump == prefix, resume, 0)  # it counts from the first byte outside T, if next
        current_states = chain_states[np.minimum(jump, steps)]
        position = table.offsets[rest] + jump
        remaining = table.lengths[rest] - jump
        if not looping:
            # A counted run: text tokens longer than it walk all of it first. If its end takes no more text
            # they are all dead; else the ASCII ones start at its end and the others walk from the start.
            end = int(chain_states[-1])
            text = text_bytes.copy()
            text[128:] |= characters
            if (self.dfa.transitions[end][text] != DEAD).any():
                longer = np.flatnonzero(is_text & ~chained)
                if tokens is not None:
                    longer = tokens[longer]
                skip = table.ascii_only[longer]
                rest = np.concatenate([rest, longer])
                resume = np.concatenate([resume, np.zeros(longer.size, dtype=np.int64)])
                current_states = np.concatenate([current_states, np.where(skip, end, state)])
                position = np.concatenate([position, table.offsets[longer] + np.where(skip, up_to, 0)])
                remaining = np.concatenate([remaining, table.lengths[longer] - np.where(skip, up_to, 0)])
        if tokens is not None:
            alive = np.zeros(table.lengths.size, dtype=bool)
            alive[tokens] = chained
            chained = alive
        elif not chained.flags.writeable:  # a kept whole chain (``_chained_text``): the walk sets its tokens
            chained = chained.copy()
        return chained, rest, current_states, position, remaining, classes, resume

    def _chained_text(
        self, chain: _Chain, classes: int, up_to: int, minimum: float, longer_than: int, listed: bool = False
    ):
        """What ``_text_chain`` and ``_text_walk_in_c`` start from: the text run of the chain's byte set
        ``T`` (the byte classes ``classes``), whether the chain loops, the tokens decided (None: all; else
        those longer than ``longer_than``), which of them are text, which chain (alive without a walk) and,
        when the run keeps them (``TextRun.whole_chain``), those as packed words (else None); None when
        fewer than ``minimum`` tokens chain. With ``listed`` and some tokens decided, which chain is given as
        their ids (what the C walk marks), a slice of them ordered by count (``TextRun.text_by_count``)."""
        table = self.vocabulary.token_table
        looping = chain.moves[-1][0] == chain.moves[-1][1]
        text_bytes, characters = self._text_kind(classes, chain)
        decided = self._decided.get((classes, characters, longer_than))
        if decided is None:
            decided = self._decided[classes, characters, longer_than] = self._decided_tokens(
                text_bytes, characters, longer_than
            )
        run, tokens, is_text, counts = decided
        if tokens is None and (looping or up_to >= table.longest):
            # Every token decided, none too long for the chain: the same for every such state of the set and
            # every constraint, so the run keeps it (``TextRun.whole_chain``).
            whole = run.whole_chain(counts if characters else None, table.longest, self.num_words)
            if whole.count < minimum:
                return None
            return run, text_bytes, characters, looping, tokens, is_text, whole.chained, whole.packed
        if listed and tokens is not None:
            # The chained tokens are the text tokens of at most ``limit`` bytes or characters: a prefix of
            # them ordered by count, where a mask of them cost three passes and a gather per position.
            limit = min(up_to, table.longest) if characters else table.longest if looping else up_to
            by_count, sorted_counts = run.text_by_count(longer_than, tokens, counts)
            chained = by_count[: bisect.bisect_right(sorted_counts, limit)]
            return run, text_bytes, characters, looping, tokens, is_text, chained, None
        if characters:
            chained = is_text & (counts <= min(up_to, table.longest))  # the counts drop non-UTF-8 tokens too
        elif looping:
            chained = is_text.copy()
        else:
            chained = is_text & (counts <= up_to)
        if tokens is None and np.count_nonzero(chained) < minimum:
            return None
        return run, text_bytes, characters, looping, tokens, is_text, chained, None

    def _decided_tokens(self, text_bytes: np.ndarray, characters: bool, longer_than: int):
        """What ``_chained_text`` tests, per (byte set, characters, ``longer_than``), kept: the text run,
        the tokens decided (None: all), which of them are text, and their character counts (with
        ``characters``) or byte lengths. With an alike state's mask for the tokens up to ``longer_than``
        bytes, only the longer ones are decided (a few hundred to a few thousand of the vocabulary): every
        test runs on them alone, and the count of chained tokens is not asked (the walk is cheap whatever
        it is). A counted run's positions all ask the same few, each once."""
        table = self.vocabulary.token_table
        run = self._text_run_for_alike_walks(text_bytes, characters)
        tokens = table.longer_than(longer_than) if longer_than else None
        counts = table.char_counts if characters else table.lengths
        if tokens is None:
            return run, None, run.is_text, counts
        return run, tokens, run.is_text[tokens], counts[tokens]

    def _text_walk_in_c(
        self, chain: _Chain, classes: int, up_to: int, minimum: float, longer_than: int, short: np.ndarray | None
    ) -> np.ndarray | None:
        """``_text_chain`` and the walk of its tokens in one C call (``_native.walk_text_run``): the packed
        mask of the tokens alive (int32 words; with ``short``, the alike mask's bits of the tokens of at most
        ``longer_than`` bytes, those too), or None when too few tokens chain. The kernel takes the text run's
        groups of tokens whole or skips them (by the first byte, or the exit byte after a prefix of ``T``),
        where numpy paid a dozen passes over all of them to pick the few it walks."""
        prepared = self._text_walk_arguments(chain, classes, up_to, minimum, longer_than, short)
        if prepared is None:
            return None
        arguments, words = prepared
        kernels.walk_text_run(*arguments)
        return words

    def _text_walk_arguments(
        self,
        chain: _Chain,
        classes: int,
        up_to: int,
        minimum: float,
        longer_than: int,
        short: np.ndarray | None = None,
    ):
        """``walk_text_run``'s arguments for ``_text_walk_in_c`` and the packed words they write into (``short``
        if given, else zeros), or None when too few tokens chain. The chained tokens are packed into the words
        here when all tokens are decided (most of a vocabulary can be chained), else listed for the kernel
        to mark (a few hundred longer than ``longer_than``)."""
        text = self._chained_text(chain, classes, up_to, minimum, longer_than, listed=True)
        if text is None:
            return None
        run, text_bytes, characters, looping, tokens, _, chained, packed = text
        table = self.vocabulary.token_table
        if tokens is None:  # every token decided: no alike mask (``short`` comes with ``longer_than``)
            words = packed.copy() if packed is not None else self._packed(chained)
            marked = _NO_TOKENS
        else:
            words = short if short is not None else np.zeros(self.num_words, dtype=np.int32)
            marked = chained  # their ids (``listed``)
        chain_states = np.array(chain.states[: len(chain.moves) + 1], dtype=np.int64)
        longer = _NO_TOKENS
        if not looping and self._takes_more_text(chain.states[len(chain.moves)], classes, characters, text_bytes):
            # A counted run: its text tokens longer than it walk on from its end, which takes more text.
            longer = table.longer_than(max(up_to, longer_than))
        if longer_than:
            # The shorter tokens are the alike mask's; every alike depth's run is made on the first.
            run = run.longer_run(longer_than, table.lengths, config.LOOP_WALK_ALIKE_DEPTHS)
        tables, first_order = self._walk_tables
        arguments = (
            *tables, run.others, run.prefix, run.lead_bounds, run.exit_bounds, chain_states, longer, run.is_text,
            table.ascii_only, words, marked, looping, longer_than, up_to, run.lead_positions, *first_order,
        )
        return arguments, words

    @functools.cached_property
    def _walk_tables(self) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, np.ndarray]]:
        """``walk_text_run``'s arguments that every walk of this DFA and vocabulary shares (the byte table,
        its live bits, the tokens' bytes; the bytes in first-byte order), gathered once."""
        table = self.vocabulary.token_table
        return (self.dfa.transitions, self._live_bits, table.flat, table.offsets), table.first_byte_order[:2]

    def _takes_more_text(self, end: int, classes: int, characters: bool, text_bytes: np.ndarray) -> bool:
        """Whether a counted run's last chain state ``end`` takes a byte of ``T`` (any multi-byte
        character's, with ``characters``); kept per (state, byte set)."""
        key = (end, classes, characters)
        takes = self._more_text.get(key)
        if takes is None:
            text_or_character = text_bytes.copy()
            text_or_character[128:] |= characters
            takes = self._more_text[key] = bool((self.dfa.transitions[end][text_or_character] != DEAD).any())
        return takes

    @functools.cached_property
    def _live_bits(self) -> np.ndarray:
        """Per state, the bytes that do not lead to the dead state: 256 bits as 4 uint64 (``walk_text_run``)."""
        live = np.packbits(self.dfa.transitions != DEAD, axis=1, bitorder="little")
        return np.ascontiguousarray(live).view("<u8").astype(np.uint64, copy=False)

    def _narrowing_chain(self, state: int, byte_sets: list[tuple[np.ndarray, int]], minimum: float, longer_than: int):
        """The loop walk's start when the chain's byte set narrows along it (``_text_chain``'s result)."""
        table = self.vocabulary.token_table
        chained = None
        for byte_set, up_to in byte_sets:
            fits = table.within(byte_set)
            if up_to < table.longest:  # a self-loop's span holds for every length
                fits &= table.lengths <= up_to
            chained = fits if chained is None else chained | fits
        if np.count_nonzero(chained) < minimum:
            return None
        first_live = (self.dfa.transitions[state] != DEAD)[table.first_bytes]  # the others need a walk
        walked = ~chained & first_live & table.content
        if longer_than:
            walked &= table.lengths > longer_than
        rest = np.flatnonzero(walked)
        current_states = np.full(rest.size, state, dtype=np.int64)
        return chained, rest, current_states, table.offsets[rest], table.lengths[rest], None, None

    def _characters_follow_for(self, chain: list[tuple[int, int]]) -> int:
        """For how many leading moves ``(state, target)`` of ``chain`` every valid multi-byte UTF-8 character
        leads from ``state`` to ``target`` too (through one intermediate state per byte, whatever the
        character). Move by move: most chains are a string's or a label's self-loop, one or two moves, where
        numpy's arrays cost 10 us a chain; a counted run's longer chain is followed once per 32 positions."""
        character_target = self._character_target
        for position, (state, target) in enumerate(chain):
            if target == DEAD or character_target.item(state) != target:
                return position
        return len(chain)

    def _character_targets(self) -> np.ndarray:
        """Per state, the one state every valid multi-byte UTF-8 character leads to, else DEAD. Computed
        with the DFA (a few hundred microseconds for a large schema): only the states where every lead
        byte lives can have one (inside strings, free text), and asking for a chain's states on its first
        walk made the first visit of a string the slowest step of a decode."""
        target = np.zeros(self.dfa.num_states, dtype=np.int64)  # DEAD
        candidates = np.flatnonzero(self._all_leads_live)
        if not candidates.size:
            return target
        if kernels is not None:  # the numpy walk below cost 0.3 to 0.7 ms of a JSON schema's compile
            table = np.ascontiguousarray(self.dfa.class_transitions, dtype=np.int32)
            byte_classes = np.ascontiguousarray(self.dfa.byte_classes, dtype=np.int32)
            reached = kernels.character_targets(table, table.shape[1], byte_classes, candidates.astype(np.int64))
            target[candidates] = np.frombuffer(reached, dtype=np.int64)
        else:
            target[candidates] = character_targets(self.dfa, candidates)
        return target

    def _majority_move(self, state: int) -> tuple[int, int]:
        """(the target most bytes of ``state`` lead to, the byte classes that lead there as a bit set);
        (DEAD, 0) when every byte dies."""
        memo = self._majority.get(state)
        if memo is None and kernels is not None:
            targets, words, width = self._native_majority_moves
            target = targets[state]
            memo = (target, int.from_bytes(words[state * width : state * width + width], "little")) if target else (DEAD, 0)
            self._majority[state] = memo
        if memo is None and len(self._majority) == _MAJORITY_ONE_BY_ONE and self._all_majorities_at_once():
            self._majority = self._all_majority_moves()
            memo = self._majority[state]
        if memo is None:
            row = self.dfa.class_transitions[state]
            if self.dfa.num_states <= _MAJORITY_BINCOUNT_STATES:
                # One weighted count over the row's targets: a counted run's chain asks for dozens of states.
                weight = np.bincount(row, weights=self._class_size_weights)
                weight[DEAD] = 0
                target = int(weight.argmax())
                best = weight[target]
            else:  # a count array as long as the DFA would cost more than a loop over the row
                weights: dict[int, int] = {}
                for to, size in zip(row.tolist(), self._class_sizes):
                    weights[to] = weights.get(to, 0) + size
                weights.pop(DEAD, None)
                target = max(weights, key=weights.__getitem__) if weights else DEAD
                best = weights.get(target, 0)
            if best <= 0:
                memo = (DEAD, 0)
            else:
                memo = (target, int.from_bytes(np.packbits(row == target, bitorder="little").tobytes(), "little"))
            self._majority[state] = memo
        return memo

    @functools.cached_property
    def _native_majority_moves(self) -> tuple[list[int], bytes, int]:
        """Every state's majority move by the C kernel (``_native.majority_moves``): the targets, the class bit
        sets as little-endian bytes, and how many bytes a state's takes (made a Python int when asked)."""
        table = np.ascontiguousarray(self.dfa.class_transitions, dtype=np.int32)
        sizes = np.ascontiguousarray(self.dfa.class_sizes, dtype=np.int64)
        targets, words = kernels.majority_moves(table, table.shape[1], sizes)
        return np.frombuffer(targets, dtype=np.int32).tolist(), words, 8 * ((table.shape[1] + 63) // 64)

    def _all_majorities_at_once(self) -> bool:
        """Whether ``_all_majority_moves`` applies: few enough classes for a 64-bit set, and a table small
        enough that all its states cost less than the few dozen a counted run's chains ask one by one."""
        num_states, num_classes = self.dfa.class_transitions.shape
        return num_classes <= 64 and num_states * num_classes * num_classes <= _MAJORITY_AT_ONCE_ENTRIES

    def _all_majority_moves(self) -> dict[int, tuple[int, int]]:
        """``_majority_move`` of every state, in a few array operations: a sentence's 204 states cost 1 ms
        one by one (each a weighted count and a bit set), most of its construction's chain following."""
        table = self.dfa.class_transitions.astype(np.int64)
        num_states, num_classes = table.shape
        sizes = np.array(self._class_sizes, dtype=np.int64)
        # weight[s, c]: how many bytes of state s lead where class c does.
        weight = ((table[:, :, None] == table[:, None, :]) * sizes).sum(axis=2)
        weight[table == DEAD] = 0
        # The heaviest target, the lowest id among equals (as the weighted count's argmax picks it).
        best_column = (weight * (num_states + 1) + (num_states - table)).argmax(axis=1)
        rows = np.arange(num_states)
        target = table[rows, best_column]
        best = weight[rows, best_column]
        powers = np.left_shift(np.uint64(1), np.arange(num_classes, dtype=np.uint64))
        bits = np.where(table == target[:, None], powers, np.uint64(0)).sum(axis=1, dtype=np.uint64)
        return {
            state: (to, set_bits) if weight_of > 0 else (DEAD, 0)
            for state, (to, set_bits, weight_of) in enumerate(zip(target.tolist(), bits.tolist(), best.tolist()))
        }

    def _bytes_of_classes(self, class_set: int) -> np.ndarray:
        """The bytes (256 bools, read-only) of a set of byte classes given as a bit set."""
        in_set = self._class_set_masks.get(class_set)
        if in_set is None:
            classes = np.array([(class_set >> klass) & 1 for klass in range(len(self._class_sizes))], dtype=bool)
            in_set = classes[self.dfa.byte_classes]
            in_set.setflags(write=False)
            self._class_set_masks[class_set] = in_set
        return in_set

    def _too_few_chain(self, state: int, class_set: int, minimum: float) -> bool:
        """Whether too few tokens could chain from ``state``, whose first move takes the byte classes
        ``class_set``: a bound that rejects restrictive states before the chain is followed.

        Chained tokens start with a byte of the first move, and their bytes all lie in it, unless the
        chain takes multi-byte characters, which needs every lead byte alive in ``state``: where one dies
        (a run of hex digits, of an e-mail label's characters) the count of tokens made of the set's
        bytes bounds them (a pass over the vocabulary, once per set and vocabulary)."""
        if self._first_byte_share(class_set) < minimum:
            return True
        if self._all_leads_live.item(state):
            return False
        count = self._within_counts.get(class_set)
        if count is None:  # the vocabulary keeps it per byte set, but its key costs more than this lookup
            count = self._within_counts[class_set] = self.vocabulary.token_table.count_within(
                self._bytes_of_classes(class_set)
            )
        return count < minimum

    def _first_byte_share(self, class_set: int) -> int:
        """How many content tokens start with a byte of the byte classes ``class_set``."""
        share = self._first_byte_shares.get(class_set)
        if share is None:
            # Per class, then summed over the set's classes: a 256-byte mask per set cost 9 us a chain.
            per_class, share, rest = self._class_first_byte_counts, 0, class_set
            while rest:
                low = rest & -rest
                share += per_class[low.bit_length() - 1]
                rest ^= low
            self._first_byte_shares[class_set] = share
        return share

    @functools.cached_property
    def _class_first_byte_counts(self) -> list[int]:
        """Per byte class, how many content tokens start with one of its bytes."""
        counts = self.vocabulary.token_table.first_byte_counts
        per_class = np.bincount(self.dfa.byte_classes, weights=counts, minlength=len(self._class_sizes))
        return per_class.astype(np.int64).tolist()

    def _bytes_in_classes(self, class_set: int) -> int:
        count = self._class_set_bytes.get(class_set)
        if count is None:
            sizes = self._class_sizes
            count = sum(sizes[klass] for klass in range(len(sizes)) if (class_set >> klass) & 1)
            self._class_set_bytes[class_set] = count
        return count
