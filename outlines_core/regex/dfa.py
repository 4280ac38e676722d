"""Byte-level NFA -> trimmed, minimized DFA (stage 3 of regex compilation).

The alphabet is first compressed into *byte classes*: bytes that no edge of the NFA tells apart behave the
same everywhere, so determinization runs over a few dozen classes instead of 256 bytes. Subset
construction is bounded (``config.MAX_DFA_STATES``) so a pathological pattern fails fast with a clear
error. States that cannot reach an accepting state are merged into the dead state 0, which is what lets
the token index prune a vocabulary walk the moment a prefix becomes hopeless. Minimization is Moore's
partition refinement, vectorized with numpy.

Both run in C where the package was built with a C compiler (``outlines_core/_native.c``, behind
``config.NATIVE_DFA``), and so do the parser and the NFA builder before them (``_regex_nfa.c``); the Python
and numpy versions are the fallback and the tests' reference, and both build the same automaton, state
for state.
"""

from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass, field

import numpy as np

from .. import config
from ..arrays import concatenated_ranges
from ..errors import DfaTooLargeError
from ..native import kernels as _native
from ..progress import progress
from .nfa import Nfa, build_nfa, native_nfa
from .parser import parse

DEAD = 0
#: The start state of every DFA ``compile_dfa`` builds.
START = 1


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
    _class_columns: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    _flat_transitions: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    _class_sizes: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    # Moore refinement partitions as (rounds, group of each state), then the stable partition as (None,
    # groups): recorded by minimization, or computed on first use (``indistinguishable_within``).
    _refinement: tuple = field(default=None, repr=False)  # type: ignore[assignment]

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
    def flat_transitions(self) -> np.ndarray:
        """``transitions`` flattened to int64 (state ``s`` on byte ``b`` is entry ``s * 256 + b``), for
        vectorized walks that gather many transitions at once (made on first use)."""
        if self._flat_transitions is None:
            flat = self.transitions.reshape(-1).astype(np.int64)
            flat.setflags(write=False)
            object.__setattr__(self, "_flat_transitions", flat)
        return self._flat_transitions

    @property
    def class_sizes(self) -> np.ndarray:
        """How many bytes each byte class holds (int64, read-only; made on first use)."""
        if self._class_sizes is None:
            sizes = np.bincount(self.byte_classes, minlength=self.class_transitions.shape[1])
            sizes.setflags(write=False)
            object.__setattr__(self, "_class_sizes", sizes)
        return self._class_sizes

    @property
    def class_columns(self) -> np.ndarray:
        """``class_transitions`` transposed, contiguous (one row per byte class; made on first use)."""
        if self._class_columns is None:
            object.__setattr__(self, "_class_columns", np.ascontiguousarray(self.class_transitions.T))
        return self._class_columns

    def indistinguishable_within(self, length: int, *, by_liveness: bool = False) -> np.ndarray:
        """A group id per state such that two states of one group cannot be told apart by any string of
        at most ``length`` bytes: each such string takes both to the dead state, or both to live states
        that both accept or both do not. States of one group therefore allow the same tokens of up to
        ``length`` bytes (the index walks one state per group).

        The partition may be finer than the coarsest one (it is the one of the smallest recorded round
        count at or above ``length``), never coarser. On a minimized DFA the stable partition puts every
        state alone.

        With ``by_liveness``, strings tell states apart only by reaching the dead state or not (the states
        themselves still by acceptance): the coarsest grouping by allowed tokens, e.g. a label after "@"
        and one after "." in an e-mail address, which only their acceptance further on sets apart. It is
        refined on each call, up to ``length`` rounds, where the default is recorded by minimization.
        """
        if by_liveness:
            live = (np.arange(self.num_states) != DEAD).astype(np.int64)
            block, _ = _refine(self.class_transitions, live, max_rounds=length)
            return _by_first_appearance(block * 2 + self.accepting)
        if self._refinement is None:
            initial = self.accepting.astype(np.int64)
            initial[DEAD] = 2
            block, recorded = _refine(self.class_transitions, initial)
            object.__setattr__(self, "_refinement", (*recorded, (None, block)))
        for rounds, groups in self._refinement:
            if rounds is None or rounds >= length:
                return groups
        raise AssertionError("the stable partition is always recorded")

    def recorded_refinement(self) -> tuple[tuple[int | None, np.ndarray], ...]:
        """The partitions ``indistinguishable_within`` answers from, as (rounds, group of each state), the
        last one stable (rounds None): what an on-disk index saves so a loaded one need not refine again."""
        if self._refinement is None:
            self.indistinguishable_within(0)
        return self._refinement

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
    nfa = native_nfa(pattern) if _dfa_in_c() else None
    if nfa is None:
        nfa = build_nfa(parse(pattern), pattern=pattern)
    if _dfa_in_c():
        bound = min(limit, 2**30)  # beyond any table that fits in memory; the C kernel's ids are int32
        built = _native.determinize(nfa.num_states, nfa.epsilon_moves, nfa.byte_moves, nfa.start, nfa.accept, bound)
        if built is None:
            raise _too_large(pattern, limit)
        if built is False:
            raise DfaTooLargeError(
                f"regex {_shorten(pattern)!r} is too costly to determinize: its states each merge long chains of "
                f"optional parts (like (a?){{5000}}); simplify it, e.g. write a?{{0,n}} as a{{0,n}}"
            )
        classes, n_classes, table, accepting = built
        byte_classes = np.frombuffer(classes, dtype=np.int32).copy()
        table = np.frombuffer(table, dtype=np.int32).reshape(-1, n_classes)
        accepting = np.frombuffer(accepting, dtype=np.bool_)
    else:
        byte_classes, n_classes, range_classes = _byte_classes(nfa)
        table, accepting = _determinize(nfa, range_classes, n_classes, limit, pattern)
    return minimized_dfa(table, accepting, byte_classes, pattern)


