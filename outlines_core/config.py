"""Named limits of the engine. Change them here (or per call) rather than hunting for magic numbers."""

from __future__ import annotations

#: Upper bound on DFA states for one regex; beyond it compilation stops with DfaTooLargeError.
MAX_DFA_STATES = 100_000

#: Upper bound on NFA states built from one regex (bounded repetitions unroll into copies).
MAX_NFA_STATES = 1_000_000

#: Regexes whose DFA has at most this many states are indexed completely at construction (one batched
#: trie walk, milliseconds); larger ones compute each state's token mask on its first visit.
EAGER_INDEX_MAX_STATES = 64

#: How many DFA states one trie walk handles at once (bounds the walk's memory on permissive states).
INDEX_BATCH_STATES = 8

#: Bound on the (state, token) -> next state memo of one Index.
MAX_CACHED_TRANSITIONS = 1_000_000
