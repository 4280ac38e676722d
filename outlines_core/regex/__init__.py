"""Regex compilation: pattern text -> syntax tree -> byte-level NFA -> minimized byte DFA."""

from .dfa import DEAD, Dfa, compile_dfa
from .nfa import _charset_shape
from .parser import parse

__all__ = ["DEAD", "Dfa", "clear_caches", "compile_dfa", "parse"]


def clear_caches() -> None:
    """Forget the compiled DFAs (``compile_dfa``'s cache) and the UTF-8 encodings of character sets kept
    for later patterns: the next compile starts cold (benchmarks measure it so)."""
    compile_dfa.cache_clear()
    _charset_shape.cache_clear()
