"""Index and Guide on a small handmade vocabulary: layout, EOS, errors, copies."""

import numpy as np
import pytest

from outlines_core import Guide, Index, Vocabulary
from outlines_core.errors import IncompatibleVocabularyError, RegexSyntaxError, TokenNotAllowedError
from outlines_core.index import FINISHED

# id: 0    1     2     3      4      5       6      7     8     9 (EOS)  10 (special)
TOKENS = [b"1", b"2", b"12", b"3", b".", b"1.2", b"a", b"\xc3", b"\xa9", None, None]
EOS = 9


@pytest.fixture
def vocabulary():
    return Vocabulary(TOKENS, [EOS], size=70)  # logits wider than the tokenizer, not a multiple of 32


def allowed(guide):
    return guide.allowed_tokens().tolist()


def test_allowed_tokens_and_eos_only_where_the_match_can_end(vocabulary):
    guide = Guide(Index(r"1(\.2)?", vocabulary))
    assert allowed(guide) == [0, 5]  # "1" and "1.2"; "12" would break the pattern
    guide.advance(0)
    assert allowed(guide) == [4, EOS]
    assert guide.is_accepting() and not guide.is_finished()
    guide.advance(4)
    assert allowed(guide) == [1] and not guide.is_accepting()
    guide.advance(1)
    assert allowed(guide) == [EOS]
    assert guide.is_finished()  # complete and nothing can extend it
    guide.advance(EOS)
    assert guide.state == FINISHED and guide.is_finished()
    assert allowed(guide) == [EOS]  # finished rows keep emitting EOS


