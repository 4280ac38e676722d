"""The C trie walk (``outlines_core/_native.c``) against the numpy walk and the token-by-token reference:
the same masks and depths on real vocabularies, its node bound, and clear errors on malformed input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from conftest import load_vocabulary, reference_masks, small_regexes
from outlines_core import Index, config
from outlines_core.index import FINISHED
from outlines_core.native import native_available
from outlines_core.types import json_schema_to_regex


PATTERNS = [
    r"((25[0-5]|2[0-4]\d|[01]?\d\d?)\.){3}(25[0-5]|2[0-4]\d|[01]?\d\d?)",
    r"[a-zA-Z0-9._%+-]+@[a-zA-Z0-9-]+(\.[a-zA-Z0-9-]+)*\.[a-zA-Z]{2,}",
    r'"([^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4}){0,12}"',
    r"(日本語|héllo|[α-ω]{1,3}|🎉)( (日本語|héllo|[α-ω]{1,3}|🎉)){0,3}",
    json_schema_to_regex({
        "type": "object",
        "properties": {"id": {"type": "string", "format": "uuid"}, "n": {"type": "integer"},
                       "at": {"type": "string", "format": "date-time"}, "on": {"type": "boolean"}},
        "required": ["id", "n", "at"],
    }),
]


def walks(index: Index, states: np.ndarray, native: bool, monkeypatch) -> tuple[np.ndarray, np.ndarray, list]:
    """The batched masks and depths of ``states``, and the one-origin walks, by the C or the numpy walk."""
    monkeypatch.setattr(config, "NATIVE_TRIE_WALK", native)
    masks, _, depths = index._trie_walk.masks(states)
    ones = [index._trie_walk.mask(int(state)) for state in states]
    return masks, depths, ones


def test_the_c_trie_walk_is_built():
    # setup.py builds it wherever a C compiler is at hand (CI's machines have one); without it the package
    # still works, through the numpy walk, 3 to 9 times slower on restrictive states.
    # The same extension holds the DFA kernels (tests/regex/test_native_dfa.py).
    assert native_available(), "outlines_core._native was not built: reinstall with a C compiler (gcc, clang)"


@pytest.mark.parametrize("tokenizer", ["gpt-2", "llama-spm", "qwen2"])
def test_c_and_numpy_walks_give_the_reference_masks_and_the_same_depths(tokenizer, monkeypatch):
    vocabulary = load_vocabulary(tokenizer)
    for pattern in PATTERNS:
        index = Index(pattern, vocabulary)
        states = np.arange(1, index.num_states)
        reference = reference_masks(index)
        c_masks, c_depths, c_ones = walks(index, states, True, monkeypatch)
        numpy_masks, numpy_depths, numpy_ones = walks(index, states, False, monkeypatch)
        assert np.array_equal(c_depths, numpy_depths), pattern
        for row, state in enumerate(states.tolist()):
            assert np.array_equal(c_masks[row], reference[state]), (pattern, state)
            assert np.array_equal(numpy_masks[row], reference[state]), (pattern, state)
            assert np.array_equal(c_ones[row][0], reference[state]) and c_ones[row][1] == c_depths[row], (pattern, state)
            assert c_ones[row][1] == numpy_ones[row][1], (pattern, state)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pattern=small_regexes())
def test_c_walk_equals_the_numpy_walk_on_random_regexes(pattern):
    vocabulary = load_vocabulary("gpt-2")
    index = Index(pattern, vocabulary)
    states = np.arange(1, index.num_states)
    saved = config.NATIVE_TRIE_WALK
    try:
        config.NATIVE_TRIE_WALK = True
        c_masks, _, c_depths = index._trie_walk.masks(states)
        config.NATIVE_TRIE_WALK = False
        numpy_masks, _, numpy_depths = index._trie_walk.masks(states)
    finally:
        config.NATIVE_TRIE_WALK = saved
    assert np.array_equal(c_masks, numpy_masks), pattern
    assert np.array_equal(c_depths, numpy_depths), pattern


def test_the_c_walk_stops_past_its_node_bound(monkeypatch):
    monkeypatch.setattr(config, "NATIVE_TRIE_WALK", True)
    index = Index(r"[a-z]{1,8}", load_vocabulary("gpt-2"))
    origins = np.array([index.initial_state])
    masks, successors, depths = index._trie_walk.masks(origins, max_frontier=50)
    assert masks is None and successors is None and depths is None
    masks, _, depths = index._trie_walk.masks(origins, max_frontier=10**9)
    assert masks is not None and depths[0] == 8


def c_walk_arguments(index: Index, origins: np.ndarray) -> list:
    walk = index._trie_walk
    return [*walk._native_tables, origins, np.zeros((len(origins), walk.num_words), dtype=np.int32),
            np.zeros(len(origins), dtype=np.int64), 10**9]


def test_the_c_walk_rejects_malformed_input_with_a_clear_error():
    from outlines_core import _native

    index = Index(r"[0-9]{1,3}", load_vocabulary("gpt-2"))
    good = c_walk_arguments(index, np.array([index.initial_state]))
    assert _native.trie_masks(*good) > 0
    wrong_dtype = list(good)
    wrong_dtype[7] = good[7].astype(np.int32)  # origins must be int64
    with pytest.raises(TypeError, match="origins must have 8-byte items"):
        _native.trie_masks(*wrong_dtype)
    for origin in (0, index.num_states):  # the dead state, past the table
        with pytest.raises(ValueError, match=f"origin {origin} is not a live state"):
            _native.trie_masks(*c_walk_arguments(index, np.array([origin])))
    read_only = list(good)
    read_only[8] = good[8].copy()
    read_only[8].setflags(write=False)
    with pytest.raises((BufferError, TypeError, ValueError)):
        _native.trie_masks(*read_only)
    short = list(good)
    short[3] = good[3][:-1]  # token_start must have a node more than the others
    with pytest.raises(ValueError, match="array sizes do not fit together"):
        _native.trie_masks(*short)
    bad_ids = list(good)
    bad_ids[4] = np.full_like(good[4], 10**8)  # token ids past the mask's words
    with pytest.raises(ValueError, match="malformed"):
        _native.trie_masks(*bad_ids)


def token_walk_arguments(index: Index, rng: np.random.Generator, count: int) -> list:
    """``walk_tokens``'s arguments for ``count`` random (token, state, start inside the token) walks."""
    table = index.vocabulary.token_table
    tokens = rng.choice(np.flatnonzero(table.content & (table.lengths > 0)), size=count)
    states = rng.integers(0, index.num_states, size=count)  # the dead state included: it stays dead
    skipped = (rng.random(count) * table.lengths[tokens]).astype(np.int64)
    return [index.dfa.transitions, table.flat, tokens.astype(np.int64), states.astype(np.int64),
            (table.offsets[tokens] + skipped).astype(np.int64), (table.lengths[tokens] - skipped).astype(np.int64),
            np.zeros(table.lengths.size, dtype=bool)]


