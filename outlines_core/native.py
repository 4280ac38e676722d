"""The optional C kernels (``outlines_core/_native.c`` and ``_regex_nfa.c``): the trie walk of restrictive states,
the loop walk's token walks and text runs' tables, the regex parser and NFA builder, determinization and
partition refinement, and smaller per-state passes. ``setup.py`` builds them where a C compiler is at hand;
without one ``kernels`` is None and ``trie_walk.py``, ``loop_walk.py`` (``loop_walk_numpy.py``),
``lookahead.py``, ``sharing.py``, ``text_runs.py`` and ``regex/`` use their numpy and Python versions (slower,
same results)."""

from __future__ import annotations

try:
    from . import _native as kernels
except ImportError:  # installed without a C compiler
    kernels = None


def native_available() -> bool:
    """Whether the C kernels were built."""
    return kernels is not None
