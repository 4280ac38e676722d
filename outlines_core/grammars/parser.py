"""An LALR(1) recognizer over interned, immutable stacks.

A parser configuration is its stack of LALR states. Stacks are stored as a tree of nodes (state, parent)
with every distinct node interned, so a configuration is one integer: shifting adds (or finds) a child,
reducing walks up parents. That makes configurations free to copy (guides fork for beam search and
speculative checks), hashable for the mask cache, and cheap to explore: the vocabulary walk asks "what
does terminal t do from configuration c?" thousands of times per step, and each distinct question is
answered once (``feed`` is memoized).

Node ids only grow; ``StackStore.size`` lets the owner start a fresh store when one gets too big (guides
keep a reference to the store their ids belong to, so old ones stay valid).
"""

from __future__ import annotations

import itertools

from .lark_frontend import END, ParseTable

#: ``feed``'s answer when the parser rejects the terminal.
REJECTED = -1
#: Serial numbers of stores (theirs and ``EarleyStore``'s): caches key on them, never on ``id()``, which a
#: store made after an old one was freed can reuse.
STORE_SERIALS = itertools.count()


class StackStore:
    """Interned LALR stacks and the memoized parser moves between them."""

    def __init__(self, table: ParseTable) -> None:
        self.table = table
        self.serial = next(STORE_SERIALS)
        self._state: list[int] = []
        self._parent: list[int] = []
        self._depth: list[int] = []
        self._ids: dict[tuple[int, int], int] = {}
        self._feed: dict[tuple[int, int], int] = {}
        self._accepts_end: dict[int, bool] = {}
        self.root = self._node(table.start_state, -1)

    @property
    def size(self) -> int:
        return len(self._state)

    def top(self, node: int) -> int:
        """The LALR state on top of stack ``node``."""
        return self._state[node]

    def depth(self, node: int) -> int:
        return self._depth[node]

    def _node(self, state: int, parent: int) -> int:
        key = (state, parent)
        node = self._ids.get(key)
        if node is None:
            node = self._ids[key] = len(self._state)
            self._state.append(state)
            self._parent.append(parent)
            self._depth.append(0 if parent < 0 else self._depth[parent] + 1)
        return node

    def feed(self, node: int, terminal: int) -> int:
        """The stack after shifting ``terminal`` (with the reductions before it), or ``REJECTED``."""
        key = (node, terminal)
        result = self._feed.get(key)
        if result is None:
            result = self._feed[key] = self._run(node, terminal)
        return result

    def accepts_end(self, node: int) -> bool:
        """Whether the input so far is a complete sentence (end of input would be accepted)."""
        result = self._accepts_end.get(node)
        if result is None:
            result = self._accepts_end[node] = self._run(node, END) != REJECTED
        return result

    def _run(self, node: int, terminal: int) -> int:
        # Lark's LALR driver loop (lark.parsers.lalr_parser_state.feed_token), on interned stacks.
        actions, gotos, rules = self.table.actions, self.table.gotos, self.table.rules
        states, parents = self._state, self._parent
        end_state = self.table.end_state
        while True:
            action = actions[states[node]].get(terminal)
            if action is None:
                return REJECTED
            is_shift, argument = action
            if is_shift:
                return self._node(argument, node)
            origin, length = rules[argument]
            for _ in range(length):
                node = parents[node]
            target = gotos[states[node]].get(origin)
            if target is None:  # cannot happen with Lark's tables; refuse rather than guess
                return REJECTED
            node = self._node(target, node)
            if terminal == END and target == end_state:
                return node

    def stack(self, node: int) -> list[int]:
        """The LALR states of ``node``, bottom first (for messages and tests)."""
        states = []
        while node >= 0:
            states.append(self._state[node])
            node = self._parent[node]
        return states[::-1]

    def expected_terminals(self, node: int) -> list[int]:
        """Terminals the top state has an action for (the contextual lexer's candidates)."""
        return sorted(t for t in self.table.actions[self._state[node]] if t != END)
