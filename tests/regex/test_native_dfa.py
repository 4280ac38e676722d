"""The C determinization and partition refinement (``outlines_core/_native.c``) against ``regex/dfa.py``'s
Python and numpy versions: the same automaton state for state, the same recorded partitions, the same
error past the state bound, and clear errors on malformed input."""

from __future__ import annotations

from array import array

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import small_regexes
from test_dfa_refinement import PATTERNS as REFINEMENT_PATTERNS
from outlines_core import config
from outlines_core.errors import DfaTooLargeError
from outlines_core.regex import compile_dfa
from outlines_core.regex import dfa as dfa_module
from outlines_core.native import kernels as _native
from outlines_core.types import json_schema_to_regex


PATTERNS = [
    *REFINEMENT_PATTERNS,
    r"(a|b)*abb(a|b){3}",
    r"[α-ω日本]{0,8}x|🎉+",
    r".{0,5}",
    r"[\x00-\xff]*",
    r"(\u00e9|e\u0301)+",
    "",
    "a?",
    "ab\ud800|c",  # a lone surrogate matches nothing: its branch is dead
    "\ud800",  # nothing matches at all
    json_schema_to_regex({
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid"}, "n": {"type": "integer", "minimum": -5},
            "at": {"type": "string", "format": "date-time"}, "tags": {"type": "array", "items": {"type": "string"}},
            "kind": {"enum": ["a", "bc", 1.5, None]}, "mail": {"type": "string", "format": "email"},
        },
        "required": ["id", "n", "at"],
    }),
]


def compile_with(pattern: str, native: bool, **options):
    saved = config.NATIVE_DFA
    config.NATIVE_DFA = native
    try:
        return compile_dfa.__wrapped__(pattern, **options)
    finally:
        config.NATIVE_DFA = saved


def assert_same_automaton(pattern: str) -> None:
    c, python = compile_with(pattern, True), compile_with(pattern, False)
    for name in ("byte_classes", "class_transitions", "transitions", "accepting"):
        ours, reference = getattr(c, name), getattr(python, name)
        assert ours.dtype == reference.dtype and np.array_equal(ours, reference), (pattern, name)
    c_rounds, python_rounds = c.recorded_refinement(), python.recorded_refinement()
    assert [rounds for rounds, _ in c_rounds] == [rounds for rounds, _ in python_rounds], pattern
    for (rounds, ours), (_, reference) in zip(c_rounds, python_rounds):
        assert np.array_equal(ours, reference), (pattern, rounds)
    for length in (1, 3, 16, 130):
        assert np.array_equal(
            compile_with_liveness(c, length, True), compile_with_liveness(python, length, False)
        ), (pattern, length)


def compile_with_liveness(dfa, length: int, native: bool) -> np.ndarray:
    saved = config.NATIVE_DFA
    config.NATIVE_DFA = native
    try:
        return dfa.indistinguishable_within(length, by_liveness=True)
    finally:
        config.NATIVE_DFA = saved


@pytest.mark.parametrize("pattern", PATTERNS)
def test_c_and_python_build_the_same_automaton(pattern):
    assert_same_automaton(pattern)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pattern=small_regexes())
def test_c_and_python_build_the_same_automaton_from_random_regexes(pattern):
    assert_same_automaton(pattern)


def canonical(labels) -> list[int]:
    first: dict[int, int] = {}
    return [first.setdefault(int(label), len(first)) for label in labels]


def plain_rounds(table: np.ndarray, initial: list[int], max_rounds: int | None) -> list[int]:
    """Moore's refinement by plain tuples, every state every round: the independent reference."""
    rows, block, rounds = table.tolist(), list(initial), 0
    while max_rounds is None or rounds < max_rounds:
        rounds += 1
        labels: dict[tuple, int] = {}
        refined = [labels.setdefault((block[s], *(block[t] for t in rows[s])), len(labels)) for s in range(len(rows))]
        if len(labels) == len(set(block)):
            break
        block = refined
    return block


def refine_with(native: bool, table: np.ndarray, initial: np.ndarray, max_rounds: int | None):
    saved = config.NATIVE_DFA
    config.NATIVE_DFA = native
    try:
        return dfa_module._refine(table, initial, max_rounds)
    finally:
        config.NATIVE_DFA = saved


