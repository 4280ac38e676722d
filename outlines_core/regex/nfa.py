"""Syntax tree -> byte-level NFA (stage 2 of regex compilation; ``native_nfa`` does stages 1 and 2 in C).

A Thompson construction whose edges carry byte ranges; character sets are expanded into UTF-8 byte-range
sequences here, so everything after this stage is about bytes. Bounded repetitions ``x{m,n}`` are
unrolled as ``x^m`` followed by nested optionals ``(x(x(...)?)?)?``: unlike ``x?x?...x?`` this keeps one
NFA position per count, so determinization stays linear in ``n``.
"""

from __future__ import annotations

import functools
from array import array
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .. import config
from ..errors import DfaTooLargeError
from ..native import kernels as _native
from .ast import Alternation, CharSet, Concat, Node, Repeat
from .utf8 import utf8_sequences


@dataclass(frozen=True, eq=False)
class Nfa:
    """States ``0 .. num_states - 1``; ``epsilon_moves`` holds the empty moves as (source, target) pairs,
    ``byte_moves`` the byte-range moves as (source, lo, hi, target), flat (int32 arrays: the C
    determinizer reads them as they are). ``epsilon[s]`` and ``edges[s]`` give them per state.

    Every state can reach ``accept`` unless ``may_have_dead_states``: only a character set that matches
    no character (no byte sequence at all) cuts a path, and the builder notes when it made one.
    """

    num_states: int
    epsilon_moves: array
    byte_moves: array
    start: int
    accept: int
    may_have_dead_states: bool = False

    @functools.cached_property
    def epsilon(self) -> list[list[int]]:
        """Per state, the targets of its empty moves."""
        targets: list[list[int]] = [[] for _ in range(self.num_states)]
        moves = self.epsilon_moves
        for source, target in zip(moves[0::2], moves[1::2]):
            targets[source].append(target)
        return targets

    @functools.cached_property
    def edges(self) -> list[list[tuple[int, int, int]]]:
        """Per state, its byte-range moves as (lo, hi, target)."""
        edges: list[list[tuple[int, int, int]]] = [[] for _ in range(self.num_states)]
        moves = self.byte_moves
        for source, lo, hi, target in zip(moves[0::4], moves[1::4], moves[2::4], moves[3::4]):
            edges[source].append((lo, hi, target))
        return edges


def build_nfa(node: Node, *, pattern: str = "", max_states: int | None = None) -> Nfa:
    """Build the NFA of ``node``.

    Raises
    ------
    DfaTooLargeError
        When the unrolled automaton would exceed ``max_states`` (``config.MAX_NFA_STATES``), checked
        before any unrolling so a pattern like ``(a{1000}){1000}`` fails at once instead of hanging.
    """
    limit = config.MAX_NFA_STATES if max_states is None else max_states
    shared: set[int] = set()
    estimate = _estimate_states(node, {}, shared)
    if estimate > limit:
        raise DfaTooLargeError(
            f"regex {_shorten(pattern)!r} unrolls to about {estimate:,} NFA states, above the limit of "
            f"{limit:,} (outlines_core.config.MAX_NFA_STATES); reduce the bounded repetition counts"
        )
    builder = _Builder(shared)
    start, end = builder.fragment(node)
    return Nfa(builder.num_states, builder.epsilon, builder.moves, start, end, builder.made_empty_charset)


def native_nfa(pattern: str, *, max_states: int | None = None) -> Nfa | None:
    """``build_nfa(parse(pattern))`` by the C front end (``_native.regex_nfa``: the same automaton, state for
    state, 4 to 12 times faster on cold caches), or None where it was not built or leaves the pattern to Python: flags,
    named groups, lookarounds, patterns the parser rejects (whose error it raises), escapes of non-ASCII
    characters, and NFAs past ``max_states`` (``build_nfa`` raises ``DfaTooLargeError``)."""
    if _native is None or not isinstance(pattern, str):  # ``parse`` says what is wrong with a non-str
        return None
    limit = config.MAX_NFA_STATES if max_states is None else max_states
    built = _native.regex_nfa(pattern, limit)
    if built is None:
        return None
    num_states, epsilon, moves, start, accept, may_have_dead_states = built
    return Nfa(num_states, array("i", epsilon), array("i", moves), start, accept, may_have_dead_states)


def _shorten(pattern: str, width: int = 80) -> str:
    return pattern if len(pattern) <= width else pattern[: width - 3] + "..."


def _estimate_states(node: Node, estimates: dict[int, int], shared: set[int]) -> int:
    """An upper bound on the NFA states ``_Builder.fragment`` creates for ``node``. ``estimates`` keeps each
    compound node's, by id; a node met again (the parser returns one node per distinct group text) is
    added to ``shared``, which the builder copies instead of walking again."""
    if isinstance(node, CharSet):
        # An ASCII range is one edge; a wider one splits into at most ~8 UTF-8 sequences of at most 3 inner
        # states each (a list of 8,000 words was refused at 24 states a letter).
        return 2 + 24 * sum(hi >= 0x80 for _, hi in node.ranges)
    known = estimates.get(id(node))
    if known is not None:
        shared.add(id(node))
        return known
    if isinstance(node, Concat):
        estimate = 1 + sum(_estimate_states(item, estimates, shared) for item in node.items)
    elif isinstance(node, Alternation):
        estimate = 2 + sum(_estimate_states(option, estimates, shared) for option in node.options)
    else:
        item = _estimate_states(node.item, estimates, shared)
        copies = max(node.min, 1) if node.max is None else max(node.max, 1)
        estimate = 2 + (item + 2) * copies
    estimates[id(node)] = estimate
    return estimate