def test_bitmask_layout_matches_allowed_tokens(vocabulary):
    guide = Guide(Index(r"[0-9.]+", vocabulary))
    row = np.zeros((70 + 31) // 32, dtype=np.int32)
    guide.fill_bitmask(row)
    bits = [(int(row[t // 32]) >> (t % 32)) & 1 for t in range(70)]
    assert [t for t in range(70) if bits[t]] == allowed(guide) == [0, 1, 2, 3, 4, 5]
    guide.advance(2)
    guide.fill_bitmask(row)
    assert [t for t in range(70) if (int(row[t // 32]) >> (t % 32)) & 1] == [0, 1, 2, 3, 4, 5, EOS]
    with pytest.raises(ValueError, match="expected"):
        guide.fill_bitmask(np.zeros(5, dtype=np.int32))
    # A 2-D row of the right length is refused with the same message, not broadcast into.
    with pytest.raises(ValueError, match="expected"):
        guide.fill_bitmask(np.zeros((len(row), 1), dtype=np.int32))


def test_tokens_splitting_a_utf8_character(vocabulary):
    guide = Guide(Index("aé", vocabulary))
    guide.advance(6)
    assert allowed(guide) == [7]  # the first byte of é alone
    guide.advance(7)
    assert allowed(guide) == [8]
    guide.advance(8)
    assert allowed(guide) == [EOS]


def test_not_allowed_token_is_a_clear_error_and_leaves_state(vocabulary):
    guide = Guide(Index(r"1\.2", vocabulary))
    with pytest.raises(TokenNotAllowedError, match=r"token 6 \(bytes b'a'\) is not allowed after 0 tokens"):
        guide.advance(6)
    with pytest.raises(TokenNotAllowedError, match="EOS, but the output is not a complete match"):
        guide.advance(EOS)
    with pytest.raises(TokenNotAllowedError, match="special token"):
        guide.advance(10)
    with pytest.raises(TokenNotAllowedError, match="outside the vocabulary"):
        guide.advance(1000)
    for not_an_id in (5.0, "5", None):  # never read as token 5
        with pytest.raises(TypeError):
            guide.advance(not_an_id)
        with pytest.raises(TypeError):
            guide.is_allowed(not_an_id)
    assert guide.state == guide.index.initial_state
    guide.advance(np.int64(5))
    guide.advance(EOS)
    with pytest.raises(TokenNotAllowedError, match="after EOS"):
        guide.advance(0)


@pytest.mark.parametrize("pattern", [r"1(\.2)?", r"[0-9.]+", "aé", r"(12|3)*\.?"])
def test_a_move_exists_exactly_for_the_tokens_the_mask_allows(vocabulary, pattern):
    # next_state decides by walking the token's bytes, without reading the mask: the two must agree on
    # every id, EOS, special tokens and ids past the tokenizer included, and in the finished state.
    index = Index(pattern, vocabulary)
    for state in [*range(1, index.num_states), FINISHED]:
        for token_id in [-1, *range(vocabulary.size), vocabulary.size]:
            moved = index.next_state(state, token_id) != 0
            assert moved == index.is_allowed(state, token_id), (state, token_id)
            if moved:  # and again from the cache
                assert index.next_state(state, token_id) == index.next_state(state, token_id) != 0


def test_copy_is_independent_and_reset_restarts(vocabulary):
    guide = Guide(Index(r"[12]+", vocabulary))
    guide.advance(0)
    fork = guide.copy()
    fork.advance(1)
    fork.advance(EOS)
    assert fork.is_finished() and not guide.is_finished()
    assert fork.index is guide.index
    guide.reset()
    assert guide.state == guide.index.initial_state


def test_accepts_counts_the_valid_prefix_of_a_draft(vocabulary):
    guide = Guide(Index(r"1\.2", vocabulary))
    assert guide.accepts([0, 4, 1, EOS]) == 4
    assert guide.accepts([0, 1]) == 1
    assert guide.accepts([6]) == 0
    assert guide.state == guide.index.initial_state


def test_vocabulary_that_cannot_spell_the_pattern():
    vocabulary = Vocabulary([b"a", b"b", None], [2])
    with pytest.raises(IncompatibleVocabularyError, match="no token that can continue"):
        Index(r"\d+", vocabulary)
    with pytest.raises(RegexSyntaxError, match="character class matches nothing"):
        Index(r"[^\x00-\U0010ffff]", vocabulary)


@pytest.mark.parametrize("lookahead", [1, 3])
def test_a_lazy_dead_end_is_reported_on_first_visit_whichever_walk_made_its_mask(lookahead, monkeypatch):
    from outlines_core import config

    monkeypatch.setattr(config, "EAGER_INDEX_BUDGET_SECONDS", -1.0)
    # 3: the start's batch also walks "a" and "ab", so the dead end's mask exists before its first visit.
    monkeypatch.setattr(config, "LOOKAHEAD_STATES", lookahead)
    index = Index(r"a(bx|c)", Vocabulary([b"a", b"b", b"c", None], [3]))  # no token spells "x"
    assert len(index.computed_class_masks) == lookahead < index.num_mask_classes - 1  # lazy
    guide = Guide(index)
    guide.advance(0)
    guide.advance(1)  # "ab": allowed, since "b" alone does not die
    with pytest.raises(IncompatibleVocabularyError, match="no token that can continue"):
        guide.allowed_tokens()


def _restrictive_around_permissive_index() -> Index:
    """Digits and dashes (restrictive states) before and after a run of any character but '"' (permissive)."""
    tokens = [bytes([byte]) for byte in range(32, 127)] + [b"12", b"ab", b"-x", None]
    return Index(r'[0-9]{2}-[0-9]{2}-"[^"]{0,3}"-[0-9]{2}', Vocabulary(tokens, [len(tokens) - 1]))


def _record_walked_states(monkeypatch) -> list[int]:
    """The states ``Index._compute_masks`` is asked for, in order, from now on (a list the caller reads)."""
    walked: list[int] = []
    original = Index._compute_masks

    def recording(self, states, *rest, **options):
        walked.extend(states.tolist())
        return original(self, states, *rest, **options)

    monkeypatch.setattr(Index, "_compute_masks", recording)
    return walked


@pytest.mark.parametrize("cheap", [-1, 2, 10**9])
def test_the_eager_pass_walks_cheap_restrictive_then_permissive_states_then_the_cheapest(cheap, monkeypatch):
    from outlines_core import config

    monkeypatch.setattr(config, "EAGER_CHEAP_EXPANSION", cheap)
    monkeypatch.setattr(config, "LOOKAHEAD_STATES", 1)  # the start's walk batches no neighbours
    monkeypatch.setattr(config, "EAGER_INDEX_BUDGET_SECONDS", 60.0)  # every state, whatever the machine
    walked = _record_walked_states(monkeypatch)
    index = _restrictive_around_permissive_index()
    live = (index.dfa.transitions != 0).sum(axis=1)
    after_start = walked[1:]
    permissive = [live[state] > config.LOOKAHEAD_MAX_LIVE_BYTES for state in after_start]
    assert any(permissive) and not all(permissive)
    first, last = permissive.index(True), len(permissive) - permissive[::-1].index(True)
    assert all(permissive[first:last])  # the permissive states in one run
    expansion = index._lookahead_tables.expansion
    before, after = [expansion[s] for s in after_start[:first]], [expansion[s] for s in after_start[last:]]
    # Restrictive states by their walk's estimated cost, cheapest first (quotes and dashes before digits),
    # those within the threshold before the permissive run.
    assert all(cost <= cheap for cost in before) and all(cost > cheap for cost in after)
    assert before == sorted(before) and after == sorted(after)
    assert {-1: not before and len(set(after)) > 1, 2: before and after, 10**9: not after and len(set(before)) > 1}[cheap]


def test_the_eager_pass_leaves_a_later_strings_escapes_and_opening_quote_to_their_first_visit(monkeypatch):
    """Restrictive states a few bytes before a string (whose walks go on into it) that the start reaches only
    through a string are left to their first visit: a string's escapes, the opening quote of the second
    string; the opening quote of the first string, which every decode meets, is computed. A first visit
    gives every state its mask all the same."""
    from conftest import load_vocabulary, reference_masks

    from outlines_core import config
    from outlines_core.types import json_schema_to_regex

    monkeypatch.setattr(config, "EAGER_INDEX_BUDGET_SECONDS", 60.0)  # every candidate, whatever the machine
    monkeypatch.setattr(config, "EAGER_CHEAP_EXPANSION", 10)  # gpt-2's opening quotes cost 18: not cheap
    strings = {"type": "string"}
    schema = {"type": "object", "properties": {"a": strings, "b": strings}, "required": ["a", "b"]}
    index = Index(json_schema_to_regex({**schema, "additionalProperties": False}), load_vocabulary("gpt-2"))

    def computed(prefix: bytes) -> bool:
        return index._mask_class_list[index.dfa.walk(prefix)] in index._class_masks

    assert computed(b'{"a":') and computed(b'{"a":"x') and computed(b'{"a":"x","b":"y')
    assert not computed(b'{"a":"x\\') and not computed(b'{"a":"x\\u00') and not computed(b'{"a":"x","b":')
    reference = reference_masks(index)
    for state in range(1, index.num_states):
        assert np.array_equal(index.mask(state), reference[state]), state


@pytest.mark.parametrize("tokenizer", ["gpt-2", "llama-bpe"])
def test_the_eager_pass_leaves_a_counted_runs_alike_positions_to_their_first_visit(tokenizer, monkeypatch):
    """Of a counted run's positions, the eager pass computes one per group of states that no string of
    ``config.EAGER_ALIKE_DEPTH`` bytes tells apart, and the rest are left to a first visit that borrows its
    short tokens from the computed one: every state still gets the reference mask."""
    from conftest import load_vocabulary, reference_masks

    from outlines_core import config

    monkeypatch.setattr(config, "EAGER_INDEX_BUDGET_SECONDS", 60.0)  # every candidate, whatever the machine
    walked = _record_walked_states(monkeypatch)
    pattern = r"[A-Z][a-z ,]{10,120}\."
    vocabulary = load_vocabulary(tokenizer)
    index = Index(pattern, vocabulary)
    groups = index.dfa.indistinguishable_within(config.EAGER_ALIKE_DEPTH)
    walkable = [state for state in walked if index._loop_walkable[state]]
    assert len({groups[state] for state in walkable}) == len(walkable)  # one per group
    # Positions 10 to 88 (of 120) are alike within 32 bytes: the pass walks one of them.
    alike = {index.dfa.walk(b"A" + b"a" * n) for n in range(10, 89)}
    assert len(alike) > 70 and len(alike & set(walked)) == 1
    walked.clear()
    monkeypatch.setattr(config, "EAGER_ALIKE_DEPTH", 0)
    Index(pattern, vocabulary)
    assert len(alike & set(walked)) > 1  # without the rule, the mask classes among them are walked each
    reference = reference_masks(index)
    for state in range(1, index.num_states):
        assert np.array_equal(index.mask(state), reference[state]), state


def test_an_all_permissive_dfa_is_indexed_without_the_lookahead_tables(monkeypatch):
    # The eager pass reads the lookahead's estimates of restrictive states only: an e-mail address's
    # states are all loop-walked, and its compile does not build them (nor its guide's first steps).
    from conftest import load_vocabulary, reference_masks

    from outlines_core import config

    monkeypatch.setattr(config, "EAGER_INDEX_BUDGET_SECONDS", 60.0)  # every class, whatever the machine
    index = Index(r"[a-zA-Z0-9._%+-]+@[a-zA-Z0-9-]+(\.[a-zA-Z0-9-]+)*\.[a-zA-Z]{2,}", load_vocabulary("gpt-2"))
    states = np.arange(1, index.num_states)
    assert index._permissive[states].all()
    assert len(index.computed_class_masks) == index.num_mask_classes - 1  # every class, in the eager pass
    reference = reference_masks(index)
    for state in states.tolist():
        assert np.array_equal(index.mask(state), reference[state]), state
    assert "_lookahead_tables" not in vars(index)


@pytest.mark.parametrize("one_walk_classes", [0, 64])
def test_a_small_restrictive_dfa_gets_every_mask_from_one_walk(one_walk_classes, monkeypatch):
    from conftest import load_vocabulary, reference_masks
    from outlines_core import config
    from outlines_core.trie_walk import TrieWalk

    monkeypatch.setattr(config, "ONE_WALK_CLASSES", one_walk_classes)
    walks = []
    original = TrieWalk.masks

    def recording(self, origins, *rest, **options):
        walks.append(len(origins))
        return original(self, origins, *rest, **options)

    monkeypatch.setattr(TrieWalk, "masks", recording)
    index = Index(r"((25[0-5]|2[0-4]\d|[01]?\d\d?)\.){3}(25[0-5]|2[0-4]\d|[01]?\d\d?)", load_vocabulary("gpt-2"))
    assert len(index.computed_class_masks) == index.num_mask_classes - 1  # all but the dead state's
    if one_walk_classes:
        assert walks == [index.num_mask_classes - 1]
        assert "_lookahead_tables" not in vars(index)  # never built: no state is left for a decode
    else:  # the start state's lookahead batch (here it reaches every state), built from the tables
        assert "_lookahead_tables" in vars(index)
    reference = reference_masks(index)
    for state in range(1, index.num_states):
        assert np.array_equal(index.mask(state), reference[state]), state


def test_the_eager_pass_batches_restrictive_states_within_the_lookahead_limits(monkeypatch):
    from outlines_core import config

    monkeypatch.setattr(config, "LOOKAHEAD_STATES", 1)  # the start's walk batches no neighbours
    monkeypatch.setattr(config, "EAGER_INDEX_BUDGET_SECONDS", 60.0)
    index = _restrictive_around_permissive_index()
    states = index._eager_order(np.arange(1, index.num_states))
    expansion, permissive = index._lookahead_tables.expansion, index._permissive
    monkeypatch.setattr(config, "INDEX_BATCH_STATES", 2)
    monkeypatch.setattr(config, "LOOKAHEAD_STATES", 4)
    monkeypatch.setattr(config, "LOOKAHEAD_EXPANSION_BUDGET", 12)
    batches = [batch.tolist() for batch in index._eager_batches(states)]
    assert [state for batch in batches for state in batch] == states.tolist()  # every state, in order
    kinds = [{bool(permissive[state]) for state in batch} for batch in batches]
    assert all(len(kind) == 1 for kind in kinds)  # a batch is all permissive or all restrictive
    for batch, (is_permissive,) in zip(batches, kinds):
        if is_permissive:
            assert len(batch) <= 2
        else:
            assert len(batch) <= 4
            assert len(batch) == 1 or sum(expansion[state] for state in batch) <= 12
    restrictive = [batch for batch, (is_permissive,) in zip(batches, kinds) if not is_permissive]
    assert max(map(len, restrictive)) == 4 and any(len(batch) < 4 for batch in restrictive[:-1])  # both limits bit


def test_multi_byte_tokens_are_enough_when_no_single_byte_fits():
    vocabulary = Vocabulary([b"ab", b"c", None], [2])
    guide = Guide(Index("abc", vocabulary))
    assert allowed(guide) == [0]


def test_lazy_states_give_the_same_masks_as_eager(vocabulary, monkeypatch):
    from outlines_core import config

    pattern = r"[12.]{0,8}3"
    eager = Index(pattern, vocabulary)
    monkeypatch.setattr(config, "EAGER_INDEX_BUDGET_SECONDS", -1.0)
    monkeypatch.setattr(config, "LOOKAHEAD_STATES", 1)
    lazy = Index(pattern, vocabulary)
    assert len(lazy._class_masks) == 1  # only the start state's mask
    for state in range(1, eager.num_states):
        assert np.array_equal(eager.mask(state), lazy.mask(state))


def test_masks_are_read_only_and_shared(vocabulary):
    index = Index(r"[12]{5}", vocabulary)
    with pytest.raises(ValueError):
        index.mask(index.initial_state)[0] = 0
    # States 1..4 allow the same tokens except at the end: masks deduplicate.
    assert index.num_unique_masks < index.num_states - 1


@pytest.mark.parametrize("keys", ["C kernel", "numpy", "all equal"])
def test_states_share_a_mask_exactly_when_their_masks_are_equal(keys, monkeypatch):
    from conftest import load_vocabulary

    from outlines_core import sharing
    if keys == "C kernel":  # test_the_c_trie_walk_is_built checks the kernels were built
        monkeypatch.setattr(sharing, "mask_keys", sharing.native_mask_keys)
    if keys == "numpy":
        monkeypatch.setattr(sharing, "mask_keys", sharing.numpy_mask_keys)
    if keys == "all equal":  # every mask lands in one bucket: only the byte comparison tells them apart
        monkeypatch.setattr(sharing, "mask_keys", lambda masks: ([0] * len(masks), range(len(masks))))
    index = Index(r'\{"a":[0-9]{1,3},"b":"[a-c]{2}","ab":(true|false)\}', load_vocabulary("gpt-2"))
    masks = {state: index.mask(state) for state in range(1, index.num_states)}
    distinct = {mask.tobytes() for mask in masks.values()}
    assert 1 < len(distinct) < len(masks)
    assert index.num_unique_masks == len(distinct)
    for first, first_mask in masks.items():
        for second, second_mask in masks.items():
            assert (first_mask is second_mask) == np.array_equal(first_mask, second_mask), (first, second)


def test_a_walked_mask_is_shared_only_with_states_alike_one_byte_past_its_longest_token(monkeypatch):
    """After "1" the longest live token is "a" (1 byte); after "2", "ab" (2 bytes) also lives. The two
    states agree on every 1-byte string, so a mask shared at the walk's depth instead of one byte past it
    would give the second state the first one's mask."""
    from outlines_core import config

    monkeypatch.setattr(config, "EAGER_INDEX_BUDGET_SECONDS", 0.0)
    monkeypatch.setattr(config, "LOOKAHEAD_STATES", 1)  # one state per walk: the order below is the order
    vocabulary = Vocabulary([b"1", b"2", b"a", b"ab", b"b", b"z", None], [6])
    index = Index(r"(1a|2ab)z", vocabulary)
    after_1, after_2 = index.dfa.walk(b"1"), index.dfa.walk(b"2")
    assert index.allowed_tokens(after_1).tolist() == [2]  # "a"
    assert index.allowed_tokens(after_2).tolist() == [2, 3]  # "a", "ab"
    assert index.allowed_tokens(index.dfa.walk(b"1a")).tolist() == [5]  # "z"
    assert index.allowed_tokens(index.dfa.walk(b"2a")).tolist() == [4]  # "b"


@pytest.mark.parametrize("tokenizer", ["gpt-2", "llama-bpe"])
def test_first_visits_in_a_counted_string_reuse_an_alike_mask_and_equal_the_trie_walk(tokenizer, monkeypatch):
    """Inside a string of at most 40 characters, each position's loop walk finds an earlier position alike
    to it up to the characters left (``Index._alike_mask``) and walks only the longer tokens; the masks
    are those of the trie walk all the same, visited in either order."""
    from conftest import load_vocabulary

    from outlines_core import config, loop_walk

    monkeypatch.setattr(config, "EAGER_INDEX_BUDGET_SECONDS", -1.0)
    monkeypatch.setattr(config, "LOOKAHEAD_STATES", 1)
    reused = []
    plain_mask = loop_walk.LoopWalk.mask

    def counting_mask(self, state, alike=None):
        reused.append(alike is not None)
        return plain_mask(self, state, alike)

    monkeypatch.setattr(loop_walk.LoopWalk, "mask", counting_mask)
    vocabulary = load_vocabulary(tokenizer)
    for order in (1, -1):
        reused.clear()
        index = Index(r'\{"s":"([^"\\\x00-\x1f]|\\["\\nt]){0,40}","n":[0-9]{1,3}\}', vocabulary)
        states = list(range(1, index.num_states))[::order]
        masks = {state: index.mask(state) for state in states}
        for state in states:
            assert np.array_equal(masks[state], index._trie_walk.masks(np.array([state]))[0][0]), (order, state)
        assert sum(reused) >= 30, (order, sum(reused), len(reused))


def test_states_alike_are_found_by_scan_and_by_index_alike():
    # A partition's groups are scanned for its first few questions, then indexed: both must answer with
    # exactly the states of the group, the first time the group is asked (its members get the mask then).
    from conftest import load_vocabulary

    from outlines_core import sharing

    index = Index(r'\{"a":[0-9]{1,3},"b":"[a-c]{2,9}","ab":(true|false)\}', load_vocabulary("gpt-2"))
    for depth in (0, 1, 2, 7, 63):
        groups = index.dfa.indistinguishable_within(depth + 1)
        assert index._alike_within(depth).groups is groups
        assert depth > 2 or len(set(groups.tolist())) < index.num_states  # groups of several states
        for indexed in (False, True):
            alike = sharing.StateGroups(groups)
            if indexed:  # the next question indexes the groups
                alike.uses = sharing.INDEXED_PARTITION_USES
            asked = set()
            for state in [*range(index.num_states), *range(index.num_states)]:  # every group asked twice
                expected = [s for s in range(index.num_states) if groups[s] == groups[state]]
                members = alike.members_once(state)
                if len(expected) == 1 or int(groups[state]) in asked:
                    assert members is None, (depth, state)
                else:
                    assert sorted(members.tolist()) == expected, (depth, state)
                asked.add(int(groups[state]))
            assert not indexed or depth > 2 or alike.order is not None


@pytest.mark.parametrize(
    "pattern",
    [
        r"[a-zA-Z0-9._%+-]+@[a-zA-Z0-9-]+(\.[a-zA-Z0-9-]+)*\.[a-zA-Z]{2,}",
        r'\{"name":"([^"\\\x00-\x1f]|\\["\\nt])*","city":"[^"]{0,12}","tag":"[a-z]{1,8}"\}',
    ],
)
def test_the_constructor_builds_the_text_runs_its_first_visits_need(pattern, monkeypatch):
    """A new byte set's text run costs milliseconds (``Index._prepare_loop_walks``): the constructor builds
    those its lazy states' loop walks will ask for, so no first visit in a decode builds one."""
    from conftest import load_vocabulary

    from outlines_core import config, text_runs

    monkeypatch.setattr(config, "EAGER_INDEX_BUDGET_SECONDS", -1.0)
    vocabulary = load_vocabulary("llama-bpe")
    vocabulary.token_table._runs.clear()
    built = []
    plain = text_runs.build

    def recording(table, text_bytes, characters):
        built.append(bytes(np.flatnonzero(text_bytes).tolist()))
        return plain(table, text_bytes, characters)

    monkeypatch.setattr(text_runs, "build", recording)
    index = Index(pattern, vocabulary)
    assert built  # the start's loop walk or the preparation built some
    built.clear()
    for state in range(1, index.num_states):
        index.mask(state)
    assert built == []


@pytest.mark.parametrize(
    "pattern", [r"[a-zA-Z0-9._%+-]+@[a-z]+\.[a-z]{2,}", r'"([^"\\]|\\u[0-9a-f]{4})*"', r"\d{3}-\d{4}|é+"]
)
def test_the_live_byte_counts_read_over_byte_classes_are_the_byte_tables(pattern):
    """``_live_byte_counts`` and ``_live_bytes`` are read over byte classes (ten times fewer columns): they
    must be what the 256-column table says."""
    from conftest import load_vocabulary

    index = Index(pattern, load_vocabulary("gpt-2"))
    live = index.dfa.transitions != 0
    assert np.array_equal(index._live_byte_counts, live.sum(axis=1))
    assert np.array_equal(index._live_bytes, live[1:].any(axis=0))


@pytest.mark.parametrize(
    "pattern",
    [r"[A-Z][a-z ,]{10,60}\.", r'"([^"\\]|\\["\\nt]){0,3}"', r"[a-z0-9._%+-]+@[a-z0-9-]+\.[a-z]{2,}"],
)
def test_the_shortcuts_of_small_tables_give_what_the_general_paths_give(pattern, monkeypatch):
    """Small DFAs take two shortcuts: every state's majority move at once (``LoopWalk._all_majority_moves``,
    once 32 were asked one by one, without the C kernels) and the uncomputed classes' first states by a
    pass over a list; both give exactly what the one-by-one moves and ``np.unique`` give, and the C
    kernel's moves are the same."""
    from conftest import load_vocabulary

    from outlines_core import config, index as index_module, loop_walk

    monkeypatch.setattr(config, "EAGER_INDEX_BUDGET_SECONDS", -1.0)  # every class left uncomputed
    index = Index(pattern, load_vocabulary("gpt-2"))
    walker = index._loop_walker
    native = {state: walker._majority_move(state) for state in range(index.num_states)}
    assert walker._all_majorities_at_once()
    at_once = walker._all_majority_moves()
    walker._majority = {}
    monkeypatch.setattr(loop_walk, "kernels", None)
    monkeypatch.setattr(loop_walk, "_MAJORITY_AT_ONCE_ENTRIES", 0)
    one_by_one = {state: walker._majority_move(state) for state in range(index.num_states)}
    assert at_once == native == one_by_one  # test_the_c_trie_walk_is_built checks the kernels were built
    assert any(target != 0 for target, _ in at_once.values())
    by_list = index._uncomputed_representatives()
    monkeypatch.setattr(index_module, "_PYTHON_REPRESENTATIVES_STATES", -1)
    assert np.array_equal(by_list, index._uncomputed_representatives()) and len(by_list) > 1


def test_the_c_majority_moves_are_the_numpy_ones_past_64_classes(monkeypatch):
    """``_native.majority_moves`` on a JSON schema's DFA (over 64 byte classes: bit sets of two words) and on
    tables with ties, against the numpy weighted count; and its errors."""
    from outlines_core import loop_walk
    from outlines_core.native import kernels
    from outlines_core.regex import compile_dfa
    from outlines_core.types import json_schema_to_regex

    from conftest import load_vocabulary

    vocabulary = load_vocabulary("gpt-2")
    schema = {"type": "object", "properties": {"a": {"type": "string", "format": "email"}, "b": {"type": "string",
              "maxLength": 5}, "c": {"type": "string", "format": "date-time"}}, "required": ["a", "b", "c"]}
    # Every printable ASCII character as a literal of its own: each its own byte class.
    literal = "".join("\\" + char if not char.isalnum() else char for char in map(chr, range(33, 127)))
    dfa = compile_dfa(f"{json_schema_to_regex(schema)}|{literal}")
    assert dfa.class_transitions.shape[1] > 64
    native_walker = loop_walk.LoopWalk(dfa, vocabulary)
    native = [native_walker._majority_move(state) for state in range(dfa.num_states)]
    monkeypatch.setattr(loop_walk, "kernels", None)
    fallback_walker = loop_walk.LoopWalk(dfa, vocabulary)
    assert native == [fallback_walker._majority_move(state) for state in range(dfa.num_states)]
    # Ties go to the lowest target, as numpy's argmax of a weighted count; a dead row to (0, no classes).
    table = np.array([[0, 0, 0], [2, 1, 0], [2, 2, 1]], dtype=np.int32)
    targets, words = kernels.majority_moves(table, 3, np.array([1, 1, 1], dtype=np.int64))
    assert np.frombuffer(targets, dtype=np.int32).tolist() == [0, 1, 2]
    assert np.frombuffer(words, dtype=np.uint64).tolist() == [0, 0b010, 0b011]
    with pytest.raises(ValueError, match="one per class"):
        kernels.majority_moves(table, 3, np.ones(2, dtype=np.int64))
    with pytest.raises(ValueError, match="leads outside the states"):
        kernels.majority_moves(table + 1, 3, np.ones(3, dtype=np.int64))


@pytest.mark.parametrize(
    "pattern",
    [r"[^\x00-\x7f]{1,5}", r"(é|[α-ω])+x", r".{0,5}", r"[^a]*", r"[^\u00e9]+", r"[\x00-\xff]*",
     r'"([^"\\]|\\["\\nt]|\\u[0-9a-f]{4}){0,40}"'],
)
def test_the_c_character_targets_are_the_numpy_ones(pattern, monkeypatch):
    """``_native.character_targets``: where each state's multi-byte characters all lead (else the dead state),
    as ``loop_walk_numpy.character_targets`` finds it; and its errors."""
    from conftest import load_vocabulary

    from outlines_core import loop_walk
    from outlines_core.native import kernels
    from outlines_core.regex import compile_dfa

    dfa = compile_dfa(pattern)
    native = loop_walk.LoopWalk(dfa, load_vocabulary("gpt-2"))._character_target
    monkeypatch.setattr(loop_walk, "kernels", None)
    assert np.array_equal(native, loop_walk.LoopWalk(dfa, load_vocabulary("gpt-2"))._character_target)
    table = np.ascontiguousarray(dfa.class_transitions, dtype=np.int32)
    classes = np.ascontiguousarray(dfa.byte_classes, dtype=np.int32)
    with pytest.raises(ValueError, match="a state asked is not a state"):
        kernels.character_targets(table, table.shape[1], classes, np.array([dfa.num_states], dtype=np.int64))
    with pytest.raises(ValueError, match="256 classes"):
        kernels.character_targets(table, table.shape[1], classes[:10], np.array([1], dtype=np.int64))
