"""The build's one native part: ``outlines_core/_native.c``, the trie walk of restrictive states, the loop
walk's token walks and the regex -> DFA kernels (determinization, partition refinement); metadata lives in pyproject.toml. Optional:
without a C compiler the package installs all the same, and ``trie_walk.py``, ``loop_walk.py`` and ``regex/dfa.py`` use
their numpy and Python versions (slower, same results); ``outlines_core.native.native_available()``
tells which."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("outlines_core._native", ["outlines_core/_native.c", "outlines_core/_regex_nfa.c"], optional=True)
    ]
)
