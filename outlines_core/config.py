"""Named limits of the engine. Change them here (or per call) rather than hunting for magic numbers."""

from __future__ import annotations

#: Upper bound on DFA states for one regex; beyond it compilation stops with DfaTooLargeError.
MAX_DFA_STATES = 100_000

#: Upper bound on NFA states built from one regex (bounded repetitions unroll into copies).
MAX_NFA_STATES = 1_000_000

#: Time an Index may spend at construction computing the masks of states beyond the start state (small
#: or restrictive DFAs get fully indexed within it); the rest are computed on their first visit.
EAGER_INDEX_BUDGET_SECONDS = 0.005

#: DFAs of at most this many states get their mask classes by liveness alone
#: (``Dfa.indistinguishable_within(by_liveness=True)``): a refinement of a few dozen microseconds that can
#: spare a walk; larger DFAs use the partition minimization recorded, free but possibly finer.
LIVENESS_CLASSES_MAX_STATES = 64

#: How many DFA states one trie walk handles at once (bounds the walk's memory on permissive states).
INDEX_BATCH_STATES = 8

#: A first visit of a restrictive state also walks up to this many uncomputed states near it in the same
#: batch (``Index._with_lookahead``), searching at most ``LOOKAHEAD_SEARCH_STATES`` states, and adding
#: states only while their estimated trie expansions (second-level nodes) stay within the budget.
LOOKAHEAD_STATES = 32
LOOKAHEAD_SEARCH_STATES = 256
LOOKAHEAD_EXPANSION_BUDGET = 20_000
#: ... and, on a decode step (not the constructor's first walk), their third levels' expansions
#: (``lookahead.third_level_estimate``) within this one: about 400 us of walk on a cold cache.
LOOKAHEAD_DEEP_EXPANSION_BUDGET = 8_000
#: The eager pass takes restrictive states whose estimated expansion is at most this before the permissive
#: ones (``Index._eager_order``): keys, digits, fixed words, whose batches of 32 cost the C trie walk tens of
#: microseconds, where a decode's first visit to them costs a lookahead search, a walk and a store.
EAGER_CHEAP_EXPANSION = 50
#: A DFA with at most this many mask classes, none of them permissive, gets them all from one trie walk at
#: construction (``Index._compute_all_restrictive_at_once``): a batch the C walk takes in a tenth of a
#: millisecond, where the lookahead's tables and search cost more.
ONE_WALK_CLASSES = 64
#: States where more bytes than this live are never taken by lookahead (their walks are the costly ones),
#: nor are the states within this many bytes before them.
LOOKAHEAD_MAX_LIVE_BYTES = 32
LOOKAHEAD_PERMISSIVE_DISTANCE = 3
#: A lookahead batch whose trie walk reaches a level of more entries than this is dropped (the visited
#: state is walked alone, the others never batched again): it bounds the batch's memory to a few MB.
LOOKAHEAD_MAX_FRONTIER = 100_000

#: Walk the trie of restrictive states with the C kernel (``outlines_core/_native.c``) when it is built; False
#: forces the numpy walk (the fallback where no C compiler was at hand; tests compare the two).
NATIVE_TRIE_WALK = True
#: Pick and walk the tokens a loop walk cannot decide by byte sets with the C kernels when they are built;
#: False forces numpy's selection and its vectorized steps, jump tables and Python tail
#: (``loop_walk_numpy.py``; tests compare the two).
NATIVE_LOOP_WALK = True
#: Parse regexes and build their NFAs, determinize them and refine DFA partitions (minimization, mask
#: classes) with the C kernels when they are built; False forces ``regex/``'s Python and numpy versions (the
#: fallback, and the tests' reference: both build the same automaton).
NATIVE_DFA = True
#: Serve ``Index.next_state`` (every decode step's move) by the C kernel when it is built; False walks the
#: token's bytes in Python, caching each pair (the fallback; tests compare the two).
NATIVE_MOVES = True

#: A trie walk expands a level in Python instead of numpy when it has at most this many children (a
#: numpy level costs 12 to 15 us however small; Python about half a microsecond a child).
TRIE_WALK_PYTHON_CHILDREN = 16

#: Bound on the (state, token) -> next state memo of one Index.
MAX_CACHED_TRANSITIONS = 1_000_000

#: A state whose mask-class-preserving bytes number at least this many, and whose loop-only tokens are at
#: least this share of the vocabulary, gets its mask from byte-set tests plus a walk of the other tokens
#: instead of a trie walk (``loop_walk.LoopWalk``): inside strings almost every token is alive, so the trie
#: walk would visit the whole trie.
LOOP_WALK_MIN_BYTES = 16
LOOP_WALK_MIN_SHARE = 0.1
#: When this few tokens remain in a loop walk's vectorized pass, they finish byte by byte in Python.
LOOP_WALK_TAIL_TOKENS = 32
#: A loop walk takes the bits of tokens up to ``d`` bytes long from a computed state that no string of ``d``
#: bytes tells apart from its own, for the largest ``d`` listed here, and walks only the longer tokens
#: (``Index._alike_mask``). Below 8 bytes most of the vocabulary is longer, and the walk saves little.
LOOP_WALK_ALIKE_DEPTHS = (32, 24, 16, 12, 10, 8)
#: The eager pass leaves to their first visit the loop-walkable states that no string of this many bytes
#: tells apart from an earlier one it computes (``Index._without_alike_loop_walks``); 0 computes them all.
EAGER_ALIKE_DEPTH = 32

#: A compile step that lasts longer than this shows a progress bar (``outlines_core.progress``).
PROGRESS_DELAY_SECONDS = 1.0
