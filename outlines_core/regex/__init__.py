"""Regex compilation: pattern text -> syntax tree -> byte-level NFA -> minimized byte DFA."""

from .dfa import DEAD, Dfa, compile_dfa
from .parser import parse

__all__ = ["DEAD", "Dfa", "compile_dfa", "parse"]
