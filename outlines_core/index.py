"""Token-level index: for each DFA state, the set of tokens that keep the output matchable.

A token is allowed in a state when walking its bytes through the DFA never reaches the dead state. Rather
than testing every token in every state up front (what makes eager indexes cost seconds on 128k
vocabularies), the index walks the vocabulary's byte trie from a state the first time that state is
needed: one walk covers all tokens sharing a prefix, and a prefix that dies prunes its whole subtree. The
result is stored only as a packed bitmask (16 KB for 128k tokens), deduplicated across states, so every
later visit is a copy. A first visit also walks, in the same batch, the restrictive states just ahead of
it (lookahead), and permissive states (inside strings) skip the trie for byte-set tests over the whole
vocabulary. Small DFAs are indexed completely at construction in one batched walk.

This module decides which states to walk, when, and which states a walk's mask also holds for; the walks
themselves are ``trie_walk.py`` (restrictive states) and ``loop_walk.py`` (permissive states).
"""

from __future__ import annotations

import functools
import threading
import time

import numpy as np

from . import config, lookahead
from .errors import IncompatibleVocabularyError
from .regex.dfa import DEAD, Dfa, compile_dfa
from .loop_walk import LoopWalk
from .native import kernels
from .sharing import DistinctMasks, StateGroups
from .trie_walk import TrieWalk
from .vocabulary import Vocabulary


#: ``Index._prepare_loop_walks`` follows the chains of this many uncomputed states one by one (tens of
#: microseconds each); past it, one per distinct set of live bytes.
_PREPARED_ONE_BY_ONE = 64