@settings(max_examples=60, deadline=None)
@given(data=st.data(), pattern=st.sampled_from(PATTERNS[:8]))
def test_c_refinement_of_any_partition_is_moores(data, pattern):
    # Not only the partitions minimization starts from: any initial labels, any round bound, every
    # recorded round exact.
    table = compile_with(pattern, False).class_transitions
    labels = data.draw(st.lists(st.integers(0, 3), min_size=len(table), max_size=len(table)))
    max_rounds = data.draw(st.sampled_from([None, 0, 1, 2, 5, 40]))
    block, recorded = refine_with(True, table, np.array(labels, dtype=np.int64), max_rounds)
    assert canonical(block) == canonical(plain_rounds(table, labels, max_rounds))
    for rounds, groups in recorded:
        assert rounds in dfa_module._RECORDED_ROUNDS
        assert canonical(groups) == list(groups) == canonical(plain_rounds(table, labels, rounds)), rounds
    if labels.count(labels[0]) == 1:  # the numpy refinement's precondition: the dead state alone
        numpy_block, numpy_recorded = refine_with(False, table, np.array(labels, dtype=np.int64), max_rounds)
        assert canonical(block) == canonical(numpy_block)
        assert [rounds for rounds, _ in recorded] == [rounds for rounds, _ in numpy_recorded]


def test_past_the_state_bound_both_raise_the_same_error():
    pattern = r"(a|b)*a(a|b){12}"  # 2**13 states
    messages = []
    for native in (True, False):
        with pytest.raises(DfaTooLargeError, match="needs more than 1,000 DFA states") as caught:
            compile_with(pattern, native, max_states=1000)
        messages.append(str(caught.value))
    assert messages[0] == messages[1]
    assert compile_with(pattern, True, max_states=2**13 + 1).num_states == 2**13 + 1


def nfa_arrays(pattern: str):
    from outlines_core.regex.nfa import build_nfa
    from outlines_core.regex.parser import parse

    nfa = build_nfa(parse(pattern), pattern=pattern)
    return nfa.num_states, nfa.epsilon_moves, nfa.byte_moves, nfa.start, nfa.accept


def test_determinize_rejects_malformed_input_with_a_clear_error():
    n, epsilon, moves, start, accept = nfa_arrays(r"[0-9]{1,3}x")
    assert _native.determinize(n, epsilon, moves, start, accept, 1000) is not None
    with pytest.raises(TypeError, match="int32 items"):
        _native.determinize(n, array("q", epsilon), moves, start, accept, 1000)
    with pytest.raises(ValueError, match="do not fit together"):
        _native.determinize(n, epsilon[:-1], moves, start, accept, 1000)  # half a pair
    with pytest.raises(ValueError, match="do not fit together"):
        _native.determinize(n, epsilon, moves, n, accept, 1000)  # no such start state
    bad_target = array("i", moves)
    bad_target[3] = n
    with pytest.raises(ValueError, match="byte move 0 .* is malformed"):
        _native.determinize(n, epsilon, bad_target, start, accept, 1000)
    bad_range = array("i", moves)
    bad_range[1], bad_range[2] = 200, 100  # lo above hi
    with pytest.raises(ValueError, match="malformed"):
        _native.determinize(n, epsilon, bad_range, start, accept, 1000)
    bad_epsilon = array("i", epsilon)
    bad_epsilon[0] = -1
    with pytest.raises(ValueError, match="empty move to or from -1"):
        _native.determinize(n, bad_epsilon, moves, start, accept, 1000)


def test_refine_partition_rejects_malformed_input_with_a_clear_error():
    table = np.ascontiguousarray(compile_with(r"[0-9]{1,3}x", False).class_transitions, dtype=np.int32)
    block = np.zeros(len(table), dtype=np.int64)
    rounds = np.array([1, 2, 3], dtype=np.int64)
    assert isinstance(_native.refine_partition(table, block.copy(), rounds, -1), list)
    with pytest.raises(TypeError, match="int32 items"):
        _native.refine_partition(table.astype(np.int64), block.copy(), rounds, -1)
    with pytest.raises(ValueError, match="one non-empty row per state"):
        _native.refine_partition(table[:-1], block.copy(), rounds, -1)
    bad_table = table.copy()
    bad_table[0, 0] = len(table)
    with pytest.raises(ValueError, match=f"table entry {len(table)} is not a state"):
        _native.refine_partition(bad_table, block.copy(), rounds, -1)
    with pytest.raises(ValueError, match="block id -1 is out of range"):
        _native.refine_partition(table, np.full(len(table), -1, dtype=np.int64), rounds, -1)
    with pytest.raises(ValueError, match="must increase"):
        _native.refine_partition(table, block.copy(), np.array([2, 1], dtype=np.int64), -1)
    read_only = block.copy()
    read_only.setflags(write=False)
    with pytest.raises((BufferError, TypeError, ValueError)):
        _native.refine_partition(table, read_only, rounds, -1)