@pytest.mark.parametrize("pattern", PATTERNS[:4])
def test_the_c_token_walk_equals_a_walk_of_each_token(pattern):
    from outlines_core import _native

    index = Index(pattern, load_vocabulary("gpt-2"))
    transitions, flat, tokens, states, positions, remaining, alive = token_walk_arguments(
        index, np.random.default_rng(7), 3000
    )
    alive[tokens[:10]] = True  # entries are only ever set: these stay set whatever their walk
    expected = alive.copy()
    for token, state, at, left in zip(tokens.tolist(), states.tolist(), positions.tolist(), remaining.tolist()):
        if index.dfa.walk(flat[at : at + left].tobytes(), state) != 0:
            expected[token] = True
    _native.walk_tokens(transitions, flat, tokens, states, positions, remaining, alive.view(np.uint8))
    assert np.array_equal(alive, expected), pattern
    assert expected[10:].any() and not expected.all()  # some walks live, some die


def test_the_c_token_walk_rejects_malformed_input_with_a_clear_error():
    from outlines_core import _native

    index = Index(r"[a-z]{1,8}", load_vocabulary("gpt-2"))
    good = token_walk_arguments(index, np.random.default_rng(0), 50)
    good[-1] = good[-1].view(np.uint8)
    _native.walk_tokens(*good)
    wrong_dtype = list(good)
    wrong_dtype[3] = good[3].astype(np.int32)  # states must be int64
    with pytest.raises(TypeError, match="states must have 8-byte items"):
        _native.walk_tokens(*wrong_dtype)
    short = list(good)
    short[4] = good[4][:-1]
    with pytest.raises(ValueError, match="array sizes do not fit together"):
        _native.walk_tokens(*short)
    for slot, value in ((2, 10**9), (3, index.num_states), (4, len(good[1])), (5, -1)):
        # a token past ``alive``, a state past the table, bytes past the data, a negative length
        bad = [array.copy() if isinstance(array, np.ndarray) else array for array in good]
        bad[slot][0] = value
        with pytest.raises(ValueError, match="walk 0 is malformed"):
            _native.walk_tokens(*bad)
    read_only = list(good)
    read_only[-1] = good[-1].copy()
    read_only[-1].setflags(write=False)
    with pytest.raises((BufferError, TypeError, ValueError)):
        _native.walk_tokens(*read_only)


