"""Small numpy helpers shared by the regex compiler, the vocabulary's trie and the token walks."""

from __future__ import annotations

import numpy as np


def concatenated_ranges(starts: np.ndarray, counts: np.ndarray, total: int) -> np.ndarray:
    """The ranges ``starts[i]`` to ``starts[i] + counts[i] - 1``, one after the other (``total`` is
    ``counts.sum()``, which callers compute first to test it): a trie level's children, the tokens ending
    at a set of nodes."""
    ends = np.cumsum(counts)
    return np.repeat(starts - (ends - counts), counts) + np.arange(total)
