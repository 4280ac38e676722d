"""Allowed-token bitmasks of restrictive DFA states by walking the vocabulary's byte trie.

A token is allowed from a state when its bytes walk through the DFA without reaching the dead state. The
walk goes level by level over the trie (children contiguous, so a level is a few numpy gathers), with the
frontier as arrays of (trie node, DFA state reached, origin row): a prefix that dies prunes its whole
subtree, so a state inside a key or a number visits a few hundred nodes of a 128k-token trie. Several
origin states share one walk (``Index``'s lookahead batches), which pays numpy's per-call overhead once.
Permissive states, where the walk would visit most of the trie, go to ``loop_walk.py`` instead.
"""

from __future__ import annotations

import numpy as np

from . import config
from .arrays import concatenated_ranges
from .native import kernels as _native
from .regex.dfa import DEAD, Dfa
from .vocabulary import Vocabulary

def _walk_in_c() -> bool:
    """The C walk is built and not turned off (``config.NATIVE_TRIE_WALK``)."""
    return _native is not None and config.NATIVE_TRIE_WALK


#: Trie nodes the C walk visits a second (measured on this project's 2-core machine: 110 to 150 per us on
#: the large batches of llama-bpe; ``TrieWalk.masks_within`` turns a time left into a node bound with it).
_C_NODES_PER_SECOND = 120e6


