"""The DFA's recorded Moore refinement (``Dfa.indistinguishable_within``), which the token index uses to
walk one state per group, and the determinizer's handling of NFA states that cannot reach acceptance."""

import numpy as np
import pytest

from outlines_core import config
from outlines_core.native import native_available
from outlines_core.regex import DEAD, Dfa, compile_dfa
from outlines_core.regex import dfa as dfa_module
from outlines_core.regex.nfa import build_nfa
from outlines_core.regex.parser import parse

PATTERNS = [
    r"[A-Z][a-z ,]{10,200}\.",
    r"[0-9]{1,150}",
    r"[a-zA-Z0-9._%+-]+@[a-zA-Z0-9-]+(\.[a-zA-Z0-9-]+)*\.[a-zA-Z]{2,}",
    r'"([^"\\\x00-\x1f]|\\["\\nt]){0,16}"',
    r"(ab|cd){2,9}(x|yz)?",
    r"((25[0-5]|2[0-4]\d|[01]?\d\d?)\.){3}(25[0-5]|2[0-4]\d|[01]?\d\d?)",
]
LENGTHS = [0, 1, 2, 3, 5, 7, 16, 20, 64, 130, 300]


def exact_rounds(dfa: Dfa, rounds: int, by_liveness: bool = False) -> list[int]:
    """Moore's refinement by plain tuples: states agree on (dead, accepting) after every string of at
    most ``rounds`` bytes, or only on dead with ``by_liveness`` (an independent reference for the
    vectorized, hashed one)."""
    rows = dfa.class_transitions.tolist()
    block = [2 if state == DEAD else int(dfa.accepting[state] and not by_liveness) for state in range(len(rows))]
    for _ in range(rounds):
        labels: dict[tuple, int] = {}
        block = [labels.setdefault((block[s], *(block[t] for t in rows[s])), len(labels)) for s in range(len(rows))]
    if by_liveness:
        block = [b * 2 + int(dfa.accepting[s]) for s, b in enumerate(block)]
    return block


def same_partition(a, b) -> bool:
    pairs = set(zip(a, b))
    return len(pairs) == len(set(a)) == len(set(b))


def refines(finer, coarser) -> bool:
    owner: dict[int, int] = {}
    return all(owner.setdefault(f, c) == c for f, c in zip(finer, coarser))


@pytest.fixture(params=[*(["c"] if native_available() else []), "numpy", "numpy, rounds of few states in Python", "python"])
def refinement_path(request, monkeypatch):
    """Run a test through the C refinement (where it is built: ``test_native_trie_walk.py`` checks that it
    is), the hashed numpy one (its rounds vectorized whatever their size, or those of a few states in
    Python, as in use) and the plain Python one."""
    monkeypatch.setattr(config, "NATIVE_DFA", request.param == "c")
    monkeypatch.setattr(dfa_module, "_PYTHON_REFINEMENT_STATES", 10**9 if request.param == "python" else 0)
    monkeypatch.setattr(dfa_module, "_PYTHON_ROUND_STATES", 0 if request.param == "numpy" else 16)
    compile_dfa.cache_clear()
    yield request.param
    compile_dfa.cache_clear()


@pytest.mark.parametrize("pattern", PATTERNS)
def test_groups_never_join_states_a_short_string_tells_apart(pattern, refinement_path):
    dfa = compile_dfa(pattern)
    for length in LENGTHS:
        groups = dfa.indistinguishable_within(length).tolist()
        assert len(groups) == dfa.num_states
        assert refines(groups, exact_rounds(dfa, length)), length
        if length in dfa_module._RECORDED_ROUNDS:  # recorded rounds are exact, not merely safe
            assert same_partition(groups, exact_rounds(dfa, length)), length


@pytest.mark.parametrize("pattern", PATTERNS)
def test_groups_by_liveness_are_exactly_those_no_short_string_kills_apart(pattern, refinement_path):
    dfa = compile_dfa(pattern)
    for length in LENGTHS:
        groups = dfa.indistinguishable_within(length, by_liveness=True).tolist()
        assert same_partition(groups, exact_rounds(dfa, length, by_liveness=True)), length
        assert refines(dfa.indistinguishable_within(length).tolist(), groups), length  # the default is finer


def test_liveness_merges_labels_that_only_acceptance_sets_apart():
    # After "@" and after a dot, the same bytes live forever; only after the dot can the address end.
    dfa = compile_dfa(PATTERNS[2])
    assert len(set(dfa.indistinguishable_within(96).tolist())) == dfa.num_states == 8
    assert len(set(dfa.indistinguishable_within(96, by_liveness=True).tolist())) == 6


