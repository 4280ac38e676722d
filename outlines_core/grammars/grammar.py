"""A Lark grammar compiled for recognition: LALR tables plus the contextual lexer's automata.

Independent of any vocabulary, so one ``Grammar`` serves every tokenizer (``GrammarIndex`` pairs it with
one). ``Grammar.recognizes(text)`` runs the same recognizer byte by byte: what the token masks allow is
exactly what it accepts.
"""

from __future__ import annotations

import functools

from .lark_frontend import GrammarSpec, load_lark_grammar
from .lexer import NO_TERMINAL, Lexer, build_lexer, terminal_dfas
from .earley import EarleyStore
from .parser import REJECTED, StackStore


class Grammar:
    """Compile Lark grammar ``text`` (rule ``start`` is the sentence).

    Raises ``GrammarError`` for syntax errors, non-LALR(1) grammars and terminals the engine cannot
    compile (see ``load_lark_grammar``).
    """

    def __init__(self, text: str, start: str = "start", parser: str = "auto") -> None:
        self.text = text
        self.start = start
        self.spec: GrammarSpec = load_lark_grammar(text, start, parser)
        self.lexer: Lexer = build_lexer(self.spec, terminal_dfas(self.spec))
        #: Python-list forms for byte-at-a-time walks (one token at a time).
        self.rows: list[list[int]] = self.lexer.transitions.tolist()
        self.accepts_list: list[int] = self.lexer.accepts.tolist()

    @property
    def parser_kind(self) -> str:
        """``"lalr"`` or ``"earley"`` (grammars that are not LALR(1))."""
        return self.spec.parser_kind

    def new_store(self):
        """An empty store of parser configurations (LALR stacks or Earley charts)."""
        if self.spec.table is None:
            return EarleyStore(self.spec.earley)
        return StackStore(self.spec.table)

    def __repr__(self) -> str:
        return (
            f"Grammar(parser={self.parser_kind!r}, terminals={[t.name for t in self.spec.terminals]}, "
            f"lexer_states={self.lexer.num_states})"
        )

    def recognizes(self, text: str | bytes) -> bool:
        """Whether ``text`` is a complete sentence under the engine's lexing (``lexer``: Lark's, without its
        backtracking out of a longer attempt)."""
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        store = self.new_store()
        node = store.root
        context_start = self.lexer.context_start
        context_of = self.lexer.context_of_parser_state
        ignore = self.spec.ignore

        def lexeme_start(node: int) -> int:
            return int(context_start[context_of[store.top(node)]])

        state = lexeme_start(node)
        for byte in data:
            following = self.rows[state][byte]
            if following:
                state = following
                continue
            terminal = self.accepts_list[state]
            if terminal == NO_TERMINAL:
                return False
            if terminal not in ignore:
                node = store.feed(node, terminal)
                if node == REJECTED:
                    return False
            state = self.rows[lexeme_start(node)][byte]
            if not state:
                return False
        if state == lexeme_start(node):
            return store.accepts_end(node)
        terminal = self.accepts_list[state]
        if terminal == NO_TERMINAL:
            return False
        if terminal not in ignore:
            node = store.feed(node, terminal)
        return node != REJECTED and store.accepts_end(node)


@functools.lru_cache(maxsize=64)
def compile_grammar(text: str, start: str = "start", parser: str = "auto") -> Grammar:
    """``Grammar(text, start, parser)``, cached."""
    return Grammar(text, start, parser)