class _Builder:
    def __init__(self, shared: set[int] = frozenset()) -> None:
        self.num_states = 0
        self.epsilon = array("i")  # (source, target) pairs
        self.moves = array("i")  # (source, lo, hi, target) quadruples
        self.made_empty_charset = False
        #: The compound nodes the tree reaches more than once (``_estimate_states``), by id, and the template
        #: of each node built so far that is copied (``copies``).
        self.shared = shared
        self.templates: dict[int, _Template] = {}

    def new_state(self) -> int:
        self.num_states += 1
        return self.num_states - 1

    def fragment(self, node: Node) -> tuple[int, int]:
        """Add the states of ``node``; return its (entry, exit) states."""
        if id(node) in self.shared:  # never a character set (``_estimate_states``)
            return self.copies(node, 1)[0]
        return self.build(node)

    def build(self, node: Node) -> tuple[int, int]:
        """``fragment``, walking ``node``'s tree."""
        if isinstance(node, CharSet):
            return self.charset(node)
        if isinstance(node, Concat):
            start = end = self.new_state()
            for item in node.items:
                item_start, item_end = self.fragment(item)
                self.epsilon.extend((end, item_start))
                end = item_end
            return start, end
        if isinstance(node, Alternation):
            start, end = self.new_state(), self.new_state()
            for option in node.options:
                option_start, option_end = self.fragment(option)
                self.epsilon.extend((start, option_start))
                self.epsilon.extend((option_end, end))
            return start, end
        return self.repeat(node)

    def charset(self, charset: CharSet) -> tuple[int, int]:
        inner_states, edges = _charset_shape(charset.ranges)
        start = self.num_states
        self.num_states += 2 + inner_states
        moves = self.moves
        for source, lo, hi, target in edges:
            moves.extend((start + source, lo, hi, start + target))
        if not edges:
            self.made_empty_charset = True
        return start, start + 1

    def repeat(self, node: Repeat) -> tuple[int, int]:
        start = end = self.new_state()
        total = node.min + (1 if node.max is None else node.max - node.min)
        copies = self.copies if total >= _COPIED_ITEMS or id(node.item) in self.shared else self.built
        for item_start, item_end in copies(node.item, node.min):
            self.epsilon.extend((end, item_start))
            end = item_end
        if node.max is None:
            # Kleene star on the tail: loop state with an exit.
            loop = self.new_state()
            self.epsilon.extend((end, loop))
            [(item_start, item_end)] = copies(node.item, 1)
            self.epsilon.extend((loop, item_start))
            self.epsilon.extend((item_end, loop))
            return start, loop
        optional_count = node.max - node.min
        if optional_count == 0:
            return start, end
        final = self.new_state()
        for item_start, item_end in copies(node.item, optional_count):
            self.epsilon.extend((end, item_start))
            self.epsilon.extend((end, final))  # stop repeating here
            end = item_end
        self.epsilon.extend((end, final))
        return start, final

    def built(self, node: Node, count: int) -> list[tuple[int, int]]:
        """``copies`` made by walking the tree each time: for an item repeated once or twice."""
        return [self.fragment(node) for _ in range(count)]

    def copies(self, node: Node, count: int) -> list[tuple[int, int]]:
        """Add ``count`` copies of ``node``'s fragment, numbered one after the other; return each copy's
        (entry, exit) states.

        A compound node is built once per NFA and then copied with its state numbers shifted, in one numpy
        operation for all the copies: a JSON schema's regex repeats the same items (a counted string's
        character, a date's digits) and the same groups (each string field's characters, which the parser
        returns as one node), and walking the syntax tree for each copy cost most of building its NFA
        (nested-8: 1.2 of 2.2 ms)."""
        if count <= 0:
            return []
        if isinstance(node, CharSet) and count < _COPIED_CHARSETS:  # a shape lookup and a few moves each
            return [self.charset(node) for _ in range(count)]
        copies = []
        template = self.templates.get(id(node))
        if template is None:
            first_state, epsilon_begin, moves_begin = self.num_states, len(self.epsilon), len(self.moves)
            copies.append(self.build(node))
            count -= 1
            template = self.templates[id(node)] = _Template(
                first_state,
                self.num_states - first_state,
                np.array(self.epsilon[epsilon_begin:], dtype=np.int32),
                np.array(self.moves[moves_begin:], dtype=np.int32).reshape(-1, 4),
                copies[0],
            )
            if count == 0:
                return copies
        # Copy k is the template shifted by ``shift + k * size`` (states only: a move's bytes stay).
        shift = self.num_states - template.first_state
        shifts = (shift + template.size * np.arange(count, dtype=np.int32))[:, None]
        epsilon = template.epsilon[None, :] + shifts
        moves = template.moves[None, :, :] + shifts[:, :, None] * _STATE_COLUMNS
        self.epsilon.frombytes(epsilon.tobytes())
        self.moves.frombytes(moves.tobytes())
        self.num_states += template.size * count
        entry, exit_ = template.ends
        copies.extend((entry + offset, exit_ + offset) for offset in shifts[:, 0].tolist())
        return copies


