"""Named limits of the engine. Change them here (or per call) rather than hunting for magic numbers."""

from __future__ import annotations

#: Upper bound on DFA states for one regex; beyond it compilation stops with DfaTooLargeError.
MAX_DFA_STATES = 100_000

#: Upper bound on NFA states built from one regex (bounded repetitions unroll into copies).
MAX_NFA_STATES = 1_000_000
