"""Token-level index: for each DFA state, the set of tokens that keep the output matchable.

A token is allowed in a state when walking its bytes through the DFA never reaches the dead state. Rather
than testing every token in every state up front (what makes eager indexes cost seconds on 128k
vocabularies), the index walks the vocabulary's byte trie from a state the first time that state is
needed: one walk covers all tokens sharing a prefix, and a prefix that dies prunes its whole subtree. The
result is stored only as a packed bitmask (16 KB for 128k tokens), deduplicated across states, so every
later visit is a copy. A first visit also walks, in the same batch, the restrictive states just ahead of
it (lookahead), and permissive states (inside strings) skip the trie for byte-set tests over the whole
vocabulary (the loop walk). Small DFAs are indexed completely at construction in one batched walk.
"""

from __future__ import annotations

import functools
import re
import threading
import time

import numpy as np

from . import config
from .errors import IncompatibleVocabularyError
from .regex.dfa import DEAD, Dfa, compile_dfa
from .vocabulary import NOT_TEXT, Vocabulary

#: The byte ranges of every valid multi-byte UTF-8 character (RFC 3629), one tuple per lead-byte kind.
_UTF8_SEQUENCES = (
    ((0xC2, 0xDF), (0x80, 0xBF)),
    ((0xE0, 0xE0), (0xA0, 0xBF), (0x80, 0xBF)),
    ((0xE1, 0xEC), (0x80, 0xBF), (0x80, 0xBF)),
    ((0xED, 0xED), (0x80, 0x9F), (0x80, 0xBF)),
    ((0xEE, 0xEF), (0x80, 0xBF), (0x80, 0xBF)),
    ((0xF0, 0xF0), (0x90, 0xBF), (0x80, 0xBF), (0x80, 0xBF)),
    ((0xF1, 0xF3), (0x80, 0xBF), (0x80, 0xBF), (0x80, 0xBF)),
    ((0xF4, 0xF4), (0x80, 0x8F), (0x80, 0xBF), (0x80, 0xBF)),
)

#: Pseudo-state of a guide that has consumed EOS: only EOS stays allowed (finished batch rows pad with it).
FINISHED = -1


