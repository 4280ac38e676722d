"""Soundness and completeness of the index on the five real tokenizers.

Soundness: any walk through allowed tokens that ends with EOS spells a string ``re.fullmatch`` accepts.
Completeness: any string that matches, encoded by the tokenizer itself, is accepted token by token, and EOS
is allowed at its end.
"""

import functools
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import TOKENIZER_NAMES, load_encoder_without_dummy_prefix, load_vocabulary, reference_masks, small_regexes
from outlines_core import Guide, Index
from outlines_core.native import native_available
from outlines_core.types.formats import FORMAT_REGEXES

SEED_REGEXES = {
    "ipv4": r"((25[0-5]|2[0-4]\d|[01]?\d\d?)\.){3}(25[0-5]|2[0-4]\d|[01]?\d\d?)",
    "number": r"(-)?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-][0-9]+)?",
    "email": r"[a-zA-Z0-9._%+-]+@[a-zA-Z0-9-]+(\.[a-zA-Z0-9-]+)*\.[a-zA-Z]{2,}",
    "datetime": r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)",
}
OTHER_REGEXES = {
    "json_string": r'"([^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4}){0,12}"',
    "unicode": r"(日本語|héllo|[α-ω]{1,3}|🎉)( (日本語|héllo|[α-ω]{1,3}|🎉)){0,3}",
    "words": r"[A-Z][a-z]{0,8}( [a-z]{1,8}){0,5}[.!?]",
    "any_line": r".{1,16}",
    "indentation": r"(    |\t)*(def|return) [a-z_]+\(\):?\n",
}
ALL_REGEXES = {**SEED_REGEXES, **OTHER_REGEXES}


@functools.lru_cache(maxsize=None)
def index_for(tokenizer: str, name: str) -> Index:
    return Index(ALL_REGEXES[name], load_vocabulary(tokenizer))


def python_flags(pattern: str) -> int:
    return re.ASCII if pattern.isascii() else 0


@pytest.mark.parametrize("tokenizer", TOKENIZER_NAMES)
@pytest.mark.parametrize("name", list(ALL_REGEXES))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_soundness_random_walks_end_only_in_matches(tokenizer, name, data):
    index = index_for(tokenizer, name)
    vocabulary = index.vocabulary
    eos = set(vocabulary.eos_token_ids)
    guide = Guide(index)
    output = []
    for _ in range(48):
        allowed = guide.allowed_tokens()
        assert len(allowed) > 0, "a reachable state must allow some token"
        eos_allowed = bool(eos & set(allowed.tolist()))
        assert eos_allowed == guide.is_accepting()
        if eos_allowed and (guide.is_finished() or data.draw(st.booleans(), label="stop")):
            guide.advance(vocabulary.eos_token_ids[0])
            break
        token = int(data.draw(st.sampled_from(allowed.tolist()), label="token"))
        if token in eos:
            guide.advance(token)
            break
        assert vocabulary.token_bytes(token) is not None, "special tokens are never content"
        output.append(token)
        guide.advance(token)
    if guide.is_finished():
        text = vocabulary.decode(output).decode("utf-8")  # a full match is always valid UTF-8
        pattern = ALL_REGEXES[name]
        assert re.fullmatch(pattern, text, python_flags(pattern)), (text, pattern)


@pytest.mark.parametrize("tokenizer", TOKENIZER_NAMES)
@pytest.mark.parametrize("name", list(ALL_REGEXES))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_completeness_tokenizer_encodings_of_matches_are_accepted(tokenizer, name, data):
    pattern = ALL_REGEXES[name]
    text = data.draw(st.from_regex(re.compile(pattern, python_flags(pattern)), fullmatch=True), label="text")
    index = index_for(tokenizer, name)
    vocabulary = index.vocabulary
    ids = load_encoder_without_dummy_prefix(tokenizer).encode(text, add_special_tokens=False).ids
    if vocabulary.decode(ids) != text.encode("utf-8"):
        # The tokenizer itself cannot represent this text (normalization, <unk>, or SentencePiece reading a
        # literal "▁" as its space marker): not the index's concern.
        assert any(vocabulary.token_bytes(i) is None for i in ids) or "\r" in text or "\u2581" in text, (text, ids)
        return
    guide = Guide(index)
    for position, token in enumerate(ids):
        assert guide.is_allowed(token), (text, ids, position)
        guide.advance(token)
    assert guide.is_accepting()
    for eos in vocabulary.eos_token_ids:
        assert eos in guide.allowed_tokens()


