"""Cost estimates of trie walks, read from the DFA and the vocabulary's trie without walking: which states a
first visit may batch with it (``Index._with_lookahead``), and in which order and batches the eager pass
takes the states at construction (``Index.__init__``). The index decides with these; the walks themselves
are ``trie_walk.py`` and ``loop_walk.py``.
"""

from __future__ import annotations

from typing import Iterator, NamedTuple

import numpy as np

from . import config
from .native import kernels
from .regex.dfa import DEAD, Dfa
from .vocabulary import TokenTrie


class LookaheadTables(NamedTuple):
    """Per DFA state, as Python lists (the lookahead search runs in Python over a few dozen states)."""

    successor_targets: list[int]  # distinct live successors, flat: state s's are [starts[s]:starts[s + 1]]
    successor_starts: list[int]
    expansion: list[int]  # size of the state's trie walk's second level: the batch's cost estimate
    takeable: list[bool]  # lookahead may batch it (not permissive, not just before a permissive run)
    crossable: list[bool]  # lookahead searches past it (not permissive: a decode stays in those a while)


def lookahead_tables(dfa: Dfa, trie: TokenTrie, permissive: np.ndarray) -> LookaheadTables:
    """The lookahead's tables of ``dfa``. ``permissive``: per state, too many live bytes to batch."""
    successors, successor_starts = distinct_successors(dfa.class_transitions)
    second_level = np.where(trie.root_child != 0, trie.child_count[trie.root_child], 0)
    # Per byte class, then summed over each state's live classes (``live_class_sums``).
    class_weight = np.bincount(dfa.byte_classes, weights=second_level + 1.0, minlength=dfa.class_transitions.shape[1])
    expansion = live_class_sums(dfa.class_transitions, class_weight).astype(np.int64)
    # The estimate misses deeper levels, which explode where most bytes live (inside strings): such states,
    # and the states a few bytes before them (an escape, a key's closing quote), stay out.
    near_permissive = permissive.copy()
    near_permissive[DEAD] = False
    for _ in range(config.LOOKAHEAD_PERMISSIVE_DISTANCE):
        # Whether some successor is near: a count over each state's distinct successors.
        reached = np.concatenate([[0], np.cumsum(near_permissive[successors])])
        near_permissive = near_permissive | (reached[successor_starts[1:]] > reached[successor_starts[:-1]])
        near_permissive[DEAD] = False
    return LookaheadTables(
        successors.tolist(), successor_starts.tolist(), expansion.tolist(), (~near_permissive).tolist(),
        (~permissive).tolist(),
    )