def minimized_dfa(table: np.ndarray, accepting: np.ndarray, byte_classes: np.ndarray, pattern: str) -> Dfa:
    """The ``Dfa`` of a determinized class table (dead state 0, start 1; ``byte_classes``: each byte's
    class), minimized, with its refinement partitions recorded."""
    table, accepting, refinement = _minimize(table, accepting)
    return Dfa(
        # np.take with native-width indices: fancy indexing with int32 ones is four times slower (nested-8: 1.2 ms).
        transitions=np.take(table, byte_classes.astype(np.intp), axis=1),
        accepting=accepting,
        start=START,
        byte_classes=byte_classes,
        class_transitions=table,
        pattern=pattern,
        _refinement=refinement,
    )


def _byte_classes(nfa: Nfa) -> tuple[np.ndarray, int, dict[tuple[int, int], tuple[int, ...]]]:
    """Group the bytes every edge treats alike: two bytes share a class when exactly the same edge ranges
    cover them. A class need not be contiguous (``[0-9a-z]`` alone makes digits and letters one class), so
    there are fewer classes than ranges between edge boundaries (nested-8: 71 instead of 81), and every
    class-wide pass of determinization and minimization is shorter.

    Returns (class of each byte, numbered by first byte; number of classes; the classes of each range).
    """
    ranges = sorted({(lo, hi) for edges in nfa.edges for lo, hi, _ in edges})
    # Elementary segments: between consecutive boundaries no range starts or ends. A sweep over them
    # keeps the set of ranges covering the current one (plain Python: a few dozen segments).
    starting: dict[int, list[int]] = {}
    ending: dict[int, list[int]] = {}
    for number, (lo, hi) in enumerate(ranges):
        starting.setdefault(lo, []).append(number)
        ending.setdefault(hi + 1, []).append(number)
    starts = sorted({0, *starting, *(end for end in ending if end < 256)})
    covering: set[int] = set()
    label_of: dict[frozenset[int], int] = {}
    segment_class = []
    for begin in starts:
        covering.difference_update(ending.get(begin, ()))
        covering.update(starting.get(begin, ()))
        segment_class.append(label_of.setdefault(frozenset(covering), len(label_of)))
    classes = np.repeat(np.array(segment_class, dtype=np.int32), np.diff([*starts, 256]))
    of_range = {
        (lo, hi): tuple(sorted(set(segment_class[bisect.bisect_left(starts, lo) : bisect.bisect_right(starts, hi)])))
        for lo, hi in ranges
    }
    return classes, len(label_of), of_range