@pytest.mark.parametrize("tokenizer", TOKENIZER_NAMES)
def test_seed_examples_are_accepted_and_near_misses_rejected(tokenizer):
    vocabulary = load_vocabulary(tokenizer)
    encoder = load_encoder_without_dummy_prefix(tokenizer)
    cases = {
        "ipv4": (["192.168.0.1", "8.8.8.8", "255.255.255.255", "01.2.3.4"], ["256.1.1.1", "1.2.3", "1.2.3.4.5"]),
        "number": (["0", "-12.5", "3e+10", "1.0E-7"], ["01", "1.", "--1", "1e5"]),
        "email": (["john.doe@example.com", "a+b@x.co.uk"], ["john@", "@x.com", "a@b.c"]),
        "datetime": (["2024-02-29T13:45:00Z", "1999-12-31T23:59:59.123+05:30"], ["2024-13-01T00:00:00Z", "2024-01-01 00:00:00Z"]),
    }
    for name, (good, bad) in cases.items():
        index = index_for(tokenizer, name)
        for text in good + bad:
            ids = encoder.encode(text, add_special_tokens=False).ids
            guide = Guide(index)
            accepted = guide.accepts(ids) == len(ids)
            if accepted:
                for token in ids:
                    guide.advance(token)
            complete = accepted and guide.is_accepting()
            assert complete == (text in good), (name, text)


@pytest.mark.parametrize("tokenizer", ["llama-bpe", "llama-spm"])
@pytest.mark.parametrize(
    "pattern",
    [r"[a-z ,]{10,60}", r"(ab|[0-9]){2,30}c", r'"[^"]{0,20}"', r"[0-9]{1,150}", r"[A-Z][a-z ,]{10,200}\.",
     r'\{"k":"([^"\\]|\\["\\nt]|\\u[0-9a-f]{4})*"\}', r'"([^"\\\x00-\x1f]|\\["\\nt]){0,16}"',
     r"(日本|[^\n]){0,12}\n", r"[α-ω ]{0,20}", SEED_REGEXES["email"], r"[a-z0-9 -]+(\.[a-z0-9 -]+)*@x"],
)
def test_states_sharing_a_mask_class_really_have_equal_masks(tokenizer, pattern):
    index = Index(pattern, load_vocabulary(tokenizer))
    for state in range(1, index.num_states):
        own_mask = index._trie_walk.masks(np.array([state]))[0][0]
        assert np.array_equal(own_mask, index.mask(state)), state


def test_counting_states_collapse_into_few_mask_classes():
    # Digit tokens are at most 3 bytes in llama-bpe: states with 3+ digits left to go all share a mask.
    index = Index(r"[0-9]{1,150}", load_vocabulary("llama-bpe"))
    assert index.num_states == 152
    assert index.num_mask_classes <= 6


LOOP_WALK_PATTERNS = [
    SEED_REGEXES["email"], r"[A-Z][a-z ,]{10,200}\.", r'"([^"\\\x00-\x1f]|\\["\\nt]){0,16}"',
    r'\{"k":"([^"\\]|\\["\\nt]|\\u[0-9a-f]{4})*"\}', r"[a-z0-9 -]+(\.[a-z0-9 -]+)*@x", r"(日本|[^\n]){0,12}\n",
    # JSON Schema's email format: counted domain labels after each dot (the loop walk's run jumps)
    f'"{FORMAT_REGEXES["email"]}"', r"[α-ω ]{0,20}", r"[^\n,]{0,12}(,[^\n,]{1,9})*\n",
    r"[a-z ]{3}[a-c]\.[a-z ]+;",  # a counted run that stops short of tokens' runs, its end taking more
    # A chain cut short (its third byte narrows to a-o): " onClick" leaves the letters past its end, by a
    # byte dead all along it.
    r"[a-z ]{2}[a-o][a-z]*[A-Z][a-z]*",
    # After the dot the letters part ways (".bin" dies at its b): no run jump may apply there.
    r"[a-z]+(\.(aaa|[c-z]{3}))*!",
    r"[a-z ]{0,6}[a-t]{0,8}!",  # the chain's byte set narrows along it (to a-t)
]


