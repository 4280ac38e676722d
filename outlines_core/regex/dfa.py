"""Byte-level NFA -> trimmed, minimized DFA (stage 3 of regex compilation).

The alphabet is first compressed into *byte classes*: bytes that no edge of the NFA tells apart behave the
same everywhere, so determinization runs over a few dozen classes instead of 256 bytes. Subset
construction is bounded (``config.MAX_DFA_STATES``) so a pathological pattern fails fast with a clear
error. States that cannot reach an accepting state are merged into the dead state 0, which is what lets
the token index prune a vocabulary walk the moment a prefix becomes hopeless. Minimization is Moore's
partition refinement, vectorized with numpy.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from .. import config
from ..errors import DfaTooLargeError
from ..progress import progress
from .nfa import Nfa, build_nfa
from .parser import parse

DEAD = 0


@dataclass(frozen=True, eq=False)
class Dfa:
    """A deterministic automaton over bytes.

    ``transitions[state, byte]`` is the next state; state ``DEAD`` (0) loops on itself and every other
    state can reach an accepting state. ``byte_classes[byte]`` is the class of a byte and
    ``class_transitions[state, class]`` the same table over classes (``transitions`` is its expansion).
    """

    transitions: np.ndarray
    accepting: np.ndarray
    start: int
    byte_classes: np.ndarray
    class_transitions: np.ndarray
    pattern: str = ""
    _rows: list = field(default=None, repr=False)  # type: ignore[assignment]
    # Class rows converted one state at a time: a decode touches a few dozen states, and converting a
    # whole table of thousands of states would cost milliseconds on a first visit.
    _class_row_of: dict = field(default_factory=dict, repr=False)
    _class_columns: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]

    @property
    def num_states(self) -> int:
        return int(self.transitions.shape[0])

    @property
    def rows(self) -> list[list[int]]:
        """``transitions`` as nested Python lists, for algorithms over the whole table."""
        if self._rows is None:
            object.__setattr__(self, "_rows", self.transitions.tolist())
        return self._rows

    @property
    def class_columns(self) -> np.ndarray:
        """``class_transitions`` transposed, contiguous (one row per byte class; made on first use)."""
        if self._class_columns is None:
            object.__setattr__(self, "_class_columns", np.ascontiguousarray(self.class_transitions.T))
        return self._class_columns

    def class_row(self, state: int) -> list[int]:
        """``class_transitions[state]`` as a Python list (converted on first use)."""
        row = self._class_row_of.get(state)
        if row is None:
            row = self._class_row_of[state] = self.class_transitions[state].tolist()
        return row

    def walk(self, data: bytes, state: int | None = None) -> int:
        """The state reached from ``state`` (default: start) after ``data``; ``DEAD`` once it dies."""
        step = self.transitions.item  # no conversion of the table: a fresh DFA's first walk stays cheap
        current = self.start if state is None else state
        for byte in data:
            current = step(current, byte)
            if current == DEAD:
                return DEAD
        return current

    def matches(self, data: bytes) -> bool:
        """Whether ``data`` as a whole matches the pattern."""
        return bool(self.accepting[self.walk(data)])


@functools.lru_cache(maxsize=256)
def compile_dfa(pattern: str, *, max_states: int | None = None) -> Dfa:
    """Compile ``pattern`` (the engine's regex dialect, full-match semantics) into a minimized byte DFA.

    Raises
    ------
    RegexSyntaxError
        For malformed or unsupported patterns.
    DfaTooLargeError
        When determinization exceeds ``max_states`` (default ``config.MAX_DFA_STATES``).
    """
    limit = config.MAX_DFA_STATES if max_states is None else max_states
    nfa = build_nfa(parse(pattern), pattern=pattern)
    byte_classes, class_bounds = _byte_classes(nfa)
    table, accepting = _determinize(nfa, byte_classes, len(class_bounds), limit, pattern)
    table, accepting, start = _trim(table, accepting, start=0)
    table, accepting, start = _minimize(table, accepting, start)
    return Dfa(
        transitions=np.ascontiguousarray(table[:, byte_classes]),
        accepting=accepting,
        start=start,
        byte_classes=byte_classes,
        class_transitions=table,
        pattern=pattern,
    )


def _byte_classes(nfa: Nfa) -> tuple[np.ndarray, list[int]]:
    """Partition 0..255 at every edge boundary; return (class of each byte, first byte of each class)."""
    boundaries = {0}
    for edges in nfa.edges:
        for lo, hi, _ in edges:
            boundaries.add(lo)
            if hi < 255:
                boundaries.add(hi + 1)
    starts = sorted(boundaries)
    classes = np.zeros(256, dtype=np.int32)
    for index, begin in enumerate(starts):
        classes[begin:] = index
    return classes, starts


def _determinize(nfa: Nfa, byte_classes: np.ndarray, n_classes: int, limit: int, pattern: str):
    """Subset construction over byte classes.

    A DFA state is the set of *important* NFA states (those with byte edges, plus the accept state) in an
    epsilon closure; that set alone decides the future, so closures differing only in pass-through states
    collapse. Returns the class transition table (state 0 of the result is the start) and accepting flags.
    """
    epsilon, edges, accept = nfa.epsilon, nfa.edges, nfa.accept
    # Each edge as (first class, last class, target): classes are contiguous byte ranges.
    class_edges = [
        [(int(byte_classes[lo]), int(byte_classes[hi]), target) for lo, hi, target in state_edges]
        for state_edges in edges
    ]

    single_closures: dict[int, frozenset[int]] = {}

    def closure_of(state: int) -> frozenset[int]:
        seen = {state}
        stack = [state]
        important = []
        while stack:
            at = stack.pop()
            if class_edges[at] or at == accept:
                important.append(at)
            for target in epsilon[at]:
                if target not in seen:
                    seen.add(target)
                    stack.append(target)
        return frozenset(important)

    def closure(seeds) -> frozenset[int]:
        # The closure of a set is the union of its members' closures, each computed once.
        parts = []
        for seed in seeds:
            part = single_closures.get(seed)
            if part is None:
                part = single_closures[seed] = closure_of(seed)
            parts.append(part)
        return parts[0] if len(parts) == 1 else frozenset().union(*parts)

    start = closure([nfa.start])
    ids: dict[frozenset[int], int] = {start: 0}
    subsets = [start]
    rows: list[list[int]] = []
    # Memo from the raw move set (before closure) to a DFA id: many classes share one move set.
    move_memo: dict[frozenset[int], int] = {}
    empty_marker = -1
    empty_row = [empty_marker] * n_classes
    index = 0
    bar = progress("regex -> DFA", " states")
    while index < len(subsets):
        subset = subsets[index]
        index += 1
        if not index & 1023:
            bar.update(1024)
        # Only the classes some edge covers (most of a row is usually empty).
        moves: dict[int, set[int]] = {}
        for state in subset:
            for first, last, target in class_edges[state]:
                for klass in range(first, last + 1):
                    bucket = moves.get(klass)
                    if bucket is None:
                        moves[klass] = {target}
                    else:
                        bucket.add(target)
        row = empty_row.copy()
        for klass in sorted(moves):  # in class order, so states are numbered as a full scan would
            key = frozenset(moves[klass])
            target_id = move_memo.get(key)
            if target_id is None:
                closed = closure(key)
                target_id = ids.get(closed)
                if target_id is None:
                    target_id = len(subsets)
                    if target_id >= limit:
                        bar.close()
                        raise DfaTooLargeError(
                            f"regex {_shorten(pattern)!r} needs more than {limit:,} DFA states "
                            f"(outlines_core.config.MAX_DFA_STATES); simplify it, e.g. reduce bounded "
                            f"repetition counts or nested alternatives"
                        )
                    ids[closed] = target_id
                    subsets.append(closed)
                move_memo[key] = target_id
            row[klass] = target_id
        rows.append(row)
    bar.close()
    table = np.array(rows, dtype=np.int64).reshape(len(subsets), n_classes)
    accepting = np.array([accept in subset for subset in subsets], dtype=bool)
    # Add an explicit dead state at the end for the missing moves.
    dead = len(subsets)
    table[table == empty_marker] = dead
    table = np.vstack([table, np.full((1, n_classes), dead, dtype=np.int64)])
    accepting = np.append(accepting, False)
    return table, accepting


def _trim(table: np.ndarray, accepting: np.ndarray, start: int):
    """Merge every state that cannot reach acceptance into one dead state, renumbered 0 (start is 1)."""
    n_states = table.shape[0]
    # Reverse reachability from the accepting states, vectorized over the edge list.
    sources = np.repeat(np.arange(n_states), table.shape[1])
    targets = table.reshape(-1)
    order = np.argsort(targets, kind="stable")
    sorted_sources = sources[order]
    bounds = np.searchsorted(targets[order], np.arange(n_states + 1))
    live = accepting.copy()
    frontier = np.flatnonzero(live)
    while frontier.size:
        predecessors = np.concatenate(
            [sorted_sources[bounds[s] : bounds[s + 1]] for s in frontier]
        ) if frontier.size else np.empty(0, dtype=np.int64)
        predecessors = np.unique(predecessors)
        new = predecessors[~live[predecessors]]
        live[new] = True
        frontier = new
    if not live[start]:
        # The pattern matches nothing (e.g. an empty class); one dead start state that accepts nothing.
        return np.zeros((2, table.shape[1]), dtype=np.int32), np.zeros(2, dtype=bool), 1
    # New numbering: dead 0, start 1, then the other live states in order.
    remap = np.zeros(n_states, dtype=np.int64)
    others = [s for s in np.flatnonzero(live) if s != start]
    remap[start] = 1
    remap[others] = np.arange(2, 2 + len(others))
    kept = np.array([start] + others, dtype=np.int64)
    new_table = np.zeros((len(kept) + 1, table.shape[1]), dtype=np.int64)
    new_table[1:] = remap[table[kept]]
    new_accepting = np.zeros(len(kept) + 1, dtype=bool)
    new_accepting[1:] = accepting[kept]
    return new_table, new_accepting, 1


def _minimize(table: np.ndarray, accepting: np.ndarray, start: int):
    """Moore partition refinement: split blocks by (block, block of each successor) until stable.

    Each round labels a state by a 64-bit hash of its signature (one ``np.unique`` over integers instead of
    a slow row-wise unique); the final partition is verified exactly, with an exact fallback, so a hash
    collision can never merge two distinguishable states.
    """
    n_states, n_classes = table.shape
    initial = accepting.astype(np.int64)
    initial[DEAD] = 2  # keep the dead state alone so it stays state 0
    block, n_blocks = _refine(table, initial, exact=False)
    if not _is_congruence(block, initial, block[table]):
        block, n_blocks = _refine(table, initial, exact=True)  # a hash collision: redo exactly
    if n_blocks == n_states:
        return table.astype(np.int32), accepting, start
    # Renumber blocks: dead 0, start 1, others by first appearance.
    _, first_state = np.unique(block, return_index=True)
    order = np.argsort(first_state, kind="stable")
    order = [int(block[DEAD]), int(block[start])] + [
        b for b in order.tolist() if b not in (block[DEAD], block[start])
    ]
    renumber = np.empty(n_blocks, dtype=np.int64)
    renumber[np.array(order)] = np.arange(n_blocks)
    representative = first_state  # one state per block, indexed by old block id
    new_table = np.empty((n_blocks, n_classes), dtype=np.int64)
    new_table[renumber] = renumber[block[table[representative]]]
    new_accepting = np.empty(n_blocks, dtype=bool)
    new_accepting[renumber] = accepting[representative]
    return new_table.astype(np.int32), new_accepting, 1


def _refine(table: np.ndarray, initial: np.ndarray, exact: bool) -> tuple[np.ndarray, int]:
    _, block = np.unique(initial, return_inverse=True)
    block = block.reshape(-1)
    n_blocks = int(block.max()) + 1
    multipliers = np.random.default_rng(0x5EED).integers(1, 2**62, size=table.shape[1] + 1, dtype=np.int64)
    with progress("minimizing DFA", " rounds") as bar:  # long counted repetitions take one round per count
        return _refine_rounds(table, block, n_blocks, multipliers, exact, bar)


def _refine_rounds(table, block, n_blocks, multipliers, exact, bar) -> tuple[np.ndarray, int]:
    while True:
        bar.update()
        successors = block[table]
        if exact:
            _, new_block = np.unique(np.column_stack([block, successors]), axis=0, return_inverse=True)
        else:
            with np.errstate(over="ignore"):
                signature = successors @ multipliers[1:] + block * multipliers[0]
            _, new_block = np.unique(signature, return_inverse=True)
        new_block = new_block.reshape(-1)
        new_count = int(new_block.max()) + 1
        if new_count == n_blocks:
            return block, n_blocks
        block, n_blocks = new_block, new_count


def _is_congruence(block: np.ndarray, initial: np.ndarray, successors: np.ndarray) -> bool:
    """Exact check that a partition refines ``initial`` and is closed under every transition."""
    _, first_state = np.unique(block, return_index=True)
    representative = first_state[block]
    return bool(
        np.array_equal(initial, initial[representative])
        and np.array_equal(successors, successors[representative])
    )


def _shorten(pattern: str, width: int = 80) -> str:
    return pattern if len(pattern) <= width else pattern[: width - 3] + "..."
