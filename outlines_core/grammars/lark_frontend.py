"""Lark grammar text -> terminals in the engine's regex dialect + an LALR(1) parse table.

Lark does the grammar work (syntax, ``%import common.*``, ``?rule`` inlining, templates, ``%ignore``, EBNF
expansion, the LALR(1) construction); this module only reads its results into plain tables the
recognizer can drive quickly, and turns every way a grammar can be unusable into a ``GrammarError`` that
says what and where.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import GrammarError

#: Lark's ``common.ESCAPED_STRING`` uses a lookbehind; this is the same language without one (a quote,
#: then any characters but quote, backslash and newline or a backslash escape of any character but a
#: newline, then the closing quote).
_LARK_ESCAPED_STRING = r'".*?(?<!\\)(\\\\)*?"'
_ESCAPED_STRING = r'"(?:[^"\\\n]|\\[^\n])*"'


@dataclass(frozen=True)
class Terminal:
    """One lexeme kind. ``regex`` is in the engine's dialect, read first-match (``first_match``) as Lark's
    lexer reads it."""

    name: str
    regex: str
    priority: int
    is_literal: bool
    #: Lark's scanner tries terminals in this order (``BasicLexer``: priority, then widest, ...).
    lark_order: tuple = ()


@dataclass(frozen=True)
class ParseTable:
    """LALR(1) tables.

    ``actions[state][terminal]`` is ``(True, next_state)`` for a shift or ``(False, rule)`` for a reduce
    (terminals are indexes into the grammar's terminal list, ``END`` is end of input);
    ``gotos[state][nonterminal]`` is the state after reducing to ``nonterminal``; ``rules[rule]`` is
    ``(nonterminal, length of the right-hand side)``.
    """

    actions: tuple[dict[int, tuple[bool, int]], ...]
    gotos: tuple[dict[str, int], ...]
    rules: tuple[tuple[str, int], ...]
    start_state: int
    end_state: int


#: The terminal id of end of input in ``ParseTable.actions``.
END = -1


@dataclass(frozen=True)
class GrammarSpec:
    text: str
    start: str
    terminals: tuple[Terminal, ...]
    ignore: frozenset[int]
    #: LALR(1) tables, or ``None`` when the grammar is not LALR(1) and ``earley`` holds its rules.
    table: ParseTable | None
    #: Lark's keyword rule: ``unless[regex terminal]`` lists the string terminals (same priority) that
    #: the regex matches entirely, each with whether Lark removes it from the scanner (``embedded``, when
    #: its flags are a subset of the regex's). A lexeme the regex matches that equals one of these strings
    #: is that string's terminal.
    unless: dict = None  # type: ignore[assignment]
    earley: "EarleyRules | None" = None

    @property
    def parser_kind(self) -> str:
        return "lalr" if self.table is not None else "earley"

    def terminal_id(self, name: str) -> int:
        for index, terminal in enumerate(self.terminals):
            if terminal.name == name:
                return index
        raise KeyError(name)


def load_lark_grammar(text: str, start: str = "start", parser: str = "auto") -> GrammarSpec:
    """Parse Lark grammar ``text`` and build its LALR(1) tables, or (``parser="auto"`` and the grammar is
    not LALR(1), or ``parser="earley"``) its rules for the Earley recognizer.

    Raises
    ------
    GrammarError
        For syntax errors (with line and column), undefined rules or terminals, grammars that are not
        LALR(1) when ``parser="lalr"`` (with the conflicting rules), terminals that match the empty string or use regex features
        the engine cannot compile, and features that need Lark's Python-side machinery (``%declare``d
        terminals, postlexers).
    """
    if not isinstance(text, str):
        raise TypeError(f"expected the grammar as Lark text (str), got {type(text).__name__}")
    import lark
    from lark.exceptions import GrammarError as LarkGrammarError
    from lark.exceptions import LarkError, UnexpectedInput

    if parser not in ("auto", "lalr", "earley"):
        raise ValueError(f"parser must be 'auto', 'lalr' or 'earley', got {parser!r}")
    if parser == "earley":
        return _load_earley(text, start)
    try:
        lark_parser = lark.Lark(text, parser="lalr", lexer="contextual", start=start)
    except UnexpectedInput as error:
        raise GrammarError(
            f"grammar syntax error at line {error.line}, column {error.column}: "
            f"{_first_line(str(error))}\n{_context(text, error.line, error.column)}"
        ) from None
    except LarkGrammarError as error:
        message = str(error)
        if "collision" in message.lower() or "conflict" in message.lower():
            if parser == "auto":
                return _load_earley(text, start)
            raise GrammarError(
                "the grammar is not LALR(1), so it cannot be recognized token by token: "
                f"{message.strip()}\nRewrite the rules so that one token of lookahead decides between them, "
                "or use parser='earley'."
            ) from None
        raise GrammarError(f"invalid grammar: {message.strip()}") from None
    except LarkError as error:
        raise GrammarError(f"invalid grammar: {str(error).strip()}") from None

    parser = lark_parser
    terminals = tuple(_convert_terminal(definition) for definition in parser.terminals)
    names = {terminal.name: index for index, terminal in enumerate(terminals)}
    ignore = frozenset(names[name] for name in parser.ignore_tokens if name in names)
    undefined = sorted(_table_terminal_names(parser) - set(names) - {"$END"})
    if undefined:
        raise GrammarError(
            f"terminal(s) {undefined} have no pattern (%declare): the engine needs every terminal to be a "
            "string or a regex"
        )
    if getattr(parser.options, "postlex", None) is not None:
        raise GrammarError("grammars with a postlexer (e.g. Lark's Indenter) are not supported")
    table = _convert_table(parser.parser.parser.parser.parse_table, names, start)
    return GrammarSpec(
        text=text,
        start=start,
        terminals=terminals,
        ignore=ignore,
        table=table,
        unless=_unless(parser.terminals, names),
    )


def _load_earley(text: str, start: str) -> GrammarSpec:
    """The grammar's rules for the Earley recognizer; lexing is Lark's basic lexer (every terminal is a
    candidate everywhere), so generated text parses with ``Lark(text, parser="earley", lexer="basic")``."""
    import lark
    from lark.exceptions import LarkError, UnexpectedInput

    from .earley import EarleyRules

    try:
        parser = lark.Lark(text, parser="earley", lexer="basic", start=start)
    except UnexpectedInput as error:
        raise GrammarError(
            f"grammar syntax error at line {error.line}, column {error.column}: "
            f"{_first_line(str(error))}\n{_context(text, error.line, error.column)}"
        ) from None
    except LarkError as error:
        raise GrammarError(f"invalid grammar: {str(error).strip()}") from None
    terminals = tuple(_convert_terminal(definition) for definition in parser.terminals)
    names = {terminal.name: index for index, terminal in enumerate(terminals)}
    rules = []
    for rule in parser.rules:
        body = []
        for symbol in rule.expansion:
            if symbol.is_term:
                if symbol.name not in names:
                    raise GrammarError(
                        f"terminal {symbol.name} has no pattern (%declare): the engine needs every terminal to "
                        "be a string or a regex"
                    )
                body.append(names[symbol.name])
            else:
                body.append(symbol.name)
        rules.append((rule.origin.name, tuple(body)))
    if getattr(parser.options, "postlex", None) is not None:
        raise GrammarError("grammars with a postlexer (e.g. Lark's Indenter) are not supported")
    return GrammarSpec(
        text=text,
        start=start,
        terminals=terminals,
        ignore=frozenset(names[name] for name in parser.ignore_tokens if name in names),
        table=None,
        unless=_unless(parser.terminals, names),
        earley=EarleyRules(rules=tuple(rules), start=start),
    )


def _unless(definitions, names: dict[str, int]) -> dict[int, tuple[tuple[int, bool], ...]]:
    """Lark's ``_create_unless``, computed once for all terminals (each context takes its members)."""
    import re

    from lark.lexer import PatternRE, PatternStr

    result: dict[int, tuple[tuple[int, bool], ...]] = {}
    ordered = sorted(definitions, key=_lark_order)
    for regex_terminal in ordered:
        if not isinstance(regex_terminal.pattern, PatternRE):
            continue
        strings = []
        for string_terminal in ordered:
            if not isinstance(string_terminal.pattern, PatternStr):
                continue
            if string_terminal.priority != regex_terminal.priority:
                continue
            value = string_terminal.pattern.value
            try:
                match = re.match(regex_terminal.pattern.to_regexp(), value)
            except re.error:
                continue
            if match is not None and match.group(0) == value:
                embedded = string_terminal.pattern.flags <= regex_terminal.pattern.flags
                strings.append((names[string_terminal.name], embedded))
        if strings:
            result[names[regex_terminal.name]] = tuple(strings)
    return result