#: Loop-walked patterns: a string that loops, one whose multi-byte characters walk alike, counted runs
#: (with and without characters), an e-mail's labels.
TEXT_RUN_PATTERNS = [
    r'"([^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"',
    r"[^\n]{0,12}\n",
    r"[A-Z][a-z ,]{10,40}\.",
    r'"([^"\\]|\\.){0,30}"',
    r"[a-zA-Z0-9._%+-]+@[a-zA-Z0-9-]+(\.[a-zA-Z0-9-]+)*\.[a-zA-Z]{2,}",
    # Chains cut short: tokens whose run of chain bytes outruns the chain, then leave by a byte no chain
    # state takes (" onClick"), walk on from its end.
    r"[a-z ]{2}[a-o][a-z]*[A-Z][a-z]*",
    r"[a-z ]{3}[a-c]\.[a-z ]+;",
]


def text_walks(pattern: str, tokenizer: str = "gpt-2"):
    """(index, state, chain) for each state of ``pattern`` whose loop walk takes one text run."""
    index = Index(pattern, load_vocabulary(tokenizer))
    walker = index._loop_walker
    for state in range(1, index.num_states):
        chain = walker._chain(state)
        if chain is not None and len(chain.spans) == 1:
            yield index, state, chain


@pytest.mark.parametrize("pattern", TEXT_RUN_PATTERNS)
def test_the_c_text_run_walk_finds_every_token_alive_from_the_state(pattern):
    """The chained tokens and the ones ``walk_text_run`` walks alive are exactly the tokens whose bytes walk
    from the state (the vectorized walk of every token, ``reference_masks``); with an alike depth ``d``,
    exactly those of more than ``d`` bytes, the others left unset."""
    from outlines_core import _native

    checked = 0
    for index, state, chain in text_walks(pattern):
        if checked == 0:
            reference = reference_masks(index)
            table = index.vocabulary.token_table
            content = table.content
        expected = np.unpackbits(reference[state].view(np.uint8), bitorder="little")[: content.size].astype(bool)
        expected &= content  # EOS is the mask's, not the walk's
        classes, up_to = chain.spans[0]
        for depth in (0, 3, 8):
            arguments, words = index._loop_walker._text_walk_arguments(chain, classes, up_to, 0.0, depth)
            _native.walk_text_run(*arguments)
            bits = np.unpackbits(words.view(np.uint8), bitorder="little").astype(bool)
            assert not bits[content.size :].any()
            alive = bits[: content.size]
            decided = table.lengths > depth
            assert np.array_equal(alive[decided], expected[decided]), (pattern, state, depth)
            assert not alive[~decided].any(), (pattern, state, depth)
        checked += 1
    assert checked, pattern