#: How a loop walk walks the tokens its byte sets leave undecided: the C kernel, or numpy steps with the
#: last tokens finished in numpy (tail 0) or all of them in Python (tail 10**9).
TOKEN_WALKS = [*([("c", 0)] if native_available() else []), ("numpy", 0), ("numpy", 10**9)]


@pytest.mark.parametrize("tokenizer", ["gpt-2", "llama-spm", "qwen2"])
@pytest.mark.parametrize(
    "token_walk, tail, bincount_states, few_run_starts",
    [*((walk, tail, 16384, 8) for walk, tail in TOKEN_WALKS), ("numpy", 0, 0, 0), *([("c", 0, 0, 0)] if native_available() else [])],
)
def test_loop_walk_equals_the_trie_walk_in_every_state(
    tokenizer, token_walk, tail, bincount_states, few_run_starts, monkeypatch
):
    """The loop walk (byte-set tests, character counts, chain jumps) decides exactly what the trie walk
    decides, with the undecided tokens walked in C or in numpy (``TOKEN_WALKS``), majority moves weighed by
    ``np.bincount`` or, as for DFAs too large for it, by a loop over the row, and the runs after an exit
    byte jumped through a table of their few starts or by powers of two."""
    from outlines_core import config, loop_walk, loop_walk_numpy

    monkeypatch.setattr(config, "NATIVE_LOOP_WALK", token_walk == "c")
    monkeypatch.setattr(config, "LOOP_WALK_TAIL_TOKENS", tail)
    monkeypatch.setattr(loop_walk, "_MAJORITY_BINCOUNT_STATES", bincount_states)
    monkeypatch.setattr(loop_walk_numpy, "_FEW_RUN_STARTS", few_run_starts)
    monkeypatch.setattr(config, "LOOP_WALK_MIN_SHARE", 0.0)  # take the loop walk wherever it applies
    vocabulary = load_vocabulary(tokenizer)
    walked = 0
    for pattern in LOOP_WALK_PATTERNS:
        index = Index(pattern, vocabulary)
        for state in range(1, index.num_states):
            mask = index._loop_walk(state)
            if mask is not None:
                walked += 1
                assert np.array_equal(mask, index._trie_walk.masks(np.array([state]))[0][0]), (pattern, state)
    assert walked > 50


@pytest.mark.parametrize("tokenizer", ["gpt-2", "llama-bpe"])
@pytest.mark.parametrize("token_walk, tail", TOKEN_WALKS)
def test_a_loop_walk_from_an_alike_mask_equals_the_trie_walk(tokenizer, token_walk, tail, monkeypatch):
    """A loop walk given the mask of a state that no string of ``d`` bytes tells apart from its own walks
    only the tokens longer than ``d`` and takes the others' bits from that mask: the result is the trie
    walk's mask, at every depth, including depths far below the tokens' lengths."""
    from outlines_core import config

    monkeypatch.setattr(config, "NATIVE_LOOP_WALK", token_walk == "c")
    monkeypatch.setattr(config, "LOOP_WALK_TAIL_TOKENS", tail)
    monkeypatch.setattr(config, "LOOP_WALK_MIN_SHARE", 0.0)
    vocabulary = load_vocabulary(tokenizer)
    reused = 0
    for pattern in LOOP_WALK_PATTERNS:
        index = Index(pattern, vocabulary)
        reference = {state: index._trie_walk.masks(np.array([state]))[0][0] for state in range(1, index.num_states)}
        for depth in (1, 3, 8, 16, 32):
            groups = index.dfa.indistinguishable_within(depth)
            for state in range(1, index.num_states):
                others = [other for other in np.flatnonzero(groups == groups[state]).tolist() if other not in (0, state)]
                if not others:
                    continue
                mask = index._loop_walk(state, (reference[others[0]], depth))
                if mask is not None:
                    reused += 1
                    assert np.array_equal(mask, reference[state]), (pattern, state, others[0], depth)
    assert reused > 100