def _determinize(
    nfa: Nfa, range_classes: dict[tuple[int, int], tuple[int, ...]], n_classes: int, limit: int, pattern: str
):
    """Subset construction over byte classes, of the live part of the NFA only.

    A DFA state is the set of *important* NFA states (those with byte edges, plus the accept state) in an
    epsilon closure; that set alone decides the future, so closures differing only in pass-through states
    collapse. NFA states that cannot reach the accept state are left out of every set, so every set is
    live and the empty set is the dead state: no trimming pass is needed. Returns the class transition
    table (dead state 0, start 1) and the accepting flags.
    """
    epsilon, edges, accept = nfa.epsilon, nfa.edges, nfa.accept
    live = _coreachable(nfa) if nfa.may_have_dead_states else None
    # Each edge as (the classes of its byte range as a bit set, target).
    range_bits = {key: sum(1 << klass for klass in classes) for key, classes in range_classes.items()}
    class_edges = [
        [(range_bits[lo, hi], target) for lo, hi, target in state_edges if live is None or live[target]]
        for state_edges in edges
    ]
    classes_of_bits: dict[int, list[int]] = {}  # a class bit set -> its classes, in order

    single_closures: dict[int, frozenset[int]] = {}

    def closure_of(state: int) -> frozenset[int]:
        if live is not None and not live[state]:
            return frozenset()
        seen = {state}
        stack = [state]
        important = []
        while stack:
            at = stack.pop()
            if class_edges[at] or at == accept:
                important.append(at)
            for target in epsilon[at]:
                if target not in seen and (live is None or live[target]):
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
    if not start:
        # The pattern matches nothing (e.g. an empty class): a dead start state that accepts nothing.
        return np.zeros((2, n_classes), dtype=np.int64), np.zeros(2, dtype=bool)
    ids: dict[frozenset[int], int] = {start: START}
    subsets = [frozenset(), start]  # indexed by DFA id: the dead state's set is empty
    # The table's live entries, a group of classes at a time: (source, target, how many classes) and the
    # classes themselves, filled in at the end (most of a row is dead; a table of Python lists costs more).
    group_sources: list[int] = []
    group_targets: list[int] = []
    group_sizes: list[int] = []
    group_classes: list[int] = []
    # Memo from the raw move set (before closure) to a DFA id: many classes share one move set.
    move_memo: dict[frozenset[int], int] = {}
    index = START
    bar = progress("regex -> DFA", " states")
    while index < len(subsets):
        subset = subsets[index]
        index += 1
        if not index & 1023:
            bar.update(1024)
        # The classes some edge covers, split into groups moving to the same NFA states: a few groups
        # (one per distinct set of edges), where a JSON string's character edge alone spans 30 classes.
        groups: list[tuple[int, tuple[int, ...]]] = []
        covered = 0
        for state in subset:
            for bits, target in class_edges[state]:
                if bits & covered:
                    split = []
                    for group_bits, targets in groups:
                        inside = group_bits & bits
                        if not inside:
                            split.append((group_bits, targets))
                            continue
                        split.append((inside, (*targets, target)))
                        if inside != group_bits:
                            split.append((group_bits & ~bits, targets))
                    groups = split
                fresh = bits & ~covered
                if fresh:
                    groups.append((fresh, (target,)))
                    covered |= fresh
        # By lowest class, so states are numbered as a scan of the classes in order would number them.
        if len(groups) == 2:
            (first, _), (second, _) = groups
            if second & -second < first & -first:
                groups.reverse()
        elif len(groups) > 2:
            groups = [group for _, group in sorted([(bits & -bits, (bits, targets)) for bits, targets in groups])]
        for bits, targets in groups:
            key = frozenset(targets)
            target_id = move_memo.get(key)
            if target_id is None:
                closed = closure(key)
                target_id = ids.get(closed)
                if target_id is None:
                    target_id = len(subsets)
                    if target_id > limit:
                        bar.close()
                        raise _too_large(pattern, limit)
                    ids[closed] = target_id
                    subsets.append(closed)
                move_memo[key] = target_id
            classes = classes_of_bits.get(bits)
            if classes is None:
                classes = classes_of_bits[bits] = _set_bits(bits)
            group_sources.append(index - 1)
            group_targets.append(target_id)
            group_sizes.append(len(classes))
            group_classes.extend(classes)
    bar.close()
    table = np.zeros((len(subsets), n_classes), dtype=np.int64)
    sizes = np.array(group_sizes, dtype=np.int64)
    table[np.repeat(np.array(group_sources, dtype=np.int64), sizes), np.array(group_classes, dtype=np.int64)] = (
        np.repeat(np.array(group_targets, dtype=np.int64), sizes)
    )
    accepting = np.array([accept in subset for subset in subsets], dtype=bool)
    return table, accepting