def test_the_c_text_run_walk_rejects_malformed_input_with_a_clear_error():
    from outlines_core import _native

    index, _, chain = next(text_walks(r"[A-Z][a-z ,]{10,40}\."))
    good = list(index._loop_walker._text_walk_arguments(chain, chain.spans[0][0], chain.spans[0][1], 0.0, 0)[0])
    _native.walk_text_run(*good)

    def replaced(slot, value):
        arguments = [argument.copy() if isinstance(argument, np.ndarray) else argument for argument in good]
        arguments[slot] = value
        return arguments

    with pytest.raises(TypeError, match="chain_states must have 8-byte items"):
        _native.walk_text_run(*replaced(8, good[8].astype(np.int32)))
    with pytest.raises(ValueError, match="array sizes do not fit together"):
        _native.walk_text_run(*replaced(5, good[5][:-1]))  # a prefix per other token
    with pytest.raises(ValueError, match="a chain state is not a state"):
        _native.walk_text_run(*replaced(8, np.array([index.num_states], dtype=np.int64)))
    decreasing = good[6].copy()
    decreasing[1] = decreasing[2] + 1
    with pytest.raises(ValueError, match="bounds must not decrease"):
        _native.walk_text_run(*replaced(6, decreasing))
    shifted = good[7].copy()
    shifted[256] += 1
    with pytest.raises(ValueError, match="bounds must split the others"):
        _native.walk_text_run(*replaced(7, shifted))
    others = good[4].copy()
    others[:] = 10**9  # token ids past the vocabulary
    with pytest.raises(ValueError, match="token 1000000000 is malformed"):
        _native.walk_text_run(*replaced(4, others))
    read_only = good[12].copy()
    read_only.setflags(write=False)
    with pytest.raises((BufferError, TypeError, ValueError)):
        _native.walk_text_run(*replaced(12, read_only))
    with pytest.raises(ValueError, match="array sizes do not fit together"):
        _native.walk_text_run(*replaced(12, good[12][:-1]))  # fewer words than the tokens' bits
    with pytest.raises(ValueError, match="a marked token is not a token"):
        _native.walk_text_run(*replaced(13, np.array([len(good[10])], dtype=np.int64)))
    with pytest.raises(ValueError, match="lead_positions must have one entry per token"):
        _native.walk_text_run(*replaced(17, good[17][:-1]))
    with pytest.raises(TypeError, match="lead_positions must have 4-byte items"):
        _native.walk_text_run(*replaced(17, good[17].astype(np.int64)))
    # An e-mail's domain label, whose walk reads the tokens starting with "." from the first-byte order.
    email = Index(r"[a-z]+@[a-z]+(\.[a-z]+)*\.[a-z]{2,}", index.vocabulary)
    label = email.dfa.walk(b"jane@mail")
    label_chain = email._loop_walker._chain(label)
    arguments = list(email._loop_walker._text_walk_arguments(label_chain, *label_chain.spans[0], 0.0, 0)[0])
    _native.walk_text_run(*arguments)
    arguments[17] = np.full_like(arguments[17], len(arguments[19]) - 1)  # past the last token of the order
    with pytest.raises(ValueError, match="is malformed"):
        _native.walk_text_run(*arguments)


def test_a_walk_within_a_time_gives_the_masks_or_nothing():
    """``masks_within`` bounds the C walk's trie nodes by the time left (the eager pass's deadline): with
    time to spare it gives ``masks``'s masks and depths; with none, no masks, so the caller leaves the
    batch's states for their first visits."""
    index = Index(PATTERNS[2], load_vocabulary("gpt-2"))
    origins = np.arange(1, index.num_states)
    masks, _, depths = index._trie_walk.masks(origins)
    bounded, _, bounded_depths = index._trie_walk.masks_within(origins, 10.0)
    assert np.array_equal(bounded, masks) and np.array_equal(bounded_depths, depths)
    assert index._trie_walk.masks_within(origins, 0.0) == (None, None, None)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_the_c_next_state_is_the_python_walk_of_its_bytes(pattern, monkeypatch):
    """``Index.next_state`` by the C ``TokenMover`` and by the Python byte loop: the same state for every
    (state, token) pair of a sample, allowed or not, content, special, EOS or out of range, from every
    state and from FINISHED, asked twice (the Python version's cache answers the second time)."""
    vocabulary = load_vocabulary("gpt-2")
    sample = np.random.default_rng(7).integers(0, vocabulary.size, 300).tolist()
    sample += [*vocabulary.eos_token_ids, -1, vocabulary.size, vocabulary.size + 5, 10**30]
    moves = {}
    for native in (True, False):
        monkeypatch.setattr(config, "NATIVE_MOVES", native)
        index = Index(pattern, vocabulary)
        assert ("next_state" in vars(index)) is native  # the C method serves this instance
        pairs = [(s, t) for s in [*range(1, index.num_states), FINISHED] for t in sample]
        pairs += [(s, token) for s in range(1, index.num_states) for token in index.allowed_tokens(s)[:50].tolist()]
        pairs = sorted(set(pairs))
        moves[native] = [index.next_state(s, t) for s, t in pairs] + [index.next_state(s, t) for s, t in pairs]
        allowed = int(index.allowed_tokens(1)[0])
        assert index.next_state(np.int64(1), np.int32(allowed)) == index.next_state(1, allowed) > 0
    assert moves[True] == moves[False]
    assert {0, FINISHED} < set(moves[True]) and any(target > 0 for target in moves[True])


