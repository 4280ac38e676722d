"""The NFA builder's repeated fragments (``regex/nfa.py``: ``_Builder.copies``) against building every copy
from the syntax tree: the same automaton, state for state and move for move, on fixed and random regexes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from conftest import small_regexes
from test_native_dfa import PATTERNS as DFA_PATTERNS
from outlines_core.regex import nfa as nfa_module
from outlines_core.regex.parser import parse
from outlines_core.types import json_schema_to_regex

PATTERNS = [
    *DFA_PATTERNS,
    r"((25[0-5]|2[0-4]\d|[01]?\d\d?)\.){3}(25[0-5]|2[0-4]\d|[01]?\d\d?)",
    r"(ab|c[0-9]{2}){2,5}(x(y|z){1,3})*",
    r"((a(b|c){0,2}){1,3}d)*e{2}",
    r'"([^"\\]|\\.){0,30}"',
    r"[A-Z][a-z ,]{10,200}\.",  # a character set copied too, from eight copies on
    r"(é|[α-ω]){3,12}x[^\n]{8}",
    json_schema_to_regex({"type": "array", "items": {"type": "string", "maxLength": 5}, "minItems": 2, "maxItems": 4}),
]


def built_copy_by_copy(pattern: str, monkeypatch) -> nfa_module.Nfa:
    """The NFA with every copy of a repeated item built by walking its syntax tree again."""
    with monkeypatch.context() as patch:
        patch.setattr(nfa_module._Builder, "fragment", nfa_module._Builder.build)
        patch.setattr(
            nfa_module._Builder, "copies", lambda builder, node, count: [builder.build(node) for _ in range(count)]
        )
        return nfa_module.build_nfa(parse(pattern), pattern=pattern)


def moves_of(nfa: nfa_module.Nfa) -> tuple[list, list]:
    epsilon = sorted(map(tuple, np.array(nfa.epsilon_moves, dtype=np.int64).reshape(-1, 2).tolist()))
    byte_moves = sorted(map(tuple, np.array(nfa.byte_moves, dtype=np.int64).reshape(-1, 4).tolist()))
    return epsilon, byte_moves


def assert_same_nfa(pattern: str, monkeypatch) -> None:
    copied = nfa_module.build_nfa(parse(pattern), pattern=pattern)
    rebuilt = built_copy_by_copy(pattern, monkeypatch)
    assert (copied.num_states, copied.start, copied.accept, copied.may_have_dead_states) == (
        rebuilt.num_states, rebuilt.start, rebuilt.accept, rebuilt.may_have_dead_states,
    ), pattern
    assert moves_of(copied) == moves_of(rebuilt), pattern


@pytest.mark.parametrize("pattern", PATTERNS)
def test_copied_fragments_build_the_same_nfa_as_walking_the_tree(pattern, monkeypatch):
    assert_same_nfa(pattern, monkeypatch)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(pattern=small_regexes())
def test_copied_fragments_build_the_same_nfa_on_random_regexes(pattern, monkeypatch):
    assert_same_nfa(pattern, monkeypatch)


def walks_of(tree, monkeypatch) -> tuple[dict[int, int], nfa_module.Nfa]:
    """How many times building ``tree``'s NFA walks each compound node's tree (by node id), and the NFA."""
    walked: dict[int, int] = {}
    original = nfa_module._Builder.build

    def counting(builder, node):
        walked[id(node)] = walked.get(id(node), 0) + 1
        return original(builder, node)

    monkeypatch.setattr(nfa_module._Builder, "build", counting)
    return walked, nfa_module.build_nfa(tree)


def test_copies_of_a_repeated_item_are_made_from_one_walk_of_its_tree(monkeypatch):
    """``(ab|c){40}`` walks its item's tree once: the other 39 copies are shifted arrays."""
    tree = parse("(ab|c){40}")
    walked, _ = walks_of(tree, monkeypatch)
    assert walked[id(tree.item)] == 1


def test_a_group_met_again_is_one_node_built_once(monkeypatch):
    """The parser returns one node for a group's text met again (with the same flags), and the builder
    walks it once; a group under other flags is parsed on its own."""
    group = "(?:ab|c[0-9]|[a-f]{2,4}z)"  # kept from 16 characters on
    pattern = f"{group}x{group}y(?i:{group})"
    tree = parse(pattern)
    first, second, third = tree.items[0], tree.items[2], tree.items[4]
    assert first is second and third is not first
    walked, nfa = walks_of(tree, monkeypatch)
    assert walked[id(first)] == 1
    assert moves_of(nfa) == moves_of(built_copy_by_copy(pattern, monkeypatch))