def assert_chains_derived_equal_chains_followed(pattern: str, vocabulary, order: str) -> int:
    """Every state's chain, asked in ``order`` (so derived from states ahead known or not), equals the chain
    followed move by move from it; returns how many states have one."""
    import random

    from outlines_core.loop_walk import LoopWalk
    from outlines_core.regex import compile_dfa

    dfa = compile_dfa(pattern)
    followed = LoopWalk(dfa, vocabulary)
    derived = LoopWalk(dfa, vocabulary)
    states = list(range(1, dfa.num_states))
    if order == "down":
        states.reverse()
    elif order == "shuffled":
        random.Random(len(pattern)).shuffle(states)
    chains = 0
    for state in states:
        expected, chain = followed._followed_chain(state), derived._chain(state)
        assert (chain is None) == (expected is None), (pattern, state)
        if chain is not None:
            chains += 1
            assert (chain.spans, chain.moves, chain.states) == (expected.spans, expected.moves, expected.states), (
                pattern, state)
            characters = chain.characters_follow_for >= len(chain.moves)
            assert characters == (expected.characters_follow_for >= len(expected.moves)), (pattern, state)
    return chains


@pytest.mark.parametrize("tokenizer", ["gpt-2", "llama-bpe"])
@pytest.mark.parametrize("order", ["up", "down", "shuffled"])
def test_chains_derived_from_the_states_ahead_equal_the_chains_followed(tokenizer, order, monkeypatch):
    """``LoopWalk._chain`` derives a state's chain of majority moves from its successor's (a counted run's
    next position) instead of following it: the same spans, moves, states and character verdict, whatever
    order the states are asked in, on runs longer than a token (128 bytes on these vocabularies), runs that
    narrow, alternate or end in a self-loop."""
    from outlines_core import config

    monkeypatch.setattr(config, "LOOP_WALK_MIN_SHARE", 0.0)  # every state that can chain does
    vocabulary = load_vocabulary(tokenizer)
    patterns = [*LOOP_WALK_PATTERNS, OTHER_REGEXES["json_string"], r"[A-Z][a-z ,]{10,200}\.", r"[a-z]{3,90}!",
                r"(x[a-z ]){0,60}", r"[a-z ]{0,20}[a-m]{0,20}[a-e ]*", r'"([^"\\]|\\.){0,150}"']
    assert sum(assert_chains_derived_equal_chains_followed(p, vocabulary, order) for p in patterns) > 500


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pattern=small_regexes())
def test_chains_derived_equal_chains_followed_on_random_regexes(pattern):
    from outlines_core import config

    saved = config.LOOP_WALK_MIN_SHARE
    config.LOOP_WALK_MIN_SHARE = 0.0
    try:
        assert_chains_derived_equal_chains_followed(pattern, load_vocabulary("gpt-2"), "down")
    finally:
        config.LOOP_WALK_MIN_SHARE = saved