def test_the_c_token_mover_rejects_malformed_input_with_a_clear_error():
    from outlines_core import _native

    table = np.zeros((3, 256), dtype=np.int32)
    table[1, ord("a")] = 2
    data, offsets = np.frombuffer(b"aab", dtype=np.uint8), np.array([0, 1, 3, 3], dtype=np.int64)
    accepting, eos = np.array([False, False, True]), np.array([3], dtype=np.int64)
    next_state = _native.TokenMover(table, data, offsets, accepting, eos).next_state
    assert next_state(1, 0) == 2 and next_state(1, 1) == 0 and next_state(2, 0) == 0  # "a", "ab": b dies
    assert next_state(1, 2) == 0  # a token without bytes (a special token)
    assert next_state(2, 3) == -1 and next_state(1, 3) == 0 and next_state(-1, 3) == -1  # EOS
    assert next_state(-1, 0) == 0 and next_state(1, 4) == 0 and next_state(1, -2) == 0
    with pytest.raises(ValueError, match="state 3 is out of range"):
        next_state(3, 0)
    with pytest.raises(ValueError, match="state -2 is out of range"):
        next_state(-2, 0)
    with pytest.raises(TypeError, match="two integers"):
        next_state(1)
    with pytest.raises(TypeError):
        next_state(1, "a")
    with pytest.raises(ValueError, match="must be \\(states, 256\\)"):
        _native.TokenMover(table[:, :255].copy(), data, offsets, accepting, eos)
    with pytest.raises(ValueError, match="one flag per state"):
        _native.TokenMover(table, data, offsets, accepting[:2].copy(), eos)
    with pytest.raises(TypeError, match="offsets must have 8-byte items"):
        _native.TokenMover(table, data, offsets.astype(np.int32), accepting, eos)
    with pytest.raises(ValueError, match="bytes lie outside the data"):
        _native.TokenMover(table, data, np.array([0, 5], dtype=np.int64), accepting, eos).next_state(1, 0)
    wild = table.copy()
    wild[1, ord("a")] = 7  # a move to no state
    with pytest.raises(ValueError, match="leads outside the states"):
        _native.TokenMover(wild, data, offsets, accepting, eos).next_state(1, 0)


def test_the_c_mask_keys_find_each_rows_first_equal_row_of_the_batch():
    from outlines_core import _native

    rng = np.random.default_rng(3)
    distinct = rng.integers(-(2**31), 2**31, size=(6, 4008)).astype(np.int32)
    distinct[1] = 0
    distinct[2] = 0
    distinct[2, 4007] = 1  # one bit apart from row 1, in the last word
    distinct[3] = distinct[0]
    distinct[3, 0] ^= np.int32(-(2**31))  # one bit (the sign) apart from row 0, in the first word
    order = rng.integers(0, len(distinct), size=40)
    batch = distinct[order]
    keys, first = _native.mask_keys(batch, batch.shape[1])
    assert len(keys) == len(first) == len(batch)
    for row, earlier in enumerate(first):
        expected = next(i for i in range(row + 1) if np.array_equal(batch[i], batch[row]))
        assert earlier == expected
        assert keys[row] == keys[earlier] and 0 <= keys[row] < 2**32
    assert len({keys[list(order).index(kind)] for kind in set(order.tolist())}) == len(set(order.tolist()))
    assert _native.mask_keys(np.zeros((0, 3), dtype=np.int32), 3) == ([], [])
    with pytest.raises(ValueError, match="rows of 7 int32 words"):
        _native.mask_keys(batch, 7)
    with pytest.raises(TypeError, match="masks must have 4-byte items"):
        _native.mask_keys(batch.astype(np.int64), batch.shape[1])


