"""Whether two regexes can match the same string (to check that ``oneOf`` options are exclusive)."""

from __future__ import annotations

from ..regex import DEAD, compile_dfa

#: Product states explored before giving up and assuming an overlap (the safe answer: refuse).
MAX_PRODUCT_STATES = 200_000


def regexes_overlap(first: str, second: str) -> bool:
    """True when some string fully matches both (or the check is too large to finish)."""
    a, b = compile_dfa(first), compile_dfa(second)
    rows_a, rows_b = a.rows, b.rows
    # One representative byte per pair of byte classes: bytes in the same pair behave alike in both DFAs.
    representatives = list({(int(a.byte_classes[x]), int(b.byte_classes[x])): x for x in range(256)}.values())
    start = (a.start, b.start)
    seen = {start}
    stack = [start]
    while stack:
        state_a, state_b = stack.pop()
        if a.accepting[state_a] and b.accepting[state_b]:
            return True
        row_a, row_b = rows_a[state_a], rows_b[state_b]
        for byte in representatives:
            pair = (row_a[byte], row_b[byte])
            if pair[0] != DEAD and pair[1] != DEAD and pair not in seen:
                if len(seen) >= MAX_PRODUCT_STATES:
                    return True
                seen.add(pair)
                stack.append(pair)
    return False


def first_overlap(regexes: list[str]) -> tuple[int, int] | None:
    for i in range(len(regexes)):
        for j in range(i + 1, len(regexes)):
            if regexes_overlap(regexes[i], regexes[j]):
                return i, j
    return None