def _too_large(pattern: str, limit: int) -> DfaTooLargeError:
    return DfaTooLargeError(
        f"regex {_shorten(pattern)!r} needs more than {limit:,} DFA states "
        f"(outlines_core.config.MAX_DFA_STATES); simplify it, e.g. reduce bounded "
        f"repetition counts or nested alternatives"
    )


def _set_bits(bits: int) -> list[int]:
    """The positions of the set bits of ``bits``, lowest first."""
    positions = []
    while bits:
        lowest = bits & -bits
        positions.append(lowest.bit_length() - 1)
        bits ^= lowest
    return positions


def _coreachable(nfa: Nfa) -> list[bool]:
    """Which NFA states can reach the accept state (a reverse search over every move)."""
    predecessors: list[list[int]] = [[] for _ in nfa.epsilon]
    for source, (targets, state_edges) in enumerate(zip(nfa.epsilon, nfa.edges)):
        for target in targets:
            predecessors[target].append(source)
        for _, _, target in state_edges:
            predecessors[target].append(source)
    live = [False] * len(predecessors)
    live[nfa.accept] = True
    stack = [nfa.accept]
    while stack:
        for source in predecessors[stack.pop()]:
            if not live[source]:
                live[source] = True
                stack.append(source)
    return live


#: Refinement rounds after which minimization records its partition (``Dfa.indistinguishable_within``):
#: a token index asks for the round of its longest token (often 64 to 128 bytes; 3 where only digits
#: live); any later round is also correct, only finer (fewer states share a group).
_RECORDED_ROUNDS = frozenset([*range(1, 17), *(m << k for k in range(3, 14) for m in (3, 4))])
_RECORDED_ROUNDS_ARRAY = np.array(sorted(_RECORDED_ROUNDS), dtype=np.int64)


def _minimize(table: np.ndarray, accepting: np.ndarray):
    """Moore partition refinement: split blocks by (block, block of each successor) until stable.

    Returns the minimized table (dead 0, start 1, others by first appearance), its accepting flags, and
    the refinement partitions recorded on the way, over the minimized states (``Dfa._refinement``).
    """
    n_states, n_classes = table.shape
    initial = accepting.astype(np.int64)
    initial[DEAD] = 2  # keep the dead state alone so it stays state 0
    block, recorded = _refine(table, initial)
    n_blocks = int(block.max()) + 1
    if n_blocks == n_states:
        if not _dfa_in_c():  # the C refinement labels its partitions by first appearance already
            recorded = [(rounds, _by_first_appearance(groups)) for rounds, groups in recorded]
        return table.astype(np.int32), accepting, (*recorded, (None, np.arange(n_states)))
    if _dfa_in_c():
        return _minimized_by_first_appearance(table, accepting, block, recorded)
    # Renumber blocks: dead 0, start 1, others by first appearance.
    _, first_state = np.unique(block, return_index=True)
    order = np.argsort(first_state, kind="stable")
    order = [int(block[DEAD]), int(block[START])] + [
        b for b in order.tolist() if b not in (block[DEAD], block[START])
    ]
    renumber = np.empty(n_blocks, dtype=np.int64)
    renumber[np.array(order)] = np.arange(n_blocks)
    representative = first_state  # one state per block, indexed by old block id
    new_table = np.empty((n_blocks, n_classes), dtype=np.int64)
    new_table[renumber] = renumber[block[table[representative]]]
    new_accepting = np.empty(n_blocks, dtype=bool)
    new_accepting[renumber] = accepting[representative]
    # A recorded partition is coarser than the stable one, so each minimized state lies in one group.
    projected = []
    for rounds, groups in recorded:
        on_blocks = np.empty(n_blocks, dtype=np.int64)
        on_blocks[renumber] = groups[representative]
        projected.append((rounds, _by_first_appearance(on_blocks)))
    return new_table.astype(np.int32), new_accepting, (*projected, (None, np.arange(n_blocks)))