class Index:
    """The compiled form of a regex against one vocabulary; immutable and shareable across guides.

    Parameters
    ----------
    regex:
        A pattern in the engine's dialect (full match over the output), or an already compiled ``Dfa``.
    vocabulary:
        The tokenizer's vocabulary.

    Raises
    ------
    RegexSyntaxError, DfaTooLargeError
        From regex compilation.
    IncompatibleVocabularyError
        When the vocabulary cannot spell any output the regex accepts, or gets stuck in some state.
    """

    def __init__(self, regex: str | Dfa, vocabulary: Vocabulary) -> None:
        self._setup(regex if isinstance(regex, Dfa) else compile_dfa(regex), vocabulary)
        self._mask_class = self._mask_classes()
        self._class_masks: dict[int, np.ndarray] = {}
        # Index eagerly while it is cheap (small DFAs, restrictive states): the start state first, then
        # the other mask classes within a time budget; whatever is left is computed on first visit.
        started = time.perf_counter()
        self._compute_masks(np.array([self.dfa.start]))
        per_state = max(time.perf_counter() - started, 1e-5)
        pending = self._uncomputed_representatives()
        deadline = started + config.EAGER_INDEX_BUDGET_SECONDS
        # Batches sized by the start's cost, the clock checked between them: permissive states cost far
        # more than a restrictive start, and the budget must hold either way.
        batch = max(1, int(config.EAGER_INDEX_BUDGET_SECONDS / per_state) // 4)
        for begin in range(0, len(pending), batch):
            if time.perf_counter() >= deadline:
                break
            self._compute_masks(pending[begin : begin + batch])
        self._check_no_dead_ends()

    @classmethod
    def cached(cls, regex: str, vocabulary: Vocabulary) -> "Index":
        """``Index(regex, vocabulary)`` through the on-disk cache (``outlines_core.index_cache``): a second
        process loads the DFA and the masks computed so far instead of compiling again."""
        from . import index_cache

        return index_cache.load_or_build(regex, vocabulary)

    @classmethod
    def from_parts(cls, dfa: Dfa, vocabulary: Vocabulary, mask_class: np.ndarray, class_masks: dict[int, np.ndarray]) -> "Index":
        """An index rebuilt from what a previous one computed (``index_cache`` loads these from disk)."""
        index = cls.__new__(cls)
        index._setup(dfa, vocabulary)
        index._mask_class = np.asarray(mask_class, dtype=np.int64)
        index._class_masks = {}
        for klass, mask in class_masks.items():
            shared = index._unique_masks.setdefault(mask.tobytes(), np.asarray(mask, dtype=np.int32))
            shared.setflags(write=False)
            index._class_masks[int(klass)] = shared
        return index

    @property
    def computed_class_masks(self) -> dict[int, np.ndarray]:
        """The masks computed so far, per mask class (what ``index_cache`` saves)."""
        return dict(self._class_masks)

    def _setup(self, dfa: Dfa, vocabulary: Vocabulary) -> None:
        self.dfa = dfa
        self.pattern = self.dfa.pattern
        self.vocabulary = vocabulary
        self.num_words = (vocabulary.size + 31) // 32
        self._lock = threading.Lock()
        self._masks: dict[int, np.ndarray] = {}
        self._unique_masks: dict[bytes, np.ndarray] = {}
        self._allowed_ids: dict[int, np.ndarray] = {}
        self._next_state: dict[tuple[int, int], int] = {}
        self._class_sizes: list[int] = np.bincount(dfa.byte_classes, minlength=dfa.class_transitions.shape[1]).tolist()
        self._majority: dict[int, tuple[int, int]] = {}
        self._character_moves: dict[tuple[int, int], bool] = {}
        self._class_set_bytes: dict[int, int] = {}
        self._class_set_masks: dict[int, np.ndarray] = {}
        self._text_runs: dict[tuple[int, bool], object] = {}
        self._run_patterns: dict[int, re.Pattern | None] = {}
        self._powers: dict[int, list[np.ndarray]] = {}
        transitions = self.dfa.transitions
        self._flat_transitions = transitions.reshape(-1).astype(np.int64)
        #: States with no way to extend the output (every byte leads to the dead state).
        self._no_continuation = ~(transitions != DEAD).any(axis=1)
        self.eos_mask = self._bitmask_of(np.array(vocabulary.eos_token_ids, dtype=np.int64))
        self.eos_mask.setflags(write=False)
        if not self.dfa.accepting.any():
            raise IncompatibleVocabularyError(f"regex {self.pattern!r} matches no string at all")

    # -- public queries ---------------------------------------------------------------------------
    @property
    def initial_state(self) -> int:
        return self.dfa.start

    @property
    def num_states(self) -> int:
        """DFA states, the dead state included."""
        return self.dfa.num_states

    def is_accepting(self, state: int) -> bool:
        return state == FINISHED or bool(self.dfa.accepting[state])

    def is_final(self, state: int) -> bool:
        """The output is complete and cannot be extended: only EOS remains."""
        return state == FINISHED or bool(self.dfa.accepting[state] and self._no_continuation[state])

    def mask(self, state: int) -> np.ndarray:
        """The packed allowed-token bitmask of ``state`` (read-only int32 words; bit ``t % 32`` of word
        ``t // 32`` is token ``t``). Computed on the first request, then served from the cache."""
        if state == FINISHED:
            return self.eos_mask
        cached = self._masks.get(state)
        if cached is None:
            cached = self._class_masks.get(int(self._mask_class[state]))
            if cached is None:
                self._compute_masks(np.array([state]))
                cached = self._class_masks[int(self._mask_class[state])]
                if not self.dfa.accepting[state] and not cached.any():
                    raise self._dead_end_error(state)
            self._masks[state] = cached
        return cached

    def allowed_tokens(self, state: int) -> np.ndarray:
        """Sorted allowed token ids (int32) of ``state``, EOS ids included where the output may end."""
        ids = self._allowed_ids.get(state)
        if ids is None:
            bits = np.unpackbits(self.mask(state).view(np.uint8), bitorder="little")
            ids = np.flatnonzero(bits[: self.vocabulary.size]).astype(np.int32)
            ids.setflags(write=False)
            self._allowed_ids[state] = ids
        return ids

    def is_allowed(self, state: int, token_id: int) -> bool:
        if not 0 <= token_id < self.vocabulary.size:
            return False
        word = int(self.mask(state)[token_id >> 5])
        return bool((word >> (token_id & 31)) & 1)

    def next_state(self, state: int, token_id: int) -> int:
        """The state after ``token_id``; ``DEAD`` if the token is not allowed, ``FINISHED`` after EOS."""
        if not self.is_allowed(state, token_id):
            return DEAD
        if token_id in self.vocabulary.eos_token_ids:
            return FINISHED
        key = (state, token_id)
        target = self._next_state.get(key)
        if target is None:
            target = self.dfa.walk(self.vocabulary.token_bytes(token_id) or b"", state)
            if len(self._next_state) < config.MAX_CACHED_TRANSITIONS:
                self._next_state[key] = target
        return target

    def make_guide(self):
        """A fresh ``Guide`` over this index (the interface logits processors use for every constraint kind)."""
        from .guide import Guide

        return Guide(self)

    def __repr__(self) -> str:
        return (
            f"Index(pattern={self.pattern[:60]!r}, dfa_states={self.num_states}, "
            f"vocab_size={self.vocabulary.size}, cached_states={len(self._masks)})"
        )

    # -- construction ------------------------------------------------------------------------------
    @property
    def num_mask_classes(self) -> int:
        """How many distinct token masks the DFA's states can have (see ``_mask_classes``)."""
        return int(self._mask_class.max()) + 1

    def _mask_classes(self) -> np.ndarray:
        """Group states that provably allow the same tokens, so each group is walked once.

        A token is allowed from a state iff its bytes never lead to the dead state, so two states with the
        same acceptance that agree on "dead or not" for every string up to the longest token that could
        survive have equal masks. That is Moore's refinement of {dead, live} run for that many rounds;
        counting repetitions such as ``[a-z ,]{10,200}`` collapse from hundreds of states to a few masks.
        Rounds label states by a 64-bit hash of their signature; every round is then verified exactly, and
        on a (vanishingly unlikely) collision each state simply gets its own class.
        """
        transitions = self.dfa.class_transitions
        n_states = transitions.shape[0]
        depth = self.vocabulary.longest_token_within(self._live_bytes())
        block = (np.arange(n_states) != DEAD).astype(np.int64)
        rounds = [block]
        multipliers = np.random.default_rng(0xB10C).integers(1, 2**62, size=transitions.shape[1] + 1)
        for _ in range(depth):
            with np.errstate(over="ignore"):
                signature = block[transitions] @ multipliers[1:] + block * multipliers[0]
            _, refined = np.unique(signature, return_inverse=True)
            refined = refined.reshape(-1)
            stable = refined.max() == block.max()
            block = refined
            rounds.append(block)
            if stable:
                rounds.append(block)  # verify that the fixpoint is closed under transitions
                break
        for previous, current in zip(rounds, rounds[1:]):
            _, first = np.unique(current, return_index=True)
            representative = first[current]
            if not (
                np.array_equal(previous, previous[representative])
                and np.array_equal(previous[transitions], previous[transitions[representative]])
            ):
                block = np.arange(n_states)
                break
        _, mask_class = np.unique(block * 2 + self.dfa.accepting, return_inverse=True)
        return mask_class.reshape(-1)

    def _live_bytes(self) -> np.ndarray:
        """Bytes some live state can consume without dying: only tokens made of these can be allowed."""
        transitions = self.dfa.transitions[1:]
        return (transitions != DEAD).any(axis=0)

    def _uncomputed_representatives(self) -> np.ndarray:
        _, first = np.unique(self._mask_class, return_index=True)
        first = first[first != DEAD]
        done = self._class_masks.keys()
        return np.array([s for s in first.tolist() if int(self._mask_class[s]) not in done], dtype=np.int64)

    def _compute_masks(self, states: np.ndarray) -> None:
        """Walk the token trie from each of ``states`` and store the masks of their classes (a few states
        per batch, bounding the frontier's memory on permissive states)."""
        todo, classes = [], set()
        for state in (int(s) for s in states):
            klass = int(self._mask_class[state])
            if klass not in self._class_masks and klass not in classes:
                classes.add(klass)
                todo.append(state)
        by_trie = []
        for state in todo:
            mask = self._loop_walk(state)
            if mask is None:
                by_trie.append(state)
            else:
                self._store_masks([state], mask[None, :])
        if len(by_trie) == 1:  # a first visit: the common case while decoding
            batch = self._with_lookahead(by_trie[0])
            if len(batch) > 1:
                masks, _ = self._walk_trie(np.array(batch, dtype=np.int64), max_frontier=config.LOOKAHEAD_MAX_FRONTIER)
                if masks is not None:
                    self._store_masks(batch, masks)
                    return
                # Some state fans out (a run of letters, where words go on): never batch these again.
                takeable = self._lookahead_tables[3]
                for state in batch[1:]:
                    takeable[state] = False
            self._store_masks(batch[:1], self._walk_trie_from(batch[0])[None, :])
            return
        for begin in range(0, len(by_trie), config.INDEX_BATCH_STATES):
            batch = np.array(by_trie[begin : begin + config.INDEX_BATCH_STATES], dtype=np.int64)
            masks, _ = self._walk_trie(batch)
            self._store_masks(batch.tolist(), masks)

    def _with_lookahead(self, state: int) -> list[int]:
        """``state`` and the restrictive states a decode is likely to need next, for one batched walk.

        A trie walk from a restrictive state (inside a key, a number, a fixed word) costs 25 to 60
        microseconds, most of it numpy's per-call overhead, which a batch pays once for all its origins
        (a batch of 32 costs 10 to 25 us a state). So a first visit also walks the uncomputed states
        nearest to it (breadth-first over the DFA), while their level-two trie expansions stay within
        ``config.LOOKAHEAD_EXPANSION_BUDGET``: the steps that follow are then copies of a stored mask.
        Permissive states, and those a few bytes before one, are left to their own visit.
        """
        successors, expansion, mask_class, live = self._lookahead_tables
        budget = config.LOOKAHEAD_EXPANSION_BUDGET - expansion[state]
        batch, classes = [state], {mask_class[state]}
        seen, queue = {state}, [state]
        done = self._class_masks
        targets, starts = successors
        for origin in queue:
            if len(batch) >= config.LOOKAHEAD_STATES or len(seen) > config.LOOKAHEAD_SEARCH_STATES:
                break
            for target in targets[starts[origin] : starts[origin + 1]]:
                if target in seen:
                    continue
                seen.add(target)
                queue.append(target)
                klass, cost = mask_class[target], expansion[target]
                if cost <= budget and klass not in done and klass not in classes and live[target]:
                    budget -= cost
                    classes.add(klass)
                    batch.append(target)
        return batch[: config.LOOKAHEAD_STATES]

    @functools.cached_property
    def _lookahead_tables(self) -> tuple[tuple[list[int], list[int]], list[int], list[int], list[bool]]:
        """Per state, as Python lists (the lookahead search runs in Python over a few dozen states): its
        distinct live successors (flat, with start offsets), the size of its trie walk's second level
        (the children of the root children its live bytes reach: a cost estimate), its mask class, and
        whether lookahead may take it."""
        rows = np.sort(self.dfa.class_transitions, axis=1)
        keep = rows != DEAD
        keep[:, 1:] &= rows[:, 1:] != rows[:, :-1]
        successors = (rows[keep].tolist(), np.concatenate([[0], np.cumsum(keep.sum(axis=1))]).tolist())
        root_child = self.vocabulary.trie.root_child
        second_level = np.where(root_child != 0, self.vocabulary.trie.child_count[root_child], 0)
        live_bytes = self.dfa.transitions != DEAD
        expansion = live_bytes.astype(np.int64) @ (second_level.astype(np.int64) + 1)
        # The estimate misses deeper levels, which explode where most bytes live (inside strings): such
        # states, and the states a few bytes before them (an escape, a key's closing quote), stay out.
        near_permissive = live_bytes.sum(axis=1) > config.LOOKAHEAD_MAX_LIVE_BYTES
        near_permissive[DEAD] = False
        for _ in range(config.LOOKAHEAD_PERMISSIVE_DISTANCE):
            near_permissive = near_permissive | near_permissive[self.dfa.class_transitions].any(axis=1)
            near_permissive[DEAD] = False
        return successors, expansion.tolist(), self._mask_class.tolist(), (~near_permissive).tolist()

    def _store_masks(self, states: list[int], masks: np.ndarray) -> None:
        with self._lock:
            for state, mask in zip(states, masks):
                shared = self._unique_masks.setdefault(mask.tobytes(), mask)
                shared.setflags(write=False)
                self._class_masks[int(self._mask_class[state])] = shared
                self._masks[state] = shared

    def _loop_walk(self, state: int) -> np.ndarray | None:
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
        """
        if np.count_nonzero(self.dfa.transitions[state] != DEAD) < config.LOOP_WALK_MIN_BYTES:
            return None  # the chain below could not make its first move
        table = self.vocabulary.token_table
        longest = table.longest
        # Byte sets as Python ints over byte classes (bit k: class k), so the chain costs a few integer
        # operations per step; a counted run's states recur in the chains of its neighbours (memoized).
        spans: list[tuple[int, int]] = []  # (I, longest length it holds for), I shrinking
        chain: list[tuple[int, int]] = []  # the moves (c(i), c(i+1)) made so far
        current, common, length = state, None, 0
        minimum = config.LOOP_WALK_MIN_SHARE * table.num_content
        while length < longest:
            target, moves = self._majority_move(current)
            if target == DEAD:
                break
            narrowed = moves if common is None else common & moves
            if self._bytes_in_classes(narrowed) < config.LOOP_WALK_MIN_BYTES:
                break
            if common is None and self._first_byte_share(narrowed) < minimum:
                # Chained tokens start with a byte of the first move: a bound that rejects restrictive
                # states before any work over the whole vocabulary.
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
        byte_sets = [(self._bytes_of_classes(class_set), up_to) for class_set, up_to in spans]
        if len(byte_sets) == 1:
            walk = self._text_chain(state, chain, spans[0][0], spans[0][1], minimum)
        else:
            walk = self._narrowing_chain(state, byte_sets, minimum)
        if walk is None:
            return None
        alive, rest, current_states, position, remaining, chain_classes, resume = walk
        transitions = self._flat_transitions
        while rest.size:
            if rest.size <= config.LOOP_WALK_TAIL_TOKENS:  # a few long survivors: per-step numpy overhead dominates
                self._walk_tail(rest, current_states, position, remaining, alive, chain, chain_classes)
                break
            current_states = transitions[current_states * 256 + table.flat[position]]
            remaining = remaining - 1
            survived = current_states != DEAD
            if resume is not None:
                # Past its first byte outside the chain's set comes a run of the set's bytes (``.com`` in
                # an email): where every step of that run moves all of the set's bytes alike, the token
                # jumps over it in a few gathers (the run's length in binary).
                jumped = current_states
                for bit, power in enumerate(self._uniform_powers(chain_classes, int(resume.max()).bit_length())):
                    jumped = np.where((resume >> bit) & 1, power[jumped], jumped)
                jump = np.where((jumped != DEAD) & survived, resume, 0)
                current_states = np.where(jump > 0, jumped, current_states)
                position, remaining, resume = position + jump, remaining - jump, None
            alive[rest[survived & (remaining == 0)]] = True
            going = survived & (remaining > 0)
            rest, current_states = rest[going], current_states[going]
            position, remaining = position[going] + 1, remaining[going]
        allowed = np.zeros(self.num_words * 32, dtype=bool)
        allowed[: alive.size] = alive
        if self.dfa.accepting[state]:
            allowed[np.array(self.vocabulary.eos_token_ids, dtype=np.int64)] = True
        return np.packbits(allowed, bitorder="little").view("<i4").astype(np.int32, copy=False)

    def _text_chain(self, state: int, chain: list[tuple[int, int]], classes: int, up_to: int, minimum: float):
        """The loop walk's start when one byte set ``T`` (the byte classes ``classes``) makes every chain
        move: (tokens alive so far, then the tokens left to walk with their states, byte positions and
        remaining lengths, and ``classes``), or None when too few tokens chain.

        Tokens of ``T`` no longer than the chain are alive. Every other token starts with a run of ``T``
        bytes (``TextRun.prefix``, computed once per vocabulary) that walks the chain, so it starts its
        walk where that run ends, at its first byte outside ``T``.
        """
        table = self.vocabulary.token_table
        text_bytes = self._bytes_of_classes(classes)
        looping = chain[-1][0] == chain[-1][1]
        # Every multi-byte character makes the same move as the ASCII bytes of T (inside JSON strings, free
        # text): a UTF-8 token of T's ASCII bytes and other characters walks the chain one character at a
        # time, so its character count decides it (a cut last character included).
        characters = not text_bytes[128:].any() and all(self._moves_every_character(*move) for move in chain)
        key = (classes, characters)
        run = self._text_runs.get(key)
        if run is None:
            run = self._text_runs[key] = table.text_run(text_bytes, characters)
        if characters:
            chained = run.is_text & (table.char_counts <= min(up_to, table.longest))  # also drops non-UTF-8
        elif looping:
            chained = run.is_text.copy()
        else:
            chained = run.is_text & (table.lengths <= up_to)
        if np.count_nonzero(chained) < minimum:
            return None
        chain_states = np.array([state, *(target for _, target in chain)], dtype=np.int64)
        steps = len(chain)
        # Others with no prefix start with a byte outside T: only those whose first byte lives need a walk.
        bounds = run.lead_bounds
        leads = np.flatnonzero(self.dfa.transitions[state] != DEAD)
        begins, counts = bounds[leads], bounds[leads + 1] - bounds[leads]
        total = int(counts.sum())
        ends = np.cumsum(counts)
        picked = np.repeat(begins - (ends - counts), counts) + np.arange(total)
        picked = np.concatenate([picked, np.arange(bounds[256], run.others.size)])
        rest, prefix, resume = run.others[picked], run.prefix[picked], run.resume[picked]
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
                longer = np.flatnonzero(run.is_text & ~chained)
                skip = table.ascii_only[longer]
                rest = np.concatenate([rest, longer])
                resume = np.concatenate([resume, np.zeros(longer.size, dtype=np.int64)])
                current_states = np.concatenate([current_states, np.where(skip, end, state)])
                position = np.concatenate([position, table.offsets[longer] + np.where(skip, up_to, 0)])
                remaining = np.concatenate([remaining, table.lengths[longer] - np.where(skip, up_to, 0)])
        return chained, rest, current_states, position, remaining, classes, resume

    def _narrowing_chain(self, state: int, byte_sets: list[tuple[np.ndarray, int]], minimum: float):
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
        rest = np.flatnonzero(~chained & first_live & table.content)
        current_states = np.full(rest.size, state, dtype=np.int64)
        return chained, rest, current_states, table.offsets[rest], table.lengths[rest], None, None

    def _walk_tail(self, rest, current_states, position, remaining, alive, chain, chain_classes) -> None:
        """Finish the last few tokens of a loop walk in Python. A token sitting on the chain jumps over
        its run of chain bytes (one regex match) to the chain state that run reaches: the survivors are
        mostly long runs (of spaces, dashes...) ending in a byte that kills them."""
        flat, walk = self.vocabulary.token_table.flat, self.dfa.walk
        run = None
        if chain_classes is not None and chain:
            if chain_classes not in self._run_patterns:
                ascii_run = bytes(int(b) for b in np.flatnonzero(self._bytes_of_classes(chain_classes)[:128]))
                pattern = re.compile(b"[" + re.escape(ascii_run) + b"]*") if ascii_run else None
                self._run_patterns[chain_classes] = pattern
            run = self._run_patterns[chain_classes]
            # c(0) .. c(L); a chain that ends in a self-loop has c(L) == c(L-1), which takes any run.
            states = [chain[0][0], *(target for _, target in chain)]
            where = {at: index for index, at in enumerate(states[:-1])}
            looping = chain[-1][0] == chain[-1][1]
        for token, at, begin, left in zip(rest.tolist(), current_states.tolist(), position.tolist(), remaining.tolist()):
            data = flat[begin : begin + left].tobytes()
            index = where.get(at) if run is not None else None
            if index is not None:
                jump = run.match(data).end()
                reached = min(index + jump, len(states) - 1)
                at = states[reached]
                data = data[jump if looping and reached == len(states) - 1 else reached - index :]
            if walk(data, at) != DEAD:
                alive[token] = True

    def _moves_every_character(self, state: int, target: int) -> bool:
        """Whether every valid multi-byte UTF-8 character leads from ``state`` to ``target`` (through one
        intermediate state per byte, whatever the character)."""
        key = (state, target)
        known = self._character_moves.get(key)
        if known is None:
            class_row, classes = self.dfa.class_row, self.dfa.byte_classes
            known = True
            for sequence in _UTF8_SEQUENCES:
                states = {state}
                for low, high in sequence:  # byte classes are contiguous byte ranges
                    first, last = int(classes[low]), int(classes[high])
                    states = {to for at in states for to in class_row(at)[first : last + 1]}
                    if len(states) != 1 or DEAD in states:
                        known = False
                        break
                if not known or states != {target}:
                    known = False
                    break
            self._character_moves[key] = known
        return known

    def _majority_move(self, state: int) -> tuple[int, int]:
        """(the target most bytes of ``state`` lead to, the byte classes that lead there as a bit set);
        (DEAD, 0) when every byte dies."""
        memo = self._majority.get(state)
        if memo is None:
            row = self.dfa.class_row(state)
            sizes = self._class_sizes
            weight: dict[int, int] = {}
            for klass, target in enumerate(row):
                if target != DEAD:
                    weight[target] = weight.get(target, 0) + sizes[klass]
            if not weight:
                memo = (DEAD, 0)
            else:
                target = max(weight, key=weight.__getitem__)
                memo = (target, sum(1 << klass for klass, to in enumerate(row) if to == target))
            self._majority[state] = memo
        return memo

    def _bytes_of_classes(self, class_set: int) -> np.ndarray:
        """The bytes (256 bools, read-only) of a set of byte classes given as a bit set."""
        in_set = self._class_set_masks.get(class_set)
        if in_set is None:
            classes = np.array([(class_set >> klass) & 1 for klass in range(len(self._class_sizes))], dtype=bool)
            in_set = classes[self.dfa.byte_classes]
            in_set.setflags(write=False)
            self._class_set_masks[class_set] = in_set
        return in_set

    def _uniform_powers(self, class_set: int, count: int) -> list[np.ndarray]:
        """``count`` arrays over states: entry ``i`` maps a state to the one ``2**i`` bytes of the byte
        classes ``class_set`` lead to, when every byte of them moves alike at each of those steps (so any
        run of them of that length gets there); DEAD where that fails."""
        powers = self._powers.setdefault(class_set, [])
        if not powers:
            classes = [klass for klass in range(len(self._class_sizes)) if (class_set >> klass) & 1]
            targets = self.dfa.class_transitions[:, classes].astype(np.int64)
            uniform = (targets == targets[:, :1]).all(axis=1)
            powers.append(np.where(uniform, targets[:, 0], DEAD))
        while len(powers) < count:
            powers.append(powers[-1][powers[-1]])
        return powers

    def _first_byte_share(self, class_set: int) -> int:
        """How many content tokens start with a byte of the byte classes ``class_set``."""
        return int(self.vocabulary.token_table.first_byte_counts[self._bytes_of_classes(class_set)].sum())

    def _bytes_in_classes(self, class_set: int) -> int:
        count = self._class_set_bytes.get(class_set)
        if count is None:
            sizes = self._class_sizes
            count = sum(sizes[klass] for klass in range(len(sizes)) if (class_set >> klass) & 1)
            self._class_set_bytes[class_set] = count
        return count

    def _walk_trie_from(self, state: int) -> np.ndarray:
        """``_walk_trie`` for one origin, with fewer operations per level: the first level comes straight
        from the state's live bytes (the root has a child per first byte), and no origin rows are kept."""
        trie = self.vocabulary.trie
        transitions = self._flat_transitions
        targets = self.dfa.transitions[state]
        root_child = trie.root_child
        first = np.flatnonzero((targets != DEAD) & (root_child != 0))
        node, current = root_child[first], targets[first].astype(np.int64)
        reached = [node]
        child_start, child_count, node_byte = trie.child_start, trie.child_count, trie.node_byte
        while node.size:
            counts = child_count[node]
            ends = np.cumsum(counts)
            total = int(ends[-1])
            if total == 0:
                break
            child = np.repeat(child_start[node] - (ends - counts), counts) + np.arange(total)
            following = transitions[np.repeat(current, counts) * 256 + node_byte[child]]
            alive = following != DEAD
            node, current = child[alive], following[alive]
            reached.append(node)
        nodes = np.concatenate(reached)
        begins = trie.token_start[nodes]
        counts = trie.token_start[nodes + 1] - begins
        ends = np.cumsum(counts)
        total = int(ends[-1]) if ends.size else 0
        token_ids = trie.token_ids[np.repeat(begins - (ends - counts), counts) + np.arange(total)]
        mask = self._pack_rows(np.zeros(total, dtype=np.int64), token_ids, 1)[0]
        return mask | self.eos_mask if self.dfa.accepting[state] else mask

    def _walk_trie(self, origins: np.ndarray, with_successors: bool = False, max_frontier: int | None = None):
        """Allowed-token bitmasks, one row per origin state, from one level-synchronous trie walk.

        Each frontier entry is (trie node, DFA state reached, origin row). Expanding a level means
        gathering every child of every frontier node; entries whose state dies are dropped, so a dead
        prefix never expands its subtree. With ``max_frontier``, a level expanding to more entries than
        that stops the walk and the masks are None (it bounds the memory of speculative batches).
        """
        trie = self.vocabulary.trie
        transitions = self._flat_transitions
        node = np.zeros(len(origins), dtype=np.int64)
        state = origins.astype(np.int64)
        row = np.arange(len(origins), dtype=np.int64)
        reached_nodes, reached_rows, reached_states = [], [], []
        while node.size:
            counts = trie.child_count[node]
            total = int(counts.sum())
            if total == 0:
                break
            if max_frontier is not None and total > max_frontier:
                return None, None
            ends = np.cumsum(counts)
            child = np.repeat(trie.child_start[node] - (ends - counts), counts) + np.arange(total)
            parent_state = np.repeat(state, counts)
            row = np.repeat(row, counts)
            next_state = transitions[parent_state * 256 + trie.node_byte[child]]
            alive = next_state != DEAD
            node, state, row = child[alive], next_state[alive], row[alive]
            reached_nodes.append(node)
            reached_rows.append(row)
            reached_states.append(state)
        packed = np.zeros((len(origins), self.num_words), dtype=np.int32)
        successors = [np.empty(0, dtype=np.int64)] * len(origins)
        if reached_nodes:
            nodes = np.concatenate(reached_nodes)
            rows = np.concatenate(reached_rows)
            first = trie.token_start[nodes]
            counts = trie.token_start[nodes + 1] - first
            total = int(counts.sum())
            if total:
                ends = np.cumsum(counts)
                positions = np.repeat(first - (ends - counts), counts) + np.arange(total)
                packed = self._pack_rows(np.repeat(rows, counts), trie.token_ids[positions], len(origins))
            if with_successors:  # only the rare dead-end check needs them
                states = np.concatenate(reached_states)
                ends_token = counts > 0
                pairs = np.unique(rows[ends_token] * self.dfa.num_states + states[ends_token])
                pair_rows, pair_states = np.divmod(pairs, self.dfa.num_states)
                bounds = np.searchsorted(pair_rows, np.arange(len(origins) + 1))
                successors = [pair_states[bounds[i] : bounds[i + 1]] for i in range(len(origins))]
        accepting_rows = np.flatnonzero(self.dfa.accepting[origins])
        packed[accepting_rows] |= self.eos_mask
        return packed, successors

    def _pack_rows(self, rows: np.ndarray, token_ids: np.ndarray, num_rows: int) -> np.ndarray:
        """Packed bitmask rows from (row, token) pairs, each pair at most once. Sparse rows (the usual
        case: restrictive states) are summed word by word, which skips a byte per token of every row."""
        if len(token_ids) > num_rows * self.num_words * 2:
            allowed = np.zeros((num_rows, self.num_words * 32), dtype=bool)
            allowed[rows, token_ids] = True
            return np.packbits(allowed, axis=1, bitorder="little").view("<i4").astype(np.int32, copy=False)
        token_ids = token_ids.astype(np.int64)
        # Distinct tokens of a word are distinct powers of two: their sum is their OR, exact in float64.
        words = np.bincount(
            rows * self.num_words + (token_ids >> 5),
            weights=np.left_shift(1, token_ids & 31).astype(np.float64),
            minlength=num_rows * self.num_words,
        )
        return words.astype(np.uint32).view(np.int32).reshape(num_rows, self.num_words)

    def _bitmask_of(self, token_ids: np.ndarray) -> np.ndarray:
        allowed = np.zeros(self.num_words * 32, dtype=bool)
        allowed[token_ids] = True
        return np.packbits(allowed, bitorder="little").view("<i4").astype(np.int32, copy=False)

    def _check_no_dead_ends(self) -> None:
        """Every state a token sequence can reach must allow some token (or be a complete match), else
        generation could get stuck there.

        A cheap sufficient test first: some single-byte token keeps each state alive. If some states fail
        it, the states reachable through tokens are checked exactly: all of them when the index is eager,
        the start state now and every other state on its first visit (``mask``) when it is lazy.
        """
        trie = self.vocabulary.trie
        root_children = np.arange(trie.child_start[0], trie.child_start[0] + trie.child_count[0])
        single_byte = np.zeros(256, dtype=bool)
        has_token = trie.token_start[root_children + 1] > trie.token_start[root_children]
        single_byte[trie.node_byte[root_children[has_token]]] = True
        transitions = self.dfa.transitions
        live_by_single = ((transitions != DEAD) & single_byte[None, :]).any(axis=1)
        suspects = ~live_by_single & ~self.dfa.accepting
        suspects[DEAD] = False
        if not suspects.any():
            return
        if len(self._class_masks) < self.num_mask_classes - 1:
            # Lazy: the start state is known good (or raises now); the rest is checked on first visit.
            self.mask(self.dfa.start)
            if not self.dfa.accepting[self.dfa.start] and not self.mask(self.dfa.start).any():
                raise self._dead_end_error(self.dfa.start)
            return
        seen = {self.dfa.start}
        stack = [self.dfa.start]
        while stack:
            state = stack.pop()
            if suspects[state] and not self.mask(state).any():
                raise self._dead_end_error(state)
            for target in self._walk_trie(np.array([state]), with_successors=True)[1][0].tolist():
                if target not in seen:
                    seen.add(target)
                    stack.append(target)

    def _dead_end_error(self, state: int) -> IncompatibleVocabularyError:
        return IncompatibleVocabularyError(
            f"regex {self.pattern[:80]!r}: the vocabulary has no token that can continue the output in DFA "
            f"state {state}{' (the start)' if state == self.dfa.start else ''}, so generation would get "
            "stuck; the tokenizer cannot spell some bytes the pattern requires"
        )