def test_the_c_distinct_successors_are_the_numpy_ones(monkeypatch):
    from outlines_core import _native, lookahead
    from outlines_core.native import kernels

    rng = np.random.default_rng(11)
    for states, classes in ((1, 1), (2, 5), (40, 3), (600, 71)):
        table = rng.integers(0, states, size=(states, classes)).astype(np.int32)
        table[0] = 0  # the dead state
        native = lookahead.distinct_successors(table)
        monkeypatch.setattr(lookahead, "kernels", None)
        fallback = lookahead.distinct_successors(table)
        monkeypatch.setattr(lookahead, "kernels", kernels)
        assert np.array_equal(native[0], fallback[0]) and np.array_equal(native[1], fallback[1])
        for state in range(states):
            row = native[0][native[1][state] : native[1][state + 1]]
            assert row.tolist() == sorted(set(table[state].tolist()) - {0})
    with pytest.raises(ValueError, match="leads outside the states"):
        _native.distinct_successors(np.array([[0, 1], [2, 0]], dtype=np.int32), 2)
    with pytest.raises(ValueError, match="non-empty rows of 3 classes"):
        _native.distinct_successors(np.zeros((2, 2), dtype=np.int32), 3)


def test_the_c_live_class_sums_and_third_level_estimates_are_the_numpy_ones(monkeypatch):
    """``live_weight_sums`` and ``third_level_estimate`` (C, no BLAS) give numpy's products exactly, on random
    tables (a pattern of mostly live classes, as inside strings, and mostly dead ones) and real DFAs."""
    from types import SimpleNamespace

    from outlines_core import lookahead
    from outlines_core.native import kernels
    from outlines_core.regex import compile_dfa

    vocabulary = load_vocabulary("gpt-2")
    rng = np.random.default_rng(5)
    dfas = [compile_dfa(pattern) for pattern in PATTERNS]
    for states, classes, dead_share in ((2, 1, 0.5), (30, 7, 0.2), (300, 71, 0.9), (200, 130, 0.1)):
        table = rng.integers(1, states, size=(states, classes)).astype(np.int32)
        table[rng.random((states, classes)) < dead_share] = 0
        table[0] = 0
        byte_classes = np.sort(rng.integers(0, classes, size=256)).astype(np.int32)
        byte_classes[:classes] = np.arange(classes)  # every class holds a byte
        dfas.append(SimpleNamespace(class_transitions=table, byte_classes=byte_classes))
    for dfa in dfas:
        num_classes = dfa.class_transitions.shape[1]
        live_bytes = (dfa.class_transitions[1:] != 0).any(axis=0)[dfa.byte_classes]
        weights = rng.integers(0, 1000, size=num_classes).astype(np.float64)
        native = (lookahead.live_class_sums(dfa.class_transitions, weights),
                  lookahead.third_level_estimate(dfa, vocabulary.trie, live_bytes))
        monkeypatch.setattr(lookahead, "kernels", None)
        fallback = (lookahead.live_class_sums(dfa.class_transitions, weights),
                    lookahead.third_level_estimate(dfa, vocabulary.trie, live_bytes))
        monkeypatch.setattr(lookahead, "kernels", kernels)
        assert np.array_equal(native[0], fallback[0])
        assert np.array_equal(native[1], fallback[1])


def test_the_live_class_kernels_refuse_malformed_input():
    from outlines_core import _native

    table = np.array([[0, 0], [1, 0]], dtype=np.int32)
    counts = np.zeros((256, 256), dtype=np.float32)
    classes = np.zeros(256, dtype=np.int32)
    live = np.ones(256, dtype=np.uint8)
    with pytest.raises(ValueError, match="leads outside the states"):
        _native.live_weight_sums(np.array([[0, 0], [2, 0]], dtype=np.int32), 2, np.ones(2))
    with pytest.raises(ValueError, match="non-empty rows of 3 classes"):
        _native.live_weight_sums(table, 3, np.ones(3))
    with pytest.raises(ValueError, match="one per class"):
        _native.live_weight_sums(table, 2, np.ones(3))
    with pytest.raises(TypeError, match="weights must have 8-byte items"):
        _native.live_weight_sums(table, 2, np.ones(2, dtype=np.float32))
    with pytest.raises(ValueError, match="must cover 256, 256 and 256x256"):
        _native.third_level_estimate(table, 2, classes, live, counts[:10])
    with pytest.raises(ValueError, match="byte 0's class is not one of 2"):
        _native.third_level_estimate(table, 2, classes + 5, live, counts)
    with pytest.raises(TypeError, match="counts must have 4-byte items"):
        _native.third_level_estimate(table, 2, classes, live, counts.astype(np.float64))