def distinct_successors(class_transitions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each state's distinct live successors in increasing order, state after state (int32), and where each
    state's begin (int64, one entry more than the states): by the C kernel where it was built."""
    if kernels is not None:
        table = np.ascontiguousarray(class_transitions, dtype=np.int32)
        successors, starts = kernels.distinct_successors(table, table.shape[1])
        return np.frombuffer(successors, dtype=np.int32), np.frombuffer(starts, dtype=np.int64)
    rows = np.sort(class_transitions, axis=1)
    keep = rows != DEAD
    keep[:, 1:] &= rows[:, 1:] != rows[:, :-1]
    return rows[keep], np.concatenate([[0], np.cumsum(np.count_nonzero(keep, axis=1))])


def live_class_sums(class_transitions: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per state, the sum of ``weights`` (one per byte class) over its classes that do not lead to the dead
    state (float64). In C where the kernels were built: numpy's product goes to BLAS, whose threads stall
    each other when another process holds a core (``_native.c``'s section on these sums)."""
    if kernels is not None:
        table = np.ascontiguousarray(class_transitions, dtype=np.int32)
        weights = np.ascontiguousarray(weights, dtype=np.float64)
        return np.frombuffer(kernels.live_weight_sums(table, table.shape[1], weights), dtype=np.float64)
    # float32 is exact for these counts, and halves the product's time.
    return (_live_classes(class_transitions) @ weights.astype(np.float32)).astype(np.float64)


def _live_classes(class_transitions: np.ndarray) -> np.ndarray:
    """Per state and byte class, 1.0 where the class does not lead to the dead state (float32, for the
    numpy products of the estimates: exact, their sums stay below 2**24)."""
    return (class_transitions != DEAD).astype(np.float32)


def third_level_estimate(dfa: Dfa, trie: TokenTrie, live_bytes: np.ndarray) -> np.ndarray:
    """Per state, the entries its trie walk's third level expands: for each live first byte class ``c1``
    and each second byte class ``c2`` live after it, the three-byte token prefixes that start with them
    (before their third byte is tested). A run of hex digits has a second level of 190 entries on gpt-2
    and a third of 890 to 1,170: the second-level budget alone let a batch of nine such positions through,
    the slowest step of a decode (600 to 950 us). ``live_bytes``: the bytes some live state takes;
    In C where the kernels were built (``live_class_sums`` says why)."""
    num_classes = dfa.class_transitions.shape[1]
    if kernels is not None:  # one pass over the table; numpy's products go to BLAS (``live_class_sums``)
        table = np.ascontiguousarray(dfa.class_transitions, dtype=np.int32)
        estimate = kernels.third_level_estimate(
            table, num_classes, np.ascontiguousarray(dfa.byte_classes, dtype=np.int32),
            np.ascontiguousarray(live_bytes, dtype=np.uint8), trie.third_level_counts,
        )
        return np.frombuffer(estimate, dtype=np.int64)
    live_classes = _live_classes(dfa.class_transitions)
    # The vocabulary's [b1, b2] counts summed into [class 1, class 2], over the bytes some state lives on (a
    # dozen for a number): two products with the bytes' one-hot classes, dead bytes' rows left zero.
    one_hot = np.zeros((256, num_classes), dtype=np.float32)
    one_hot[np.arange(256), dfa.byte_classes] = live_bytes
    by_class = one_hot.T @ trie.third_level_counts @ one_hot
    # after[t, c1]: the prefixes under a first byte of class c1 whose second byte lives in state t. float32
    # is exact here (counts below 2**24) and halves the product's time.
    after = (live_classes @ by_class.T).reshape(-1)
    reached = np.take(after, dfa.class_transitions * num_classes + np.arange(num_classes))
    return np.einsum("ij,ij->i", live_classes, reached).astype(np.int64)


def eager_candidates(states: np.ndarray, tables: LookaheadTables, permissive: np.ndarray, start: int) -> np.ndarray:
    """The states of ``states`` the eager pass computes: all but the restrictive ones a few bytes before a
    permissive run (not ``takeable``) whose walk is not cheap (expansion above
    ``config.EAGER_CHEAP_EXPANSION``) and that ``start`` reaches only through a permissive run: a string's
    escapes (``\\u00e9``'s five states per string), the opening quote of a string after the first. Their
    tokens go on into the run (70 to 300 us a state on llama-bpe) and the lookahead never batches them, so
    computing them saves a decode nothing a batch would; and a decode meets few of them, most never. They
    took the last 4 ms of wide-30's and defs-anyOf's eager pass and 0.5 ms of flat-3's, and leaving them
    changes none of the benchmark walks' steps (session 23). The openers before any permissive run are kept:
    every decode of the schema meets those."""
    keep = (
        permissive[states]
        | np.array(tables.takeable, dtype=bool)[states]
        | (np.asarray(tables.expansion, dtype=np.int64)[states] <= config.EAGER_CHEAP_EXPANSION)
        | _reached_before_any_permissive_run(tables, permissive, start)[states]
    )
    return states[keep]


def _reached_before_any_permissive_run(tables: LookaheadTables, permissive: np.ndarray, start: int) -> np.ndarray:
    """Per state, whether ``start`` reaches it through restrictive states only (a search over the successor
    lists that stops at permissive states: a few dozen states on the schemas)."""
    targets, starts = tables.successor_targets, tables.successor_starts
    reached = np.zeros(len(permissive), dtype=bool)
    reached[start] = True
    queue = [start]
    for state in queue:
        if permissive[state]:
            continue
        for target in targets[starts[state] : starts[state + 1]]:
            if not reached[target]:
                reached[target] = True
                queue.append(target)
    return reached


def eager_order(states: np.ndarray, expansion: list[int], permissive: np.ndarray) -> np.ndarray:
    """``states`` reordered for the eager pass: the cheapest restrictive ones first (estimated expansion,
    ``LookaheadTables.expansion``, at most ``config.EAGER_CHEAP_EXPANSION``), then the permissive ones in
    the order given, then the other restrictive ones; restrictive states cheapest first.

    A permissive state's first visit is a loop walk over the whole vocabulary, the slowest step a decode
    can take (up to a millisecond), while a restrictive state's first visit is batched with its neighbours
    by lookahead; so the budget goes to the former, except for the cheapest restrictive states (keys,
    digits, fixed words): the C trie walk takes 32 of them in tens of microseconds, where the decode's
    first visits to them cost 50 to 100 us each (nested-8's mean on llama-spm: 19.8 -> 14.6 us,
    defs-anyOf's on llama-bpe 21 -> 16 us; a threshold of 100 or more took the budget from loop walks a
    decode then met: qwen2's largest step 564 -> 768 us). Cheapest first among the others: the budget then
    covers the most states, and leaves the costly ones, which a decode seldom visits (a string's
    ``\\uXXXX`` digits). In the DFA's own order it spent itself on the first fields' escapes and left the
    last fields' keys to the decode (wide-30: 9 first visits of 130 to 270 us, none now).
    """
    if not len(states):
        return states
    cost = np.where(
        permissive[states], config.EAGER_CHEAP_EXPANSION + 0.5, np.asarray(expansion, dtype=np.float64)[states]
    )
    return states[np.argsort(cost, kind="stable")]


def eager_batches(states: np.ndarray, expansion: list[int], permissive: np.ndarray) -> Iterator[np.ndarray]:
    """The eager pass's batches of ``states`` (in ``eager_order``): permissive states
    ``config.INDEX_BATCH_STATES`` at a time, restrictive ones as a lookahead batch takes them, up to
    ``config.LOOKAHEAD_STATES`` whose estimated expansions sum within ``config.LOOKAHEAD_EXPANSION_BUDGET``.
    A trie walk costs about 100 us of numpy calls however small its origins, so batches of eight
    restrictive states (a key's positions, a digit run) spent most of the budget on that overhead."""
    batch: list[int] = []
    batch_permissive, cost = False, 0
    for state, is_permissive in zip(states.tolist(), permissive[states].tolist()):
        state_cost = 0 if is_permissive else expansion[state]
        limit = config.INDEX_BATCH_STATES if is_permissive else config.LOOKAHEAD_STATES
        full = len(batch) >= limit or cost + state_cost > config.LOOKAHEAD_EXPANSION_BUDGET
        if batch and (full or is_permissive != batch_permissive):
            yield np.array(batch, dtype=np.int64)
            batch, cost = [], 0
        batch.append(state)
        batch_permissive = is_permissive
        cost += state_cost
    if batch:
        yield np.array(batch, dtype=np.int64)