@pytest.mark.parametrize("pattern, takes_characters", [
    (OTHER_REGEXES["json_string"], True), (r'"[^"]*"', True), (r"[^\n]{0,12}\n", True),
    (r"(日本|[^\n]){0,12}\n", False), (OTHER_REGEXES["unicode"], False), (r"[α-ω ]{0,20}", False), (SEED_REGEXES["email"], False),
])
def test_character_targets_equal_a_walk_of_every_character_kind(pattern, takes_characters):
    """Where the loop walk says every multi-byte character leads from a state (one vectorized pass over
    the states, at construction) equals a walk of each character kind's byte ranges, state by state."""
    from outlines_core.loop_walk import LoopWalk
    from outlines_core.loop_walk_numpy import UTF8_SEQUENCES, character_targets
    from outlines_core.regex import compile_dfa

    def walked_target(dfa, state):
        reached = set()
        for sequence in UTF8_SEQUENCES:
            at = state
            for low, high in sequence:  # every byte of the range must move alike
                targets = {int(dfa.transitions[at, byte]) for byte in range(low, high + 1)}
                at = targets.pop() if len(targets) == 1 else 0
            reached.add(at)
        return reached.pop() if len(reached) == 1 else 0

    dfa = compile_dfa(pattern)
    walk = LoopWalk(dfa, load_vocabulary("gpt-2"))
    vectorized = walk._character_target.tolist()
    assert [walked_target(dfa, state) for state in range(dfa.num_states)] == vectorized
    assert character_targets(dfa, np.arange(dfa.num_states)).tolist() == vectorized  # numpy, every state asked
    # Where any character goes (strings, [^\n]) some state takes them all alike; not where some characters
    # start a word (日 of 日本) or only some are allowed.
    assert any(target != 0 for target in vectorized) == takes_characters


@pytest.mark.parametrize("tokenizer", ["gpt-2", "llama-spm"])
@pytest.mark.parametrize("native", [True, False])
def test_the_one_state_trie_walk_equals_the_batched_one(tokenizer, native, monkeypatch):
    from outlines_core import config

    monkeypatch.setattr(config, "NATIVE_TRIE_WALK", native)
    vocabulary = load_vocabulary(tokenizer)
    for pattern in [*LOOP_WALK_PATTERNS, SEED_REGEXES["ipv4"], r"(true|false|null|-?[0-9]{1,4})"]:
        index = Index(pattern, vocabulary)
        for state in range(1, index.num_states):
            from_one, depth = index._trie_walk.mask(state)
            batched = index._trie_walk.masks(np.array([state]))
            assert np.array_equal(from_one, batched[0][0]), (pattern, state)
            assert depth == batched[2][0], (pattern, state)


@pytest.mark.parametrize("tokenizer", ["gpt-2", "llama-bpe"])
def test_trie_walk_levels_in_python_or_numpy_give_the_reference_masks(tokenizer, monkeypatch):
    """Small levels are expanded in Python (``TrieWalk._small_levels``), the others in numpy, switching back
    and forth as the frontier shrinks and grows: every split gives the reference masks and the same
    depths, for one origin and for a batch of every state. (The numpy walk: the C walk, where built,
    is compared with the same reference in test_native_trie_walk.py.)"""
    from outlines_core import config

    monkeypatch.setattr(config, "NATIVE_TRIE_WALK", False)
    vocabulary = load_vocabulary(tokenizer)
    patterns = [SEED_REGEXES["ipv4"], SEED_REGEXES["number"], r'\{"a":[0-9]+,"b":"[a-z]{0,5}","c":(true|false)\}']
    for pattern in patterns:
        index = Index(pattern, vocabulary)
        reference = reference_masks(index)
        states = np.arange(1, index.num_states)
        depths = {}
        for children in (0, 1, 16, 400):
            monkeypatch.setattr(config, "TRIE_WALK_PYTHON_CHILDREN", children)
            batched, _, batched_depths = index._trie_walk.masks(states)
            for row, state in enumerate(states.tolist()):
                one, depth = index._trie_walk.mask(state)
                assert np.array_equal(one, reference[state]), (pattern, children, state)
                assert np.array_equal(batched[row], reference[state]), (pattern, children, state)
                assert depth == batched_depths[row] == depths.setdefault(state, depth), (pattern, children, state)