def _minimized_by_first_appearance(table: np.ndarray, accepting: np.ndarray, block: np.ndarray, recorded: list):
    """``_minimize``'s result from partitions labelled by first appearance (the C refinement's): the stable
    one numbers the minimized states as they should be (the dead state 0 is alone, so the start state 1
    is block 1), and a block's first state stands for it. A recorded partition is coarser than the stable
    one, so each of its groups first appears at some block's first state: restricted to those states, it
    is labelled by first appearance still."""
    is_first = np.empty(len(block), dtype=bool)
    is_first[0] = True
    is_first[1:] = block[1:] > np.maximum.accumulate(block)[:-1]
    representative = np.flatnonzero(is_first)
    # Gathered from an int32 copy with native-width indices: int32 indices take numpy's slow path.
    new_table = block.astype(np.int32)[table[representative].astype(np.intp)]
    projected = [(rounds, groups[representative]) for rounds, groups in recorded]
    return new_table, accepting[representative], (*projected, (None, np.arange(len(representative))))


#: Up to this many labels, ``_by_first_appearance`` numbers them in Python (a few microseconds, where
#: np.unique's sorts cost 50 on cold caches).
_PYTHON_RELABEL_STATES = 256


def _by_first_appearance(labels: np.ndarray) -> np.ndarray:
    """``labels`` renumbered 0..k-1 in order of first appearance: a partition's group ids then follow the
    states' order (the index walks one state per group in that order), whatever algorithm labelled it."""
    if len(labels) <= _PYTHON_RELABEL_STATES:
        first: dict[int, int] = {}
        return np.array([first.setdefault(label, len(first)) for label in labels.tolist()], dtype=np.int64)
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return rank[inverse.reshape(-1)]


def _refine(
    table: np.ndarray, initial: np.ndarray, max_rounds: int | None = None
) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """Moore's refinement from ``initial`` to its stable partition, or for ``max_rounds``; returns the
    partition reached (labels 0..n-1) and those of the rounds in ``_RECORDED_ROUNDS`` before it. The dead
    state must be alone in its block of ``initial`` (both callers make it so): the numpy rounds leave moves
    to it out of the predecessors they look at (the C rounds need not).

    A round gives each state the signature (its block, the blocks of its successors) and splits blocks by
    signature. Only the states whose signature can have changed are looked at: in the first round those
    of blocks with two or more members, then the predecessors of the states that moved to a new block in
    the last round (the members of a block that keep its id did not move). A counted run splits one or two
    blocks a round for as many rounds as it counts (``[a-z ,]{10,200}``: 200 rounds of a few states each,
    where every round looked at most of the DFA before). Signatures are grouped by a hash checked exactly
    (``_signature_groups``): every recorded partition is exact. Small DFAs (``_PYTHON_REFINEMENT_STATES``)
    are refined in Python instead, where a round costs less than numpy's per-call overhead.

    Where the C extension is built (``_dfa_in_c``), the same rounds run there (nested-8: 0.6 against
    8 ms; ``[a-z ,]{10,200}``: 0.1 against 15), and every partition returned is labelled by first
    appearance.
    """
    if _dfa_in_c():
        # A copy the C refinement overwrites with the partition reached; it numbers the labels itself when
        # they are below the state count (np.unique costs a tenth of a small regex's minimization).
        if initial.min() >= 0 and initial.max() < len(initial):
            block = initial.astype(np.int64)
        else:
            block = np.unique(initial, return_inverse=True)[1].reshape(-1).astype(np.int64)
        recorded = _native.refine_partition(
            np.ascontiguousarray(table, dtype=np.int32), block, _RECORDED_ROUNDS_ARRAY,
            -1 if max_rounds is None else max_rounds,
        )
        return block, [(rounds, np.frombuffer(groups, dtype=np.int64)) for rounds, groups in recorded]
    _, block = np.unique(initial, return_inverse=True)
    block = block.reshape(-1)
    n_blocks = int(block.max()) + 1
    if len(table) <= _PYTHON_REFINEMENT_STATES:
        return _refine_rows(table.tolist(), block.tolist(), n_blocks, max_rounds)
    n_states = len(block)
    weights = _exact_float_weights(table.shape[1] + 1, n_states)
    predecessor_of, predecessor_starts = _predecessors(table)
    sizes = np.bincount(block, minlength=n_states)  # per block id; ids stay below the state count
    recorded = []
    rounds = 0
    looked_at = np.flatnonzero(sizes[block] > 1)
    with progress("minimizing DFA", " rounds") as bar:  # long counted repetitions take one round per count
        while max_rounds is None or rounds < max_rounds:
            bar.update()
            rounds += 1
            if not looked_at.size:
                break
            if looked_at.size <= _PYTHON_ROUND_STATES:
                moved, n_blocks = _split_few(block, sizes, n_blocks, looked_at.tolist(), table)
            else:
                labels = block.astype(np.float64)
                group = _signature_groups(labels[looked_at], np.take(labels, table[looked_at]), weights)
                moved, n_blocks = _split_blocks(block, sizes, n_blocks, looked_at, group)
            if not moved.size:
                break
            if rounds in _RECORDED_ROUNDS:
                recorded.append((rounds, block.copy()))
            # Next round: the predecessors of the moved states, in blocks that can still split.
            counts = predecessor_starts[moved + 1] - predecessor_starts[moved]
            candidates = predecessor_of[concatenated_ranges(predecessor_starts[moved], counts, int(counts.sum()))]
            if candidates.size <= _PYTHON_ROUND_STATES:
                looked_at = np.array(sorted({c for c in candidates.tolist() if sizes[block[c]] > 1}), dtype=np.int64)
            else:
                flagged = np.zeros(n_states, dtype=bool)
                flagged[candidates] = True
                flagged &= sizes[block] > 1
                looked_at = np.flatnonzero(flagged)
    return block, recorded


