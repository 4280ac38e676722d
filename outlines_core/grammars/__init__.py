"""Context-free constraints: Lark grammars recognized incrementally, token by token.

``CFG(text)`` is the output type (``Generator(model, CFG(grammar))``); ``Grammar`` compiles the text
(LALR(1) tables from Lark plus the contextual lexer as byte automata); ``GrammarIndex`` pairs a grammar
with a vocabulary and computes token masks; ``GrammarGuide`` walks one output. Example grammars ship with
the package: ``load_example("arithmetic" | "json" | "sql_select" | "sexpr")``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .grammar import Grammar, compile_grammar
    from .guide import GrammarGuide
    from .index import GrammarIndex, GrammarState

#: The names this package serves from its modules on first use (PEP 562): the grammar engine (Lark front end,
#: lexer, parsers; 6 to 11 ms to import), which the ``CFG`` type that ``outlines_core.types`` and every
#: ``Generator`` check against does not need.
_LAZY = {
    "Grammar": ".grammar",
    "compile_grammar": ".grammar",
    "GrammarGuide": ".guide",
    "GrammarIndex": ".index",
    "GrammarState": ".index",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


EXAMPLES = ("arithmetic", "json", "sql_select", "sexpr")


@dataclass(frozen=True)
class CFG:
    """Output type: text that Lark grammar ``definition`` parses (from its rule ``start``).

    ``parser="auto"`` uses LALR(1) when the grammar is LALR(1) (output parses with
    ``Lark(definition, parser="lalr")``) and Earley otherwise (output parses with
    ``Lark(definition, parser="earley", lexer="basic")``); ``"lalr"`` refuses non-LALR grammars."""

    definition: str
    start: str = "start"
    parser: str = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.definition, str) or not self.definition.strip():
            raise TypeError("CFG expects the Lark grammar text as a non-empty str")
        if self.parser not in ("auto", "lalr", "earley"):
            raise ValueError(f"CFG parser must be 'auto', 'lalr' or 'earley', got {self.parser!r}")


def load_example(name: str) -> str:
    """The Lark text of a shipped example grammar."""
    if name not in EXAMPLES:
        raise ValueError(f"unknown example grammar {name!r}; available: {', '.join(EXAMPLES)}")
    return resources.files(__name__).joinpath(f"{name}.lark").read_text(encoding="utf-8")


__all__ = [
    "CFG",
    "EXAMPLES",
    "Grammar",
    "GrammarGuide",
    "GrammarIndex",
    "GrammarState",
    "compile_grammar",
    "load_example",
]
