"""Regex syntax tree: the value the parser hands to the NFA builder.

Characters are Unicode code points; the byte-level view only appears in the NFA stage. Nodes are frozen so
that a parsed pattern can be cached and shared.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Highest Unicode code point, and the UTF-16 surrogates, which UTF-8 cannot encode.
MAX_CODE_POINT = 0x10FFFF
SURROGATES = (0xD800, 0xDFFF)


@dataclass(frozen=True)
class CharSet:
    """A set of code points as sorted, disjoint, non-adjacent inclusive ranges."""

    ranges: tuple[tuple[int, int], ...]

    @staticmethod
    def of(ranges) -> "CharSet":
        return CharSet(normalize_ranges(ranges))

    def negate(self) -> "CharSet":
        """Every encodable code point not in this set (surrogates excluded)."""
        result = []
        next_lo = 0
        for lo, hi in self.ranges:
            if lo > next_lo:
                result.append((next_lo, lo - 1))
            next_lo = hi + 1
        if next_lo <= MAX_CODE_POINT:
            result.append((next_lo, MAX_CODE_POINT))
        return CharSet.of(result)


@dataclass(frozen=True)
class Concat:
    items: tuple["Node", ...]


@dataclass(frozen=True)
class Alternation:
    options: tuple["Node", ...]


@dataclass(frozen=True)
class Repeat:
    """``item`` repeated between ``min`` and ``max`` times; ``max`` None means unbounded. ``lazy``: written
    with ``?`` (``*?``, ``{m,n}?``): the same language; only a first-match reading (``grammars.first_match``,
    for Lark's lexer) tells them apart."""

    item: "Node"
    min: int
    max: int | None
    lazy: bool = False


Node = CharSet | Concat | Alternation | Repeat

#: The empty string (an empty concatenation).
EMPTY = Concat(())


def normalize_ranges(ranges) -> tuple[tuple[int, int], ...]:
    """Sort and merge ranges; drop surrogates so every remaining code point is UTF-8 encodable."""
    pieces = []
    for lo, hi in ranges:
        if lo > hi:
            continue
        # Cut out the surrogate block.
        if lo < SURROGATES[0] and hi > SURROGATES[1]:
            pieces.append((lo, SURROGATES[0] - 1))
            pieces.append((SURROGATES[1] + 1, hi))
            continue
        if SURROGATES[0] <= lo <= SURROGATES[1]:
            lo = SURROGATES[1] + 1
        if SURROGATES[0] <= hi <= SURROGATES[1]:
            hi = SURROGATES[0] - 1
        if lo <= hi:
            pieces.append((lo, hi))
    pieces.sort()
    merged: list[tuple[int, int]] = []
    for lo, hi in pieces:
        if merged and lo <= merged[-1][1] + 1:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return tuple(merged)