class _Template(NamedTuple):
    """A fragment as built once (``_Builder.copies``): its first state and state count, its empty moves and
    byte moves (int32 arrays of state numbers as built), and its (entry, exit) states."""

    first_state: int
    size: int
    epsilon: np.ndarray
    moves: np.ndarray
    ends: tuple[int, int]


#: From this many copies on, a repeated character set is copied like a compound item (``_Builder.copies``):
#: below it, numpy's few calls cost more than the charset's shape lookups.
_COPIED_CHARSETS = 8

#: From this many copies on (a repetition's count, or its bound), a repeated compound item is copied
#: (``_Builder.copies``); ``x?`` or ``x+`` walk ``x`` once or twice, cheaper than keeping a template.
_COPIED_ITEMS = 3

#: The columns of a byte move (source, lo, hi, target) that hold states: a copy shifts those only.
_STATE_COLUMNS = np.array([1, 0, 0, 1], dtype=np.int32)


# A pattern repeats the same sets (a digit, a string's character, each letter of its keys) hundreds of times,
# and patterns repeat them: each is encoded in UTF-8 once per process (a small regex's NFA spent half its
# build encoding its few sets again).
@functools.lru_cache(maxsize=4096)
def _charset_shape(ranges: tuple[tuple[int, int], ...]) -> tuple[int, tuple[tuple[int, int, int, int], ...]]:
    """The NFA fragment of a character set, relative to its first state: (inner states, edges as
    (source, lo, hi, target)) with 0 the entry, 1 the exit and 2.. the inner states."""
    # Share the states of common leading byte ranges between sequences (a tiny trie), which keeps wide
    # classes such as [^"] small.
    edges: list[tuple[int, int, int, int]] = []
    trie: dict[tuple[int, tuple[int, int]], int] = {}
    inner_states = 0
    for lo, hi in ranges:
        for sequence in utf8_sequences(lo, hi):
            state = 0
            for position, byte_range in enumerate(sequence):
                if position == len(sequence) - 1:
                    edges.append((state, byte_range[0], byte_range[1], 1))
                    break
                key = (state, byte_range)
                target = trie.get(key)
                if target is None:
                    target = trie[key] = 2 + inner_states
                    inner_states += 1
                    edges.append((state, byte_range[0], byte_range[1], target))
                state = target
    return _share_suffixes(inner_states, edges)


def _share_suffixes(
    inner_states: int, edges: list[tuple[int, int, int, int]]
) -> tuple[int, tuple[tuple[int, int, int, int], ...]]:
    """Merge the inner states of a character set's trie that accept the same byte suffixes (after E1-EC
    and after EE-EF, two continuation bytes remain either way), and join adjacent ranges to one target.

    Without it, each lead-byte range keeps its own chain of continuation states, and determinization
    makes a DFA state for every chain at every position of a counted string, which minimization then
    merges again (nested-8: 927 of its 2,742 subset states).
    """
    outgoing: dict[int, list[tuple[int, int, int]]] = {}
    for source, lo, hi, target in edges:
        outgoing.setdefault(source, []).append((lo, hi, target))
    # A trie's children are numbered after their parent: from the highest down, targets are settled first.
    same_as = {1: 1}
    by_suffix: dict[tuple, int] = {}
    for state in range(inner_states + 1, 1, -1):
        suffix = _joined(outgoing[state], same_as)
        same_as[state] = by_suffix.setdefault(suffix, state)
    kept = sorted({same_as[state] for state in range(2, inner_states + 2)})
    number = {1: 1, 0: 0, **{state: 2 + position for position, state in enumerate(kept)}}
    shared = []
    for source in (0, *kept):
        for lo, hi, target in _joined(outgoing.get(source, []), same_as):
            shared.append((number[source], lo, hi, number[target]))
    return len(kept), tuple(shared)


def _joined(moves: list[tuple[int, int, int]], same_as: dict[int, int]) -> tuple[tuple[int, int, int], ...]:
    """``moves`` as (lo, hi, target) with targets replaced by their representative, sorted, and adjacent
    byte ranges to one target joined."""
    joined: list[tuple[int, int, int]] = []
    for lo, hi, target in sorted((lo, hi, same_as[target]) for lo, hi, target in moves):
        if joined and joined[-1][2] == target and joined[-1][1] + 1 == lo:
            joined[-1] = (joined[-1][0], hi, target)
        else:
            joined.append((lo, hi, target))
    return tuple(joined)