def _dfa_in_c() -> bool:
    """The C determinization and refinement (``outlines_core/_native.c``) are built and not turned off
    (``config.NATIVE_DFA``)."""
    return _native is not None and config.NATIVE_DFA


#: A round looking at this few states runs in Python (a counted run's rounds look at one to four), where
#: grouping signatures by hash and splitting blocks cost a few dozen numpy calls.
_PYTHON_ROUND_STATES = 16


def _split_few(block: np.ndarray, sizes: np.ndarray, n_blocks: int, looked_at: list[int], table: np.ndarray):
    """``_split_blocks`` for a few states, with tuples as signatures."""
    groups: dict[tuple[int, ...], list[int]] = {}
    rows = block[table[looked_at]].tolist()
    for state, own, row in zip(looked_at, block[looked_at].tolist(), rows):
        groups.setdefault((own, *row), []).append(state)
    by_block: dict[int, list[list[int]]] = {}
    for key, members in groups.items():
        by_block.setdefault(key[0], []).append(members)
    moved: list[int] = []
    for old, parts in by_block.items():
        if sum(map(len, parts)) == sizes[old]:  # every member looked at: the largest part keeps the id
            parts = sorted(parts, key=len, reverse=True)[1:]
        for part in parts:
            block[part] = n_blocks
            sizes[n_blocks] = len(part)
            sizes[old] -= len(part)
            n_blocks += 1
            moved.extend(part)
    return np.array(moved, dtype=np.int64), n_blocks


def _split_blocks(block: np.ndarray, sizes: np.ndarray, n_blocks: int, looked_at: np.ndarray, group: np.ndarray):
    """One round's splits, made in ``block`` and ``sizes`` (per block id): ``group`` holds the signature
    group (0..k-1) of each state of ``looked_at`` (a group lies within one block, the block being part of
    the signature). States not looked at keep their block's id, and so does, in a block whose members
    were all looked at, its largest group; every other group takes a new id. Returns the states that took
    a new id and the new count of blocks."""
    block_of_group = np.empty(int(group.max()) + 1, dtype=np.int64)
    block_of_group[group] = block[looked_at]
    group_size = np.bincount(group)
    looked_per_block = np.bincount(block[looked_at], minlength=n_blocks)
    wholly_looked = looked_per_block[block_of_group] == sizes[block_of_group]
    # The largest group of each wholly looked-at block keeps its id (ties: the lowest group).
    order = np.lexsort((np.arange(group_size.size), -group_size, block_of_group))
    first_of_block = np.ones(order.size, dtype=bool)
    first_of_block[1:] = block_of_group[order[1:]] != block_of_group[order[:-1]]
    keeps = np.zeros(group_size.size, dtype=bool)
    keeps[order[first_of_block]] = True
    keeps &= wholly_looked
    new_groups = np.flatnonzero(~keeps)
    if not new_groups.size:
        return new_groups, n_blocks
    new_id = np.empty(group_size.size, dtype=np.int64)
    new_id[new_groups] = n_blocks + np.arange(new_groups.size)
    moving = ~keeps[group]
    moved = looked_at[moving]
    np.subtract.at(sizes, block[moved], 1)
    sizes[new_id[new_groups]] = group_size[new_groups]
    block[moved] = new_id[group[moving]]
    return moved, n_blocks + new_groups.size