def _lark_order(definition) -> tuple:
    # lark.lexer.BasicLexer sorts its terminals with this key; its scanner takes the first that matches.
    return (-definition.priority, -definition.pattern.max_width, -len(definition.pattern.value), definition.name)


def _convert_terminal(definition) -> Terminal:
    from lark.lexer import PatternStr

    pattern = definition.pattern
    regex = pattern.to_regexp()
    if regex == _LARK_ESCAPED_STRING:
        regex = _ESCAPED_STRING
    return Terminal(
        name=definition.name,
        regex=regex,
        priority=int(definition.priority),
        is_literal=isinstance(pattern, PatternStr),
        lark_order=_lark_order(definition),
    )


def _table_terminal_names(parser) -> set[str]:
    table = parser.parser.parser.parser.parse_table
    return {symbol for actions in table.states.values() for symbol in actions if symbol.isupper() or symbol == "$END"}


def _convert_table(table, terminal_ids: dict[str, int], start: str) -> ParseTable:
    from lark.parsers.lalr_analysis import Shift

    rule_ids: dict[object, int] = {}
    rules: list[tuple[str, int]] = []
    n_states = max(table.states) + 1
    actions: list[dict[int, tuple[bool, int]]] = [{} for _ in range(n_states)]
    gotos: list[dict[str, int]] = [{} for _ in range(n_states)]
    for state, entries in table.states.items():
        for symbol, (action, argument) in entries.items():
            if symbol == "$END":
                key = END
            elif symbol in terminal_ids:
                key = terminal_ids[symbol]
            else:
                # A nonterminal: only shifts (gotos) are keyed by nonterminals.
                gotos[state][symbol] = argument
                continue
            if action is Shift:
                actions[state][key] = (True, argument)
            else:
                rule_id = rule_ids.get(argument)
                if rule_id is None:
                    rule_id = rule_ids[argument] = len(rules)
                    rules.append((argument.origin.name, len(argument.expansion)))
                actions[state][key] = (False, rule_id)
    return ParseTable(
        actions=tuple(actions),
        gotos=tuple(gotos),
        rules=tuple(rules),
        start_state=table.start_states[start],
        end_state=table.end_states[start],
    )


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else message


def _context(text: str, line: int, column: int) -> str:
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return ""
    return f"  {lines[line - 1]}\n  {' ' * max(column - 1, 0)}^"