#: Up to this many states, ``Index._uncomputed_representatives`` scans the mask classes in Python.
_PYTHON_REPRESENTATIVES_STATES = 256

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
        self._mask_class_list = self._mask_class.tolist()
        self._class_masks: dict[int, np.ndarray] = {}
        # Index eagerly while it is cheap (small DFAs, restrictive states): the start state first, then
        # the other mask classes within a time budget; whatever is left is computed on first visit.
        if any(self._loop_walkable):
            self._loop_walker  # its tables are setup, not the eager pass's mask work (a cached property)
        deadline = time.perf_counter() + config.EAGER_INDEX_BUDGET_SECONDS
        if not self._compute_all_restrictive_at_once():
            self._compute_masks(np.array([self.dfa.start]))
        # In batches of one trie walk, the clock checked before each walk: a permissive state's loop walk
        # costs far more than a restrictive state's share of a batch, and the budget must hold either way.
        for batch in self._eager_batches(self._eager_order(self._eager_candidates(self._uncomputed_representatives()))):
            if time.perf_counter() >= deadline:
                break
            self._compute_masks(batch, deadline, batch_states=len(batch))
        self._check_no_dead_ends()
        if len(self._class_masks) < self.num_mask_classes - 1:  # some are left for their first visits
            self._deep_expansion  # a cached property: made now, at compile time, for the decode's lookahead
            self._prepare_loop_walks()
        self._decoding = True  # from now on a first visit is a decode step (``_with_lookahead``)
        self._serve_computed_masks()

    def _serve_computed_masks(self) -> None:
        """Put every state whose mask class is computed into the per-state cache that ``Guide.fill_bitmask``
        reads first, when no state awaits the dead-end check on its first serve (``mask``)."""
        if self._dead_end_suspects is not None or not self._class_masks:
            return
        class_masks = self._class_masks
        self._masks.update(
            (state, class_masks[klass]) for state, klass in enumerate(self._mask_class_list) if klass in class_masks
        )

    @classmethod
    def cached(cls, regex: str, vocabulary: Vocabulary) -> "Index":
        """``Index(regex, vocabulary)`` through the on-disk cache (``outlines_core.index_cache``): a second
        process loads the DFA and the masks computed so far instead of compiling again."""
        from . import index_cache

        return index_cache.load_or_build(regex, vocabulary)

    @classmethod
    def from_parts(
        cls, dfa: Dfa, vocabulary: Vocabulary, mask_class: np.ndarray, masks: np.ndarray, class_rows: dict[int, int]
    ) -> "Index":
        """An index rebuilt from what a previous one computed (``index_cache`` loads these from disk): the
        distinct masks as rows of ``masks``, and the row of each computed class."""
        index = cls.__new__(cls)
        index._setup(dfa, vocabulary)
        index._mask_class = np.asarray(mask_class, dtype=np.int64)
        index._mask_class_list = index._mask_class.tolist()
        shared = index._distinct.shared(np.asarray(masks, dtype=np.int32)) if len(masks) else []
        index._class_masks = {int(klass): shared[row] for klass, row in class_rows.items()}
        index._decoding = True
        # A lazy index checks its suspects on their first visit, as the one that was saved would have.
        suspects = index._dead_end_suspect_states()
        if suspects.any() and len(index._class_masks) < index.num_mask_classes - 1:
            index._dead_end_suspects = suspects
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
        self._decoding = False  # still in the constructor, whose walks are compile time, not a step
        self._masks: dict[int, np.ndarray] = {}
        # Equal masks of different states are stored once (``sharing.DistinctMasks``).
        self._distinct = DistinctMasks()
        self._allowed_ids: dict[int, np.ndarray] = {}
        self._next_state: dict[tuple[int, int], int] = {}
        # Non-accepting states no single-byte token keeps alive: their mask is checked on first use.
        self._dead_end_suspects: np.ndarray | None = None
        # Per walk depth d, the groups of dfa.indistinguishable_within(d + 1) (``_share_with_alike``);
        # depths with the same recorded partition share one object.
        self._alike_at_depth: dict[int, StateGroups] = {}
        # Per depth of ``config.LOOP_WALK_ALIKE_DEPTHS``: each state's group at that depth, and one loop-walked
        # state's mask per group (``_alike_mask``); made when the first loop-walked mask is stored.
        self._loop_walk_groups: list[tuple[int, list[int], dict[int, np.ndarray]]] | None = None
        # Read on every step (advance): plain attributes, not properties or method calls.
        self._size = vocabulary.size
        self._eos_ids = frozenset(vocabulary.eos_token_ids)
        # An allowed token other than EOS is content, so within the list.
        self._token_bytes = vocabulary.token_list
        self._token_count = len(self._token_bytes)  # may be below size: ids past it have no bytes
        self._trie_walk = TrieWalk(dfa, vocabulary)  # restrictive states (trie_walk.py)
        transitions = self.dfa.transitions
        self._step = transitions.item  # (state, byte) -> state, without converting the table
        # ``next_state`` in C: the C object's method replaces the Python one on this instance, so a decode
        # step's move is one call with no Python frame (0.3 to 0.5 us less; the method, with its cache,
        # stays the fallback without the C kernels). Made here, where its microseconds are compile time.
        if kernels is not None and config.NATIVE_MOVES:
            table = vocabulary.token_table
            eos_ids = np.array(sorted(self._eos_ids), dtype=np.int64)
            mover = kernels.TokenMover(transitions, table.flat, table.offsets, self.dfa.accepting, eos_ids)
            self.next_state = mover.next_state
        #: States with no way to extend the output (every byte leads to the dead state).
        self._no_continuation = ~(self.dfa.class_transitions != DEAD).any(axis=1)  # over classes: fewer columns
        self.eos_mask = self._trie_walk.eos_mask
        if not self.dfa.accepting.any():
            raise IncompatibleVocabularyError(f"regex {self.pattern!r} matches no string at all")

    @functools.cached_property
    def _loop_walker(self) -> LoopWalk:
        """The loop walk of permissive states (loop_walk.py), made on first use: a DFA of restrictive states
        only (a number, an IP address, a date) never needs its per-DFA tables."""
        return LoopWalk(self.dfa, self.vocabulary)

    def _loop_walk(self, state: int, alike: tuple[np.ndarray, int] | None = None) -> np.ndarray | None:
        """``LoopWalk.mask``: the state's mask, or None for the trie walk."""
        return self._loop_walker.mask(state, alike)

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
            cached = self._class_masks.get(self._mask_class_list[state])
            if cached is None:
                self._compute_masks(np.array([state]))
                cached = self._class_masks[self._mask_class_list[state]]
            # Whichever walk made the mask (this visit's, a lookahead batch, a state proven alike).
            suspects = self._dead_end_suspects
            if suspects is not None and suspects[state] and not cached.any():
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
        if not 0 <= token_id < self._size:
            return False
        mask = self._masks.get(state)
        word = int((self.mask(state) if mask is None else mask)[token_id >> 5])
        return bool((word >> (token_id & 31)) & 1)

    def next_state(self, state: int, token_id: int) -> int:
        """The state after ``token_id``; ``DEAD`` if the token is not allowed, ``FINISHED`` after EOS.

        A content token is allowed exactly when its bytes walk from ``state`` without dying (the masks are
        made by that rule), so a move is one walk, with no mask lookup. With the C kernels, an index's
        ``next_state`` is ``_native.TokenMover.next_state`` (set in ``_setup``), which follows this rule;
        this is the fallback, which walks each (state, token) pair once and serves it from a cache after.
        """
        key = (state, token_id)
        target = self._next_state.get(key)  # holds allowed tokens only
        if target is not None:
            return target
        if token_id in self._eos_ids:
            return FINISHED if self.is_accepting(state) else DEAD
        if state == FINISHED or not 0 <= token_id < self._token_count:
            return DEAD
        data = self._token_bytes[token_id]
        if data is None:  # special tokens are never content
            return DEAD
        # Dfa.walk inlined: a first move is on every step of a first decode, where a call costs 0.1 us.
        step = self._step
        target = state
        for byte in data:
            target = step(target, byte)
            if target == DEAD:
                return DEAD
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
    @functools.cached_property
    def num_mask_classes(self) -> int:
        """How many distinct token masks the DFA's states can have (see ``_mask_classes``); kept, as the mask
        classes are (the constructor asks four times, a scan of every state each)."""
        return int(self._mask_class.max()) + 1

    def _mask_classes(self) -> np.ndarray:
        """Group states that provably allow the same tokens, so each group is walked once.

        A token is allowed from a state iff its bytes never lead to the dead state, so two states that no
        string up to the longest token that could survive tells apart (and of equal acceptance, for EOS)
        have equal masks: the DFA's Moore refinement at that many rounds, recorded by minimization.
        Counting repetitions such as ``[a-z ,]{10,200}`` collapse from hundreds of states to a few masks.
        Small DFAs are refined again by liveness alone, which can merge more (a walk saved per merge
        costs more than the refinement there).
        """
        depth = self.vocabulary.longest_token_within(self._live_bytes)
        by_liveness = self.dfa.num_states <= config.LIVENESS_CLASSES_MAX_STATES
        return np.asarray(self.dfa.indistinguishable_within(depth, by_liveness=by_liveness), dtype=np.int64)

    @functools.cached_property
    def _live_bytes(self) -> np.ndarray:
        """Bytes some live state can consume without dying: only tokens made of these can be allowed."""
        # Over byte classes, then spread to bytes: the 256-column table is ten times wider (0.1 ms on nested-8).
        return (self.dfa.class_transitions[1:] != DEAD).any(axis=0)[self.dfa.byte_classes]

    def _uncomputed_representatives(self) -> np.ndarray:
        """The first state of each mask class not computed yet (the dead state's class left out), by class."""
        done = self._class_masks.keys()
        if self.num_states <= _PYTHON_REPRESENTATIVES_STATES:
            # A pass over the list: np.unique's sort costs 30 to 50 us of a small regex's 1 ms compile.
            first: dict[int, int] = {}
            for state, klass in enumerate(self._mask_class_list):
                first.setdefault(klass, state)
            first.pop(self._mask_class_list[DEAD], None)
            return np.array([s for k, s in sorted(first.items()) if k not in done], dtype=np.int64)
        _, first = np.unique(self._mask_class, return_index=True)
        first = first[first != DEAD]
        computed = np.zeros(self.num_mask_classes, dtype=bool)
        computed[list(done)] = True
        return first[~computed[self._mask_class[first]]].astype(np.int64, copy=False)

    @functools.cached_property
    def _live_byte_counts(self) -> np.ndarray:
        """Per state, how many bytes do not lead to the dead state."""
        # Class sizes summed over live classes: the 256-column table is ten times wider.
        return lookahead.live_class_sums(self.dfa.class_transitions, self.dfa.class_sizes).astype(np.int64)

    @functools.cached_property
    def _loop_walkable_states(self) -> np.ndarray:
        """Per state: enough live bytes for a loop walk (``LoopWalk.mask`` declines the others)."""
        return self._live_byte_counts >= config.LOOP_WALK_MIN_BYTES

    @functools.cached_property
    def _loop_walkable(self) -> list[bool]:
        """``_loop_walkable_states`` as a list, read state by state in Python loops."""
        return self._loop_walkable_states.tolist()

    @functools.cached_property
    def _permissive(self) -> np.ndarray:
        """Per state: more than ``config.LOOKAHEAD_MAX_LIVE_BYTES`` bytes live (inside strings, free text)."""
        return self._live_byte_counts > config.LOOKAHEAD_MAX_LIVE_BYTES

    def _eager_candidates(self, states: np.ndarray) -> np.ndarray:
        """``states`` less those the eager pass leaves to their first visit (``lookahead.eager_candidates``)."""
        states = self._without_alike_loop_walks(states)
        if not self._needs_lookahead_tables(states):  # it keeps every permissive state
            return states
        return lookahead.eager_candidates(states, self._lookahead_tables, self._permissive, self.dfa.start)

    def _without_alike_loop_walks(self, states: np.ndarray) -> np.ndarray:
        """``states`` less the loop-walkable ones alike within ``config.EAGER_ALIKE_DEPTH`` bytes to an earlier
        one of them: a counted run's positions after its first. Each one's first visit borrows the mask of
        the tokens up to that length from an alike state's (``_alike_mask``) and walks only the longer
        ones, tens of microseconds, where the eager pass spent most of its budget on them."""
        depth = config.EAGER_ALIKE_DEPTH
        if not depth or not len(states):
            return states
        walkable = self._loop_walkable_states[states]
        if not walkable.any():
            return states
        groups = self.dfa.indistinguishable_within(depth)[states]
        keep = np.ones(len(states), dtype=bool)
        # The first walkable state of each group stays; restrictive states always do.
        walkable_at = np.flatnonzero(walkable)
        _, first = np.unique(groups[walkable_at], return_index=True)
        keep[walkable_at] = False
        keep[walkable_at[first]] = True
        return states[keep]

    def _eager_order(self, states: np.ndarray) -> np.ndarray:
        """``states`` in the eager pass's order (``lookahead.eager_order``)."""
        if not self._needs_lookahead_tables(states):  # permissive states keep their order
            return states
        return lookahead.eager_order(states, self._lookahead_tables.expansion, self._permissive)

    def _eager_batches(self, states: np.ndarray):
        """The eager pass's batches of ``states`` (``lookahead.eager_batches``)."""
        if not len(states):
            return iter(())
        expansion = self._lookahead_tables.expansion if self._needs_lookahead_tables(states) else []
        return lookahead.eager_batches(states, expansion, self._permissive)

    def _needs_lookahead_tables(self, states: np.ndarray) -> bool:
        """Whether the eager pass's order of ``states`` reads the lookahead tables: only restrictive states'
        estimates are read, so a DFA whose uncomputed states are all permissive (an e-mail address: 0.15
        ms of a 2 ms compile) and a complete index never build them."""
        return bool(len(states)) and not self._permissive[states].all()

    def _compute_masks(
        self, states: np.ndarray, deadline: float | None = None, batch_states: int | None = None
    ) -> None:
        """Walk the token trie from each of ``states`` and store the masks of their classes, ``batch_states``
        states a walk (default ``config.INDEX_BATCH_STATES``: a few, bounding the frontier's memory on
        permissive states). Past ``deadline`` (a ``time.perf_counter`` value), the states not started yet
        are left for their first visit."""
        todo, classes = [], set()
        for state in (int(s) for s in states):
            klass = self._mask_class_list[state]
            if klass not in self._class_masks and klass not in classes:
                classes.add(klass)
                todo.append(state)
        by_trie = []
        # A loop walk needs ``config.LOOP_WALK_MIN_BYTES`` live bytes: the others go to the trie walk without
        # asking for a chain (a key's letters, a number's digits: 5 to 10 us each in the eager pass).
        loop_walkable = self._loop_walkable
        for state in todo:
            if deadline is not None and time.perf_counter() >= deadline:
                return
            if not loop_walkable[state]:
                by_trie.append(state)
                continue
            mask = self._loop_walk(state, self._alike_mask(state) if self._loop_walk_groups else None)
            if mask is None:
                by_trie.append(state)
            else:
                self._store_masks([state], mask[None, :], loop_walked=True)
        if len(by_trie) == 1:  # a first visit: the common case while decoding
            batch = self._with_lookahead(by_trie[0])
            if len(batch) > 1:
                origins = np.array(batch, dtype=np.int64)
                masks, _, depths = self._trie_walk.masks(origins, max_frontier=config.LOOKAHEAD_MAX_FRONTIER)
                if masks is not None:
                    self._store_masks(batch, masks, depths.tolist())
                    return
                # Some state fans out (a run of letters, where words go on): never batch these again.
                takeable = self._lookahead_tables.takeable
                for state in batch[1:]:
                    takeable[state] = False
            mask, depth = self._trie_walk.mask(batch[0])
            self._store_masks(batch[:1], mask[None, :], [depth])
            return
        batch_states = batch_states or config.INDEX_BATCH_STATES
        for begin in range(0, len(by_trie), batch_states):
            batch = np.array(by_trie[begin : begin + batch_states], dtype=np.int64)
            if deadline is None:
                masks, _, depths = self._trie_walk.masks(batch)
            else:
                masks, _, depths = self._trie_walk.masks_within(batch, deadline - time.perf_counter())
                if masks is None:  # it would end past the deadline: left for their first visits
                    return
            self._store_masks(batch.tolist(), masks, depths.tolist())

    def _compute_all_restrictive_at_once(self) -> bool:
        """Compute every mask class in one trie walk when the DFA has at most ``config.ONE_WALK_CLASSES`` of
        them, none permissive (a number, an IP address, a date): the start state's lookahead batch and the
        eager pass would take them all anyway, after building the lookahead tables (0.15 ms of a 1.5 ms
        compile). False when the DFA is not such, or the walk fans out past ``config.LOOKAHEAD_MAX_FRONTIER``
        nodes, or when the eager pass is off (``config.EAGER_INDEX_BUDGET_SECONDS``): states are then computed
        on their first visit."""
        if config.EAGER_INDEX_BUDGET_SECONDS <= 0 or self.num_mask_classes > config.ONE_WALK_CLASSES + 1:
            return False  # the second test spares listing the representatives of a large DFA (0.2 ms on nested-8)
        representatives = self._uncomputed_representatives()
        if not 0 < len(representatives) <= config.ONE_WALK_CLASSES or self._permissive[representatives].any():
            return False
        masks, _, depths = self._trie_walk.masks(representatives, max_frontier=config.LOOKAHEAD_MAX_FRONTIER)
        if masks is None:
            return False
        self._store_masks(representatives.tolist(), masks, depths.tolist())
        return True

    def _with_lookahead(self, state: int) -> list[int]:
        """``state`` and the restrictive states a decode is likely to need next, for one batched walk.

        A trie walk from a restrictive state (inside a key, a number, a fixed word) costs 25 to 60
        microseconds, most of it numpy's per-call overhead, which a batch pays once for all its origins
        (a batch of 32 costs 10 to 25 us a state). So a first visit also walks the uncomputed states
        nearest to it (breadth-first over the DFA), while their level-two trie expansions stay within
        ``config.LOOKAHEAD_EXPANSION_BUDGET``: the steps that follow are then copies of a stored mask.
        Permissive states, and those a few bytes before one, are left to their own visit, and the search
        does not go past a permissive state: a decode spends many steps in one (a string's content), and
        what lies beyond it (an escape's hex digits, the next field) is batched when the decode gets there.
        """
        targets, starts, expansion, takeable, crossable = self._lookahead_tables
        mask_class = self._mask_class_list
        budget = config.LOOKAHEAD_EXPANSION_BUDGET - expansion[state]
        # The third-level budget bounds a decode step; the constructor's batch (the start state's) is
        # compile time, where one large batch costs less than the first visits it saves.
        # The constructor's batch leaves out, and does not search past, the states the loop walk takes: the
        # eager pass computes those next, and a counted run of letters among them made the start batch of
        # ``[A-Z][a-z ,]{10,200}\.`` fan out past ``config.LOOKAHEAD_MAX_FRONTIER`` (1.4 ms of trie walk
        # thrown away before the start state's own walk).
        if self._decoding:
            deep_expansion = self._deep_expansion
            deep_budget = config.LOOKAHEAD_DEEP_EXPANSION_BUDGET - deep_expansion[state]
            loop_walked = None
        else:
            deep_expansion, deep_budget = None, 0
            loop_walkable = self._loop_walkable
            loop_walked = lambda target: loop_walkable[target] and self._loop_walker.takes(target)  # noqa: E731
        batch, classes = [state], {mask_class[state]}
        seen, queue = {state}, [state]
        done = self._class_masks
        for origin in queue:
            if len(batch) >= config.LOOKAHEAD_STATES or len(seen) > config.LOOKAHEAD_SEARCH_STATES:
                break
            for target in targets[starts[origin] : starts[origin + 1]]:
                if target in seen:
                    continue
                seen.add(target)
                if loop_walked is not None and loop_walked(target):
                    continue
                if crossable[target]:
                    queue.append(target)
                klass, cost = mask_class[target], expansion[target]
                deep_cost = deep_expansion[target] if deep_expansion is not None else 0
                if (
                    cost <= budget
                    and deep_cost <= deep_budget
                    and klass not in done
                    and klass not in classes
                    and takeable[target]
                ):
                    budget -= cost
                    deep_budget -= deep_cost
                    classes.add(klass)
                    batch.append(target)
        return batch[: config.LOOKAHEAD_STATES]

    @functools.cached_property
    def _lookahead_tables(self) -> lookahead.LookaheadTables:
        return lookahead.lookahead_tables(self.dfa, self.vocabulary.trie, self._permissive)

    def _prepare_loop_walks(self) -> None:
        """Build, at construction, the vocabulary's text runs that the loop walks of uncomputed states
        will ask for: one per byte set and vocabulary, 1 to 6 ms each the first time (an e-mail's domain
        labels, a JSON string's characters), which would otherwise fall into a decode step. Past
        ``_PREPARED_ONE_BY_ONE`` states, one state per distinct set of live bytes stands for the others
        (the positions of a string share theirs), which may miss a set."""
        computed = np.zeros(self.num_mask_classes, dtype=bool)
        computed[list(self._class_masks)] = True
        pending = np.flatnonzero(self._loop_walkable_states & ~computed[self._mask_class])
        if not len(pending):
            return
        if len(pending) > _PREPARED_ONE_BY_ONE:
            # A state's live byte classes decide its live bytes: 256 columns would cost ten times more.
            live = np.packbits(self.dfa.class_transitions[pending] != DEAD, axis=1)
            _, first = np.unique(live.view(np.dtype((np.void, live.shape[1]))).reshape(-1), return_index=True)
            pending = pending[np.sort(first)]
        for state in pending.tolist():
            self._loop_walker.prepare(state)

    @functools.cached_property
    def _deep_expansion(self) -> list[int]:
        """Per state, ``lookahead.third_level_estimate``: made at the end of the constructor when states are
        left for their first visits (the decode steps whose lookahead budgets it), never for an index complete
        by then (the small DFAs, whose compile it would lengthen by a tenth)."""
        estimate = lookahead.third_level_estimate(self.dfa, self.vocabulary.trie, self._live_bytes)
        return estimate.tolist()

    def _store_masks(
        self, states: list[int], masks: np.ndarray, depths: list[int] | None = None, loop_walked: bool = False
    ) -> None:
        """Store the masks of ``states`` (and of their mask classes); with the depths of the trie walks that
        made them, also those of the states they prove alike (``_share_with_alike``); those a loop walk made
        serve the loop walks of states alike to them (``_alike_mask``)."""
        with self._lock:
            for state, shared in zip(states, self._distinct.shared(masks)):
                # Per class only: ``mask`` fills its per-state cache on first visit, after the dead-end check.
                self._class_masks[self._mask_class_list[state]] = shared
                if loop_walked:
                    self._remember_for_loop_walks(state, shared)
            if depths is not None:
                self._share_with_alike(states, depths)

    def _remember_for_loop_walks(self, state: int, mask: np.ndarray) -> None:
        """Keep a loop-walked state's mask for the loop walks of the states alike to it (``_alike_mask``)."""
        if self._loop_walk_groups is None:
            self._loop_walk_groups = [
                (depth, self.dfa.indistinguishable_within(depth).tolist(), {})
                for depth in config.LOOP_WALK_ALIKE_DEPTHS
            ]
        for _, groups, known in self._loop_walk_groups:
            known.setdefault(groups[state], mask)

    def _alike_mask(self, state: int) -> tuple[np.ndarray, int] | None:
        """A loop-walked state's mask, of a state that no string of ``d`` bytes tells apart from ``state``,
        with ``d``, the largest of ``config.LOOP_WALK_ALIKE_DEPTHS`` for which one is known; or None.

        Both states allow the same tokens of up to ``d`` bytes, so ``state``'s loop walk walks only the
        longer ones (``LoopWalk.mask``). A counted run's positions are alike up to the characters left: in a
        string of at most 16 characters, the state after 4 of them and the one after 2 differ only on
        tokens of more than 12 bytes (4,961 of llama-bpe's 128,000 tokens).
        """
        for depth, groups, known in self._loop_walk_groups:
            mask = known.get(groups[state])
            if mask is not None:
                return mask, depth
        return None

    def _share_with_alike(self, states: list[int], depths: list[int]) -> None:
        """Give each walked state's mask to the states no short string tells apart from it.

        A trie walk from ``state`` whose longest live token prefix has ``depth`` bytes proves its mask for
        every state that no string of ``depth + 1`` bytes tells apart from it (the DFA's refinement at that
        many rounds): a token alive from such a state cannot be longer than ``depth`` (its first
        ``depth + 1`` bytes would be alive from ``state`` too, a prefix the walk would have reached), and
        tokens up to that length live or die alike from both. The mask classes use the longest token of
        the whole vocabulary instead, so they miss these: a 30-field object's keys (``"field_07"``) differ
        only beyond the few bytes any token spans, and 672 states have 88 distinct masks.
        """
        mask_class, done = self._mask_class_list, self._class_masks
        for state, depth in zip(states, depths):
            alike = self._alike_within(depth).members_once(state)
            if alike is not None:
                mask = done[mask_class[state]]
                for member in alike.tolist():
                    done.setdefault(mask_class[member], mask)

    def _alike_within(self, depth: int) -> StateGroups:
        """The groups of states no string of ``depth + 1`` bytes tells apart."""
        groups = self._alike_at_depth.get(depth)
        if groups is None:
            partition = self.dfa.indistinguishable_within(depth + 1)
            for known in self._alike_at_depth.values():  # a handful: one per recorded round asked
                if known.groups is partition:
                    groups = known
                    break
            else:
                groups = StateGroups(partition)
            self._alike_at_depth[depth] = groups
        return groups

    @property
    def num_unique_masks(self) -> int:
        """How many distinct masks are stored (states with equal masks share one array)."""
        return len(self._distinct)

    def _check_no_dead_ends(self) -> None:
        """Every state a token sequence can reach must allow some token (or be a complete match), else
        generation could get stuck there.

        A cheap sufficient test first: some single-byte token keeps each state alive. If some states fail
        it, the states reachable through tokens are checked exactly: all of them when the index is eager,
        the start state now and every other state on its first visit (``mask``) when it is lazy.
        """
        suspects = self._dead_end_suspect_states()
        if not suspects.any():
            return
        if len(self._class_masks) < self.num_mask_classes - 1:
            # Lazy: the start state is checked now, every other suspect on its first visit (``mask``).
            self._dead_end_suspects = suspects
            self.mask(self.dfa.start)
            return
        seen = {self.dfa.start}
        stack = [self.dfa.start]
        while stack:
            state = stack.pop()
            if suspects[state] and not self.mask(state).any():
                raise self._dead_end_error(state)
            for target in self._trie_walk.masks(np.array([state]), with_successors=True)[1][0].tolist():
                if target not in seen:
                    seen.add(target)
                    stack.append(target)

    def _dead_end_suspect_states(self) -> np.ndarray:
        """The states (bool per state) that no single-byte token keeps alive and that do not accept."""
        single_byte = self.vocabulary.trie.single_byte_tokens  # a per-vocabulary table
        # Over byte classes: a class holding a single-byte token's byte keeps a state alive if it lives there.
        single_class = np.zeros(self.dfa.class_transitions.shape[1], dtype=bool)
        single_class[self.dfa.byte_classes[single_byte]] = True
        live_by_single = ((self.dfa.class_transitions != DEAD) & single_class).any(axis=1)
        suspects = ~live_by_single & ~self.dfa.accepting
        suspects[DEAD] = False
        return suspects

    def _dead_end_error(self, state: int) -> IncompatibleVocabularyError:
        return IncompatibleVocabularyError(
            f"regex {self.pattern[:80]!r}: the vocabulary has no token that can continue the output in DFA "
            f"state {state}{' (the start)' if state == self.dfa.start else ''}, so generation would get "
            "stuck; the tokenizer cannot spell some bytes the pattern requires"
        )