def _predecessors(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per state, the states with a move to it (the dead state excluded), as a flat array and its starts:
    state ``t``'s are ``flat[starts[t]:starts[t + 1]]`` (a state may be listed once per class)."""
    n_states, n_classes = table.shape
    targets = table.reshape(-1)
    live = np.flatnonzero(targets != DEAD)
    order = np.argsort(targets[live], kind="stable")
    sources = live[order] // n_classes
    starts = np.concatenate([[0], np.cumsum(np.bincount(targets[live], minlength=n_states))])
    return sources, starts


def _signature_groups(own: np.ndarray, successors: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Group ids 0..k-1 of rows by (own label, successor labels), exactly.

    The hash is one BLAS product with integer weights small enough that every sum is an exact float (any
    summation order gives the same value for equal rows); equal hashes are then checked row by row. On a
    collision the round is hashed again modulo 2**64, and grouped row-wise if that collides too.
    """
    signature = successors @ weights[1:] + own * weights[0]
    inverse = _groups_if_exact(signature, own, successors)
    if inverse is None:
        own_int, successors_int = own.astype(np.int64), successors.astype(np.int64)
        multipliers = _signature_multipliers(len(weights))
        with np.errstate(over="ignore"):
            signature = successors_int @ multipliers[1:] + own_int * multipliers[0]
        inverse = _groups_if_exact(signature, own, successors)
        if inverse is None:
            _, inverse = np.unique(np.column_stack([own_int, successors_int]), axis=0, return_inverse=True)
    return inverse.reshape(-1)


def _groups_if_exact(signature: np.ndarray, own: np.ndarray, successors: np.ndarray) -> np.ndarray | None:
    _, first, inverse = np.unique(signature, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    representative = first[inverse]
    if np.array_equal(own, own[representative]) and np.array_equal(successors, successors[representative]):
        return inverse
    return None


def _exact_float_weights(count: int, n_labels: int) -> np.ndarray:
    """``count`` random integer weights as floats, each below ``2**53 / (count * n_labels)``: a weighted
    sum of ``count`` labels below ``n_labels`` stays an exact float."""
    bound = max(2, (1 << 53) // (count * max(n_labels, 1)))
    return np.floor(_unit_weights(count) * (bound - 1)) + 1


@functools.lru_cache(maxsize=64)
def _unit_weights(count: int) -> np.ndarray:
    """Random floats in [0, 1) (fixed seed: compilation is deterministic)."""
    weights = np.random.default_rng(0x5EED).random(count)
    weights.setflags(write=False)
    return weights


#: Tables of at most this many states are refined in plain Python, whose round costs about 0.5 us a
#: state where numpy's costs 30 us (datetime's 34 states: 0.14 vs 0.17 ms; flat-3's 75: 0.62 vs 0.19).
_PYTHON_REFINEMENT_STATES = 40


def _refine_rows(rows: list[list[int]], block: list[int], n_blocks: int, max_rounds: int | None):
    """``_refine`` over Python lists: a signature is a tuple, labelled in order of first appearance."""
    recorded = []
    rounds = 0
    while max_rounds is None or rounds < max_rounds:
        rounds += 1
        labels: dict[tuple[int, ...], int] = {}
        new_block = [
            labels.setdefault((block[state], *map(block.__getitem__, row)), len(labels))
            for state, row in enumerate(rows)
        ]
        if len(labels) == n_blocks:
            break
        if rounds in _RECORDED_ROUNDS:
            recorded.append((rounds, np.array(new_block, dtype=np.int64)))
        block, n_blocks = new_block, len(labels)
    return np.array(block, dtype=np.int64), recorded


@functools.lru_cache(maxsize=64)
def _signature_multipliers(count: int) -> np.ndarray:
    """Random 64-bit weights of a signature hash (fixed seed: compilation is deterministic)."""
    weights = np.random.default_rng(0x5EED).integers(1, 2**62, size=count, dtype=np.int64)
    weights.setflags(write=False)
    return weights


def _shorten(pattern: str, width: int = 80) -> str:
    return pattern if len(pattern) <= width else pattern[: width - 3] + "..."