@pytest.mark.parametrize("tokenizer", ["gpt-2", "llama-spm"])
@pytest.mark.parametrize(
    "lookahead, max_frontier, deep_budget", [(1, 10**9, 10**9), (32, 10**9, 10**9), (32, 40, 10**9), (32, 10**9, 300)]
)
@pytest.mark.parametrize("native", [True, False])
def test_first_visits_with_lookahead_give_the_reference_masks(
    tokenizer, lookahead, max_frontier, deep_budget, native, monkeypatch
):
    """A first visit walks nearby restrictive states in the same batch (or, when the batch fans out too
    far, the visited state alone); every mask, whichever visit computed it and in whatever order states
    are visited, is the token-by-token reference. The C walk bounds its visited nodes where the numpy
    walk bounds a level's frontier: either aborts the batch."""
    from outlines_core import config
    from outlines_core.types import json_schema_to_regex

    monkeypatch.setattr(config, "NATIVE_TRIE_WALK", native)
    monkeypatch.setattr(config, "EAGER_INDEX_BUDGET_SECONDS", 0.0)
    monkeypatch.setattr(config, "LOOKAHEAD_STATES", lookahead)
    monkeypatch.setattr(config, "LOOKAHEAD_MAX_FRONTIER", max_frontier)
    monkeypatch.setattr(config, "LOOKAHEAD_DEEP_EXPANSION_BUDGET", deep_budget)
    schema = {
        "type": "object",
        "properties": {"id": {"type": "string", "format": "uuid"}, "n": {"type": "integer"},
                       "tag": {"type": "string", "maxLength": 4}, "on": {"type": "boolean"}},
        "required": ["id", "n"],
    }
    index = Index(json_schema_to_regex(schema), load_vocabulary(tokenizer))
    expected = reference_masks(index)
    order = list(expected)[::-1] if lookahead == 1 else list(expected)
    for state in order:
        assert np.array_equal(index.mask(state), expected[state]), state
    if max_frontier < 100:
        assert not all(index._lookahead_tables.takeable)  # aborted batches are not batched again


#: Runs of digits and hex digits, whose walks' third levels are the large ones, between fixed keys.
RUNS_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "created": {"type": "string", "format": "date-time"},
        "score": {"type": "integer"},
    },
    "required": ["id", "created", "score"],
}


@pytest.mark.parametrize("tokenizer", ["gpt-2", "llama-bpe", "qwen2"])
def test_the_third_level_estimate_is_the_third_level_a_walk_expands(tokenizer):
    """``lookahead.third_level_estimate`` counts, per state, the trie nodes of three bytes whose first two bytes
    live from it: exactly the entries the walk's third level expands (before their own byte is tested)."""
    from outlines_core.types import json_schema_to_regex

    vocabulary = load_vocabulary(tokenizer)
    trie = vocabulary.trie
    for pattern in (json_schema_to_regex(RUNS_SCHEMA), r"[0-9]{1,6}(\.[0-9a-f]{2,5})?", r"ab|[^a]b?c"):
        index = Index(pattern, vocabulary)
        estimate = index._deep_expansion
        for state in range(1, index.num_states):
            expanded = 0
            for first in np.flatnonzero(index.dfa.transitions[state] != 0).tolist():
                node = trie.root_child[first]
                if node == 0:
                    continue
                after_first = index.dfa.transitions[state, first]
                for second in range(trie.child_start[node], trie.child_start[node] + trie.child_count[node]):
                    if index.dfa.transitions[after_first, trie.node_byte[second]] != 0:
                        expanded += int(trie.child_count[second])
            assert estimate[state] == expanded, (pattern, state)


def test_lookahead_batches_keep_within_both_expansion_budgets(monkeypatch):
    """A decode step's batch adds states while their second-level and third-level estimates fit the
    budgets left after the visited state's: a UUID's run of hex digits (a third level of about a thousand
    each on gpt-2) is spread over several first visits rather than walked at once."""
    from outlines_core import config, index as index_module
    from outlines_core.types import json_schema_to_regex

    monkeypatch.setattr(config, "EAGER_INDEX_BUDGET_SECONDS", 0.0)
    monkeypatch.setattr(config, "LOOKAHEAD_DEEP_EXPANSION_BUDGET", 3000)
    batches = []
    plain = index_module.Index._with_lookahead

    def recording(self, state):
        batch = plain(self, state)
        if self._decoding:  # the constructor's batch is compile time, not bounded by the third level
            batches.append(batch)
        return batch

    monkeypatch.setattr(index_module.Index, "_with_lookahead", recording)
    index = Index(json_schema_to_regex(RUNS_SCHEMA), load_vocabulary("gpt-2"))
    for state in range(1, index.num_states):
        index.mask(state)
    tables = index._lookahead_tables
    hex_runs = [batch for batch in batches if any(index._deep_expansion[s] > 500 for s in batch)]
    for batch in batches:
        assert sum(index._deep_expansion[s] for s in batch[1:]) <= max(0, 3000 - index._deep_expansion[batch[0]])
        assert sum(tables.expansion[s] for s in batch[1:]) <= config.LOOKAHEAD_EXPANSION_BUDGET
    assert len(hex_runs) >= 3  # the UUID's 32 hex positions, at most three a batch