class TrieWalk:
    """The trie walks of one DFA over one vocabulary; holds no per-walk state, so it is thread-safe."""

    def __init__(self, dfa: Dfa, vocabulary: Vocabulary) -> None:
        self.dfa = dfa
        self.trie = vocabulary.trie
        self.num_words = (vocabulary.size + 31) // 32
        self.eos_mask = vocabulary.eos_bitmask
        trie = self.trie
        # The C walk's arguments, in the dtypes it checks (no copies: these are the tables' own).
        self._native_tables = (
            np.ascontiguousarray(trie.child_start, dtype=np.int64),
            np.ascontiguousarray(trie.child_count, dtype=np.int64),
            np.ascontiguousarray(trie.node_byte, dtype=np.int32),
            np.ascontiguousarray(trie.token_start, dtype=np.int64),
            np.ascontiguousarray(trie.token_ids, dtype=np.int32),
            np.ascontiguousarray(trie.root_child, dtype=np.int64),
            np.ascontiguousarray(dfa.transitions, dtype=np.int32),
        )

    @property
    def flat_transitions(self) -> np.ndarray:
        """state * 256 + byte -> state, for the numpy walks only: the int64 copy of a large DFA's table costs
        half a millisecond of its compile, which the C walk never needs."""
        return self.dfa.flat_transitions

    def _native_masks(self, origins: np.ndarray, max_nodes: int | None):
        """``masks`` by the C walk: the masks (None past ``max_nodes`` visited trie nodes) and the depths."""
        origins = np.ascontiguousarray(origins, dtype=np.int64)
        packed = np.zeros((len(origins), self.num_words), dtype=np.int32)
        depths = np.zeros(len(origins), dtype=np.int64)
        limit = max_nodes if max_nodes is not None else np.iinfo(np.int64).max
        if _native.trie_masks(*self._native_tables, origins, packed, depths, limit) < 0:
            return None, None
        packed[self.dfa.accepting[origins]] |= self.eos_mask
        return packed, depths

    def masks_within(self, origins: np.ndarray, seconds: float):
        """``masks`` of ``origins``, or (None, None, None) when the C walk would take longer than ``seconds``
        (it stops past the trie nodes it visits in that time, ``_C_NODES_PER_SECOND``): the eager pass's
        batches end by its deadline, where a batch begun just before it (the digits of a string's escapes,
        whose walks reach the string after them) ran 1 to 4 ms past. The numpy walk is not bounded."""
        if not _walk_in_c():
            return self.masks(origins)
        return self.masks(origins, max_frontier=max(1, int(seconds * _C_NODES_PER_SECOND)))

    def mask(self, state: int) -> tuple[np.ndarray, int]:
        """``masks`` for one origin, with fewer operations per level: the first level comes straight
        from the state's live bytes (the root has a child per first byte), and no origin rows are kept.
        Returns the mask and the walk's depth (``masks``)."""
        if _walk_in_c():
            packed, depths = self._native_masks(np.array([state]), None)
            return packed[0], int(depths[0])
        trie = self.trie
        transitions = self.flat_transitions
        targets = self.dfa.transitions[state]
        root_child = trie.root_child
        first = np.flatnonzero((targets != DEAD) & (root_child != 0))
        node, current = root_child[first], targets[first].astype(np.int64)
        reached = [node]
        child_start, child_count, node_byte = trie.child_start, trie.child_count, trie.node_byte
        while node.size:
            counts = child_count[node]
            total = int(counts.sum())
            if total == 0:
                break
            if total <= config.TRIE_WALK_PYTHON_CHILDREN:
                node, current = node[counts > 0], current[counts > 0]  # as in ``masks``
                levels, node, current, _ = self._small_levels(node, current, np.zeros(node.size, dtype=np.int64))
                reached.extend(level_nodes for level_nodes, _, _ in levels)
                continue
            child = concatenated_ranges(child_start[node], counts, total)
            following = transitions[np.repeat(current, counts) * 256 + node_byte[child]]
            alive = following != DEAD
            node, current = child[alive], following[alive]
            reached.append(node)
        nodes = np.concatenate(reached)
        begins = trie.token_start[nodes]
        counts = trie.token_start[nodes + 1] - begins
        mask = self.bitmask_of(trie.token_ids[concatenated_ranges(begins, counts, int(counts.sum()))])
        depth = sum(1 for level in reached if level.size)
        return (mask | self.eos_mask if self.dfa.accepting[state] else mask), depth

    def masks(self, origins: np.ndarray, with_successors: bool = False, max_frontier: int | None = None):
        """Allowed-token bitmasks, one row per origin state, from one level-synchronous trie walk.

        Each frontier entry is (trie node, DFA state reached, origin row). Expanding a level means
        gathering every child of every frontier node; entries whose state dies are dropped, so a dead
        prefix never expands its subtree. With ``max_frontier``, a level expanding to more entries than
        that stops the walk and the masks are None (it bounds the memory of speculative batches).
        Returns (masks, successors, depths): an origin's depth is the length of the longest token prefix
        alive from it (``Index._share_with_alike`` proves masks for alike states with it).
        The C walk bounds the trie nodes it visits in all by ``max_frontier`` instead.
        """
        if _walk_in_c() and not with_successors:
            packed, depths = self._native_masks(origins, max_frontier)
            if packed is None:
                return None, None, None
            return packed, [np.empty(0, dtype=np.int64)] * len(origins), depths
        trie = self.trie
        transitions = self.flat_transitions
        # The first level straight from each origin's live bytes (the root has a child per first byte),
        # rather than every root child of every origin: 256 entries an origin, most of them dead.
        targets = self.dfa.transitions[origins]
        row, first_byte = np.nonzero((targets != DEAD) & (trie.root_child != 0))
        node = trie.root_child[first_byte].astype(np.int64)
        state = targets[row, first_byte].astype(np.int64)
        reached_nodes, reached_rows, reached_states = [node], [row], [state]
        while node.size:
            counts = trie.child_count[node]
            total = int(counts.sum())
            if total == 0:
                break
            if total <= config.TRIE_WALK_PYTHON_CHILDREN:
                parents = counts > 0  # a wide last level is mostly leaves: Python sees at most ``total`` nodes
                levels, node, state, row = self._small_levels(node[parents], state[parents], row[parents])
                for level_nodes, level_rows, level_states in levels:
                    reached_nodes.append(level_nodes)
                    reached_rows.append(level_rows)
                    reached_states.append(level_states)
                continue
            if max_frontier is not None and total > max_frontier:
                return None, None, None
            child = concatenated_ranges(trie.child_start[node], counts, total)
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
                positions = concatenated_ranges(first, counts, total)
                packed = self.pack_rows(np.repeat(rows, counts), trie.token_ids[positions], len(origins))
            if with_successors:  # only the rare dead-end check needs them
                states = np.concatenate(reached_states)
                ends_token = counts > 0
                pairs = np.unique(rows[ends_token] * self.dfa.num_states + states[ends_token])
                pair_rows, pair_states = np.divmod(pairs, self.dfa.num_states)
                bounds = np.searchsorted(pair_rows, np.arange(len(origins) + 1))
                successors = [pair_states[bounds[i] : bounds[i + 1]] for i in range(len(origins))]
        accepting_rows = np.flatnonzero(self.dfa.accepting[origins])
        packed[accepting_rows] |= self.eos_mask
        depths = np.zeros(len(origins), dtype=np.int64)
        for level, rows_alive in enumerate(reached_rows, start=1):
            depths[rows_alive] = level
        return packed, successors, depths

    def _small_levels(self, node: np.ndarray, state: np.ndarray, row: np.ndarray):
        """Trie walk levels expanded in Python while each has at most ``config.TRIE_WALK_PYTHON_CHILDREN``
        children: a numpy level costs about ten calls however few its entries, and the walks from value
        states end in long chains of one or two (gpt-2's 16-digit tokens from an integer: 12 levels of one
        entry, half of a lookahead batch's time). Returns the levels as (nodes, rows, states) arrays and the
        frontier left (empty, or one that grew past the bound, for the numpy levels)."""
        trie = self.trie
        child_count, child_start, node_byte = trie.child_count.item, trie.child_start.item, trie.node_byte.item
        step = self.flat_transitions.item
        limit = config.TRIE_WALK_PYTHON_CHILDREN
        levels = []
        nodes, states, rows = node.tolist(), state.tolist(), row.tolist()
        while nodes:
            counts = [child_count(parent) for parent in nodes]
            if sum(counts) > limit:
                break
            next_nodes, next_states, next_rows = [], [], []
            for parent, count, at, origin in zip(nodes, counts, states, rows):
                first = child_start(parent)
                for child in range(first, first + count):
                    target = step(at * 256 + node_byte(child))
                    if target != DEAD:
                        next_nodes.append(child)
                        next_states.append(target)
                        next_rows.append(origin)
            nodes, states, rows = next_nodes, next_states, next_rows
            if nodes:
                levels.append(
                    (np.array(nodes, dtype=np.int64), np.array(rows, dtype=np.int64), np.array(states, dtype=np.int64))
                )
        return (
            levels,
            np.array(nodes, dtype=np.int64),
            np.array(states, dtype=np.int64),
            np.array(rows, dtype=np.int64),
        )

    def pack_rows(self, rows: np.ndarray, token_ids: np.ndarray, num_rows: int) -> np.ndarray:
        """Packed bitmask rows from (row, token) pairs, each pair at most once. Sparse rows (the usual
        case: restrictive states) are summed word by word, which skips a byte per token of every row."""
        if len(token_ids) > num_rows * self.num_words * 2:
            allowed = np.zeros((num_rows, self.num_words * 32), dtype=bool)
            allowed[rows, token_ids] = True
            return np.packbits(allowed, axis=1, bitorder="little").view("<i4").astype(np.int32, copy=False)
        token_ids = token_ids.astype(np.int64)
        # Distinct tokens of a word are distinct powers of two: their sum is their OR. An unbuffered add
        # into the zeroed words costs a fifth of a weighted bincount over every word (32 rows: 13 against
        # 65 us), which also converts the whole float64 result.
        words = np.zeros(num_rows * self.num_words, dtype=np.uint32)
        bits = np.left_shift(np.uint32(1), (token_ids & 31).astype(np.uint32))
        np.add.at(words, rows * self.num_words + (token_ids >> 5), bits)
        return words.view(np.int32).reshape(num_rows, self.num_words)

    def bitmask_of(self, token_ids: np.ndarray) -> np.ndarray:
        """The packed bitmask of distinct ``token_ids``."""
        return self.pack_rows(np.zeros(len(token_ids), dtype=np.int64), token_ids, 1)[0]