def test_counting_states_share_groups_beyond_the_length():
    dfa = compile_dfa(r"[0-9]{1,150}")
    # Dead, start, the last three counts, and one group for every state with 3 or more digits to go.
    assert len(set(dfa.indistinguishable_within(3).tolist())) == 6
    assert len(set(dfa.indistinguishable_within(10**6).tolist())) == dfa.num_states  # minimal


@pytest.mark.parametrize("pattern", PATTERNS[:4])
def test_a_dfa_built_by_hand_computes_the_same_groups(pattern, refinement_path):
    compiled = compile_dfa(pattern)
    by_hand = Dfa(
        transitions=compiled.transitions, accepting=compiled.accepting, start=compiled.start,
        byte_classes=compiled.byte_classes, class_transitions=compiled.class_transitions,
    )
    for length in LENGTHS:
        assert same_partition(
            by_hand.indistinguishable_within(length).tolist(), compiled.indistinguishable_within(length).tolist()
        ), length


@pytest.mark.parametrize("colliding_hashes", ["float", "float and 64-bit"])
def test_hash_collisions_are_caught_and_redone_exactly(monkeypatch, colliding_hashes):
    # Equal weights make many different signatures collide: every round must fall back to the next
    # hash, or to the exact row-wise split, and still produce the same automaton and the same groups.
    pattern = PATTERNS[2]
    reference = compile_dfa(pattern)
    compile_dfa.cache_clear()
    monkeypatch.setattr(config, "NATIVE_DFA", False)
    monkeypatch.setattr(dfa_module, "_PYTHON_REFINEMENT_STATES", 0)  # the hashed numpy rounds, even here
    monkeypatch.setattr(dfa_module, "_exact_float_weights", lambda count, n_labels: np.ones(count))
    if colliding_hashes != "float":
        monkeypatch.setattr(dfa_module, "_signature_multipliers", lambda count: np.ones(count, dtype=np.int64))
    colliding = compile_dfa(pattern)
    compile_dfa.cache_clear()
    assert np.array_equal(colliding.transitions, reference.transitions)
    assert np.array_equal(colliding.accepting, reference.accepting)
    for length in LENGTHS:
        assert same_partition(
            colliding.indistinguishable_within(length).tolist(), reference.indistinguishable_within(length).tolist()
        )


def test_nfa_states_that_cannot_accept_are_left_out():
    # A lone surrogate code point has no UTF-8 encoding: its branch can never match, so "a" (and "ab")
    # must lead to the dead state at once, which is what lets the index prune tokens starting with "a".
    dfa = compile_dfa("ab\ud800|c")
    assert dfa.matches(b"c") and not dfa.matches(b"ab")
    assert dfa.walk(b"a") == DEAD
    assert dfa.num_states == 3  # dead, start, after "c"
    nothing = compile_dfa("\ud800")
    assert not nothing.accepting.any() and nothing.walk(b"") == nothing.start


@pytest.mark.parametrize("pattern", PATTERNS)
def test_python_and_numpy_refinements_build_the_same_automaton(pattern, monkeypatch):
    built = {}
    monkeypatch.setattr(config, "NATIVE_DFA", False)  # the C one: test_native_dfa.py
    for python_up_to in (0, 10**9):  # states refined in Python: none, all
        monkeypatch.setattr(dfa_module, "_PYTHON_REFINEMENT_STATES", python_up_to)
        compile_dfa.cache_clear()
        built[python_up_to] = compile_dfa(pattern)
    compile_dfa.cache_clear()
    assert np.array_equal(built[0].class_transitions, built[10**9].class_transitions)
    assert np.array_equal(built[0].accepting, built[10**9].accepting)


@pytest.mark.parametrize("charset", [r'[^"\\\x00-\x1f]', r".", r"[^a]", r"[\u0100-\uffff]", r"[α-ω日本]"])
def test_counted_character_sets_determinize_without_redundant_states(charset):
    # A character set's UTF-8 chains share their suffixes (after E1-EC and after EE-EF, two continuation
    # bytes remain either way), so determinization makes no state that minimization would merge again.
    pattern = charset + "{0,8}x"
    nfa = build_nfa(parse(pattern), pattern=pattern)
    byte_classes, n_classes, range_classes = dfa_module._byte_classes(nfa)
    table, accepting = dfa_module._determinize(nfa, range_classes, n_classes, 10**6, pattern)
    minimized, _, _ = dfa_module._minimize(table, accepting)
    assert len(table) == len(minimized)