def test_the_constructors_batch_leaves_the_loop_walks_states_out(monkeypatch):
    """The start state's batch at construction takes no state the loop walk takes (a counted run of letters
    made it fan out past the frontier bound, a wasted trie walk), but still the restrictive runs next to the
    start that the loop walk declines (a UUID's hex digits, a number's digits)."""
    from outlines_core import config, index as index_module

    monkeypatch.setattr(config, "EAGER_INDEX_BUDGET_SECONDS", 0.0)
    plain = index_module.Index._with_lookahead
    starts = []

    def recording(self, state):
        batch = plain(self, state)
        if not self._decoding:
            starts.append(batch)
        return batch

    monkeypatch.setattr(index_module.Index, "_with_lookahead", recording)
    vocabulary = load_vocabulary("gpt-2")
    sentence = Index(r"[A-Z][a-z ,]{10,200}\.", vocabulary)
    assert starts == [[sentence.initial_state]]
    assert sentence._loop_walker.takes(sentence.dfa.transitions[sentence.initial_state, ord("T")])
    starts.clear()
    uuid = Index(r'"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}",[a-z ]{3,40}', vocabulary)
    (batch,) = starts
    assert len(batch) > 8 and not any(uuid._loop_walker.takes(state) for state in batch)
    assert len(uuid._class_masks) >= 8  # the hex positions' masks, from the start's walk


def test_lookahead_does_not_search_past_a_permissive_state(monkeypatch):
    """A decode spends many steps in a string's content: the states beyond it (an escape's hex digits, the
    next key) are not batched with a state before the string."""
    from outlines_core import config

    monkeypatch.setattr(config, "EAGER_INDEX_BUDGET_SECONDS", 0.0)
    index = Index(r'\{"k":"([^"\\]|\\u[0-9a-f]{4})*","n":[0-9]{1,3}\}', load_vocabulary("gpt-2"))
    tables = index._lookahead_tables
    permissive = [not crossable for crossable in tables.crossable]
    assert any(permissive)
    # States reachable from the start without passing through a permissive state.
    before = {index.initial_state}
    stack = [index.initial_state]
    while stack:
        state = stack.pop()
        for target in set(index.dfa.class_transitions[state].tolist()) - {0}:
            if target not in before:
                before.add(target)
                if not permissive[target]:
                    stack.append(target)
    beyond = set(range(1, index.num_states)) - before
    assert beyond  # the hex digits of an escape, the second field
    # The start's first visit (the constructor's) batched what lies before the string, and nothing beyond.
    computed = set(index.computed_class_masks)
    assert {int(index._mask_class[state]) for state in before if tables.takeable[state]} <= computed
    assert not {int(index._mask_class[state]) for state in beyond} & computed


def test_packing_token_pairs_sparse_or_dense_gives_packbits():
    index = Index(r"[0-9]{1,3}", load_vocabulary("gpt-2"))
    rng = np.random.default_rng(7)
    for rows, per_row in [(1, 5), (3, 300), (2, 20_000), (4, 0)]:
        pairs = [(row, token) for row in range(rows) for token in rng.choice(index.vocabulary.size, per_row, replace=False)]
        row_ids = np.array([p[0] for p in pairs], dtype=np.int64)
        token_ids = np.array([p[1] for p in pairs], dtype=np.int64)
        dense = np.zeros((rows, index.num_words * 32), dtype=bool)
        dense[row_ids, token_ids] = True
        expected = np.packbits(dense, axis=1, bitorder="little").view("<i4")
        assert np.array_equal(index._trie_walk.pack_rows(row_ids, token_ids, rows), expected), (rows, per_row)
