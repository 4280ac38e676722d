"""A terminal's DFA under Python's ``re`` matching, which Lark's lexer uses.

``re.match`` does not take the longest match of a terminal's regex: it takes the first match its
backtracking finds, trying alternatives left to right, greedy repetitions before stopping and lazy ones
after. ``/[0-9]+|[0-9]+\\.[0-9]+/`` matches ``1`` of ``1.5``; ``/a+?b+/`` matches ``abb`` but ``/a+?/`` only
``a``. A lexer that took the longest match would write text that Lark lexes differently.

Here the regex becomes an NFA whose empty moves are ordered by that preference (a Pike VM's), and the DFA
is built from ordered thread lists, as RE2 builds its first-match DFAs: a state is the list of NFA threads
still running, by priority; once a thread has matched, the threads after it cannot win any more and are
dropped. A state whose first thread has matched is where ``re`` stops: it has no moves, so the lexer ends
the lexeme there. A state with a match further down the list continues only along the threads that
``re`` prefers to that match.

What it does not model: when a preferred thread dies later, ``re`` backtracks to the match it passed
(``1e)`` lexes as ``1`` then ``e``), while the lexer, which never cuts a lexeme back, has no way on from
there: such text is not generated (incomplete, never unsound).
"""

from __future__ import annotations

import numpy as np

from .. import config
from ..errors import DfaTooLargeError
from ..regex.ast import Alternation, CharSet, Concat, Node, Repeat
from ..regex.dfa import DEAD, START, Dfa, minimized_dfa
from ..regex.parser import parse
from ..regex.utf8 import utf8_sequences

#: The match thread's state id in the NFA below.
_MATCH = 0


class _PriorityNfa:
    """States with ordered empty moves (``choices``) or byte-range moves (``edges``); state 0 is the match."""

    def __init__(self, limit: int) -> None:
        self.choices: list[list[int]] = [[]]
        self.edges: list[list[tuple[int, int, int]]] = [[]]
        #: An unbounded repetition's loop state -> where the repetition exits to.
        self.loop_exit: dict[int, int] = {}
        self.limit = limit

    def new(self) -> int:
        if len(self.choices) >= self.limit:
            raise DfaTooLargeError(f"more than {self.limit:,} NFA states")
        self.choices.append([])
        self.edges.append([])
        return len(self.choices) - 1

    def build(self, node: Node, following: int) -> int:
        """The entry state of ``node``'s automaton, which continues to ``following`` (built back to front)."""
        if isinstance(node, CharSet):
            entry = self.new()
            for lo, hi in node.ranges:
                for sequence in utf8_sequences(lo, hi):
                    target = following
                    for byte_lo, byte_hi in reversed(sequence[1:]):
                        state = self.new()
                        self.edges[state].append((byte_lo, byte_hi, target))
                        target = state
                    self.edges[entry].append((sequence[0][0], sequence[0][1], target))
            return entry
        if isinstance(node, Concat):
            for item in reversed(node.items):
                following = self.build(item, following)
            return following
        if isinstance(node, Alternation):
            entry = self.new()
            self.choices[entry] = [self.build(option, following) for option in node.options]
            return entry
        if isinstance(node, Repeat):
            if node.max is None:
                loop = self.new()
                body = self.build(node.item, loop)
                self.choices[loop] = [following, body] if node.lazy else [body, following]
                self.loop_exit[loop] = following
                entry = loop
            else:
                entry = following
                for _ in range(node.max - node.min):  # nested optionals: (x(x)?)?
                    optional = self.new()
                    body = self.build(node.item, entry)
                    self.choices[optional] = [following, body] if node.lazy else [body, following]
                    entry = optional
            for _ in range(node.min):
                entry = self.build(node.item, entry)
            return entry
        raise TypeError(f"unexpected regex node {node!r}")  # pragma: no cover

    def threads(self, states: list[int]) -> tuple[int, ...]:
        """The running threads from ``states`` in priority order: each state's empty moves followed depth
        first in their order, a thread reached twice kept where it came first, and nothing after a match.

        A repetition whose pass matched nothing ends there: ``re`` goes on after it instead of trying
        another pass (``(?:a|b*?)*`` matches nothing of ``b``). So the walk carries, along each path, the
        loop states it went through since the last byte; a path back at one of them takes only its exit."""
        found: list[int] = []
        listed: set[int] = set()
        seen: set[tuple[int, frozenset]] = set()
        stack: list[tuple[int, frozenset]] = [(state, frozenset()) for state in reversed(states)]
        while stack:
            state, loops = stack.pop()
            if (state, loops) in seen:
                continue
            seen.add((state, loops))
            exit_to = self.loop_exit.get(state)
            if exit_to is not None:
                if state in loops:
                    stack.append((exit_to, loops))
                    continue
                loops = loops | {state}
            if self.choices[state]:
                stack.extend((choice, loops) for choice in reversed(self.choices[state]))
                continue
            if state not in listed:
                listed.add(state)
                found.append(state)
                if state == _MATCH:
                    break
        return tuple(found)


def first_match_dfa(pattern: str, max_states: int | None = None) -> Dfa:
    """The DFA of ``pattern`` read as ``re.match`` reads it (module docstring): accepting states are where a
    match ends, and a state where ``re`` stops has no moves. Raises ``DfaTooLargeError`` past ``max_states``
    (``config.MAX_DFA_STATES``) or the NFA limit, and ``RegexSyntaxError`` as ``parse`` does."""
    limit = config.MAX_DFA_STATES if max_states is None else max_states
    nfa = _PriorityNfa(config.MAX_NFA_STATES)
    # Lark's re reads \s \w \d as Unicode: the class escapes take what every dialect agrees on, so text
    # written with them lexes as Lark lexes it.
    entry = nfa.build(parse(pattern, portable_classes=True), _MATCH)
    # Byte classes: bytes that every edge treats alike.
    bounds = sorted({0, 256} | {b for edges in nfa.edges for lo, hi, _ in edges for b in (lo, hi + 1)})
    byte_classes = np.repeat(np.arange(len(bounds) - 1, dtype=np.int32), np.diff(bounds))
    class_of = byte_classes.tolist()
    n_classes = len(bounds) - 1
    # Each edge's classes (contiguous: classes are the segments between edge bounds).
    edge_classes = [[(range(class_of[lo], class_of[hi] + 1), target) for lo, hi, target in edges] for edges in nfa.edges]
    start = nfa.threads([entry])
    ids: dict[tuple[int, ...], int] = {(): DEAD, start: START}
    lists: list[tuple[int, ...]] = [(), start]
    rows: list[list[int]] = [[DEAD] * n_classes]
    closures: dict[tuple[int, ...], tuple[int, ...]] = {}
    cursor = START
    while cursor < len(lists):
        per_class: list[list[int]] = [[] for _ in range(n_classes)]
        for state in lists[cursor]:  # in priority order, so each class's targets are too
            for classes, target in edge_classes[state]:
                for klass in classes:
                    per_class[klass].append(target)
        row = []
        for targets in per_class:
            key = tuple(targets)
            following = closures.get(key)
            if following is None:
                following = closures[key] = nfa.threads(targets) if targets else ()
            found = ids.get(following)
            if found is None:
                if len(lists) >= limit:
                    raise DfaTooLargeError(f"regex {pattern[:80]!r} needs more than {limit:,} DFA states read first-match")
                found = ids[following] = len(lists)
                lists.append(following)
            row.append(found)
        rows.append(row)
        cursor += 1
    accepting = np.array([_MATCH in running for running in lists], dtype=bool)
    return minimized_dfa(np.array(rows, dtype=np.int32), accepting, byte_classes, pattern)
