"""An Earley recognizer over interned charts, for grammars that are not LALR(1).

It offers the same interface as ``parser.StackStore`` (a configuration is one integer; ``feed`` and
``accepts_end`` are memoized), so ``GrammarIndex`` and ``Grammar`` drive either without knowing which.

A configuration is an Earley chart: the set of items (rule, dot, origin) at the current position, closed
under prediction and completion. ``origin`` names the chart the item was predicted in. Charts are interned
by content, so an item predicted in the chart being built cannot name its own id yet: it carries ``SELF``,
and scanning into the next chart replaces ``SELF`` with the id the chart was given. Nullable nonterminals
are handled at prediction time (Aycock and Horspool): predicting a nullable symbol also moves past it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .parser import STORE_SERIALS

#: ``feed``'s answer when no item can scan the terminal (as ``parser.REJECTED``).
REJECTED = -1
#: Origin of an item predicted in the chart that holds it.
SELF = -3


@dataclass(frozen=True)
class EarleyRules:
    """``rules[i] = (nonterminal, right-hand side)``, symbols being terminal ids (int) or nonterminal
    names (str); ``start`` is the sentence's nonterminal."""

    rules: tuple[tuple[str, tuple], ...]
    start: str


class EarleyStore:
    """Interned Earley charts and the memoized moves between them (``StackStore``'s interface)."""

    def __init__(self, grammar: EarleyRules) -> None:
        self.grammar = grammar
        self.serial = next(STORE_SERIALS)
        self._lhs = [lhs for lhs, _ in grammar.rules]
        self._rhs = [rhs for _, rhs in grammar.rules]
        self._by_lhs: dict[str, list[int]] = {}
        for index, lhs in enumerate(self._lhs):
            self._by_lhs.setdefault(lhs, []).append(index)
        self._nullable = _nullable(grammar.rules)
        self._items: list[frozenset] = []
        self._ids: dict[frozenset, int] = {}
        self._feed: dict[tuple[int, int], int] = {}
        self._accepts_end: dict[int, bool] = {}
        start_items = {(rule, 0, SELF) for rule in self._by_lhs.get(grammar.start, ())}
        self.root = self._intern(self._close(start_items))

    @property
    def size(self) -> int:
        return len(self._items)

    def top(self, node: int) -> int:
        return 0  # one lexer context: Earley grammars use Lark's basic lexer (every terminal a candidate)

    def depth(self, node: int) -> int:
        return 0

    def feed(self, node: int, terminal: int) -> int:
        key = (node, terminal)
        result = self._feed.get(key)
        if result is None:
            result = self._feed[key] = self._scan(node, terminal)
        return result

    def accepts_end(self, node: int) -> bool:
        result = self._accepts_end.get(node)
        if result is None:
            start = self.grammar.start
            result = self._accepts_end[node] = any(
                dot == len(self._rhs[rule]) and self._lhs[rule] == start and origin in (self.root, SELF)
                and (origin == SELF) == (node == self.root)
                for rule, dot, origin in self._items[node]
            )
        return result

    def expected_terminals(self, node: int) -> list[int]:
        rhs = self._rhs
        return sorted(
            {rhs[rule][dot] for rule, dot, _ in self._items[node] if dot < len(rhs[rule]) and isinstance(rhs[rule][dot], int)}
        )

    # -- chart construction ----------------------------------------------------------------------------
    def _intern(self, items: frozenset) -> int:
        found = self._ids.get(items)
        if found is None:
            found = self._ids[items] = len(self._items)
            self._items.append(items)
        return found

    def _scan(self, node: int, terminal: int) -> int:
        rhs = self._rhs
        advanced = {
            (rule, dot + 1, node if origin == SELF else origin)
            for rule, dot, origin in self._items[node]
            if dot < len(rhs[rule]) and rhs[rule][dot] == terminal
        }
        if not advanced:
            return REJECTED
        return self._intern(self._close(advanced))

    def _close(self, items: set) -> frozenset:
        rhs, lhs, by_lhs, nullable = self._rhs, self._lhs, self._by_lhs, self._nullable
        chart = set(items)
        work = list(items)
        while work:
            rule, dot, origin = work.pop()
            body = rhs[rule]
            if dot == len(body):
                if origin == SELF:
                    continue  # an empty completion: covered by moving past nullable symbols when predicted
                symbol = lhs[rule]
                for waiting_rule, waiting_dot, waiting_origin in self._items[origin]:
                    waiting_body = rhs[waiting_rule]
                    if waiting_dot < len(waiting_body) and waiting_body[waiting_dot] == symbol:
                        item = (waiting_rule, waiting_dot + 1, origin if waiting_origin == SELF else waiting_origin)
                        if item not in chart:
                            chart.add(item)
                            work.append(item)
                continue
            symbol = body[dot]
            if isinstance(symbol, int):
                continue
            for predicted in by_lhs.get(symbol, ()):
                item = (predicted, 0, SELF)
                if item not in chart:
                    chart.add(item)
                    work.append(item)
            if symbol in nullable:
                item = (rule, dot + 1, origin)
                if item not in chart:
                    chart.add(item)
                    work.append(item)
        return frozenset(chart)


def _nullable(rules) -> set[str]:
    nullable: set[str] = set()
    changed = True
    while changed:
        changed = False
        for lhs, rhs in rules:
            if lhs not in nullable and all(isinstance(s, str) and s in nullable for s in rhs):
                nullable.add(lhs)
                changed = True
    return nullable
