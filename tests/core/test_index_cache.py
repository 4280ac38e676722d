"""The on-disk index cache: what a second process loads equals what the first one built."""

import multiprocessing
import os
import zlib
from pathlib import Path

import numpy as np
import pytest

from conftest import load_vocabulary
from outlines_core import Guide, Index, Vocabulary, index_cache
from outlines_core.regex import compile_dfa

# id: 0    1     2     3      4      5       6      7     8     9 (EOS)
TOKENS = [b"1", b"2", b"12", b"3", b".", b"1.2", b"a", b"-", b"ab", None]
EOS = 9
PATTERN = r"-?[0-9]+(\.[0-9]+)?|a+b?"


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("OUTLINES_CORE_CACHE_DIR", str(tmp_path / "indexes"))
    monkeypatch.delenv("OUTLINES_CORE_DISABLE_CACHE", raising=False)
    return tmp_path / "indexes"


def small_vocabulary() -> Vocabulary:
    return Vocabulary(TOKENS, [EOS], size=40)


def assert_same_index(built: Index, loaded: Index) -> None:
    """Every state's mask and every allowed token's transition agree."""
    assert loaded.num_states == built.num_states
    assert loaded.initial_state == built.initial_state
    np.testing.assert_array_equal(loaded.dfa.transitions, built.dfa.transitions)
    np.testing.assert_array_equal(loaded.dfa.accepting, built.dfa.accepting)
    for state in range(1, built.num_states):
        np.testing.assert_array_equal(loaded.mask(state), built.mask(state))
        assert loaded.is_accepting(state) == built.is_accepting(state)
        assert loaded.is_final(state) == built.is_final(state)
        for token in built.allowed_tokens(state).tolist():
            assert loaded.next_state(state, token) == built.next_state(state, token)


def test_roundtrip_small_vocabulary(folder):
    vocabulary = small_vocabulary()
    built = Index.cached(PATTERN, vocabulary)  # miss: builds and writes the entry
    path = index_cache.entry_path(PATTERN, vocabulary)
    assert path.parent == folder and path.exists()
    loaded = index_cache.load(PATTERN, vocabulary)
    assert loaded is not None and loaded is not built
    assert_same_index(Index(PATTERN, vocabulary), loaded)
    assert Index.cached(PATTERN, vocabulary).pattern == PATTERN  # hit


def test_roundtrip_real_tokenizer_with_lazy_states(folder):
    """On a 50k vocabulary, a lazily indexed regex: the entry holds the masks computed so far, the
    loaded index computes the others on first visit, and a walk gives the same masks either way."""
    vocabulary = load_vocabulary("gpt-2")
    pattern = r"[A-Z][a-z ,]{10,60}\.|\{\"name\":\"[a-z]{1,20}\",\"age\":[0-9]{1,3}\}"
    built = Index(pattern, vocabulary)
    index_cache.save(built)
    loaded = index_cache.load(pattern, vocabulary)
    assert loaded is not None
    assert set(loaded.computed_class_masks) == set(built.computed_class_masks)
    fresh = Index(pattern, vocabulary)
    assert_same_index(fresh, loaded)
    guide_loaded, guide_fresh = Guide(loaded), Guide(fresh)
    for token in vocabulary_encode(vocabulary, b'{"name":"ada","age":36}'):
        np.testing.assert_array_equal(loaded.mask(guide_loaded.state), fresh.mask(guide_fresh.state))
        guide_loaded.advance(token)
        guide_fresh.advance(token)
    assert guide_loaded.is_accepting() and guide_fresh.is_accepting()


def test_a_loaded_index_has_the_refinement_partitions_and_never_refines_again(folder, monkeypatch):
    """The partitions its first walks ask for (``Dfa.indistinguishable_within``) come from the entry: a
    loaded index that refined its DFA again would pay for it on its first visit (6 ms on nested-8)."""
    from outlines_core.regex import dfa as dfa_module

    vocabulary = load_vocabulary("gpt-2")
    pattern = r'\{"s":"[^"\\]{0,30}","n":[0-9]{1,3}\}'
    built = Index(pattern, vocabulary)
    index_cache.save(built)

    def no_refinement(*args, **kwargs):
        raise AssertionError("a loaded index refined its DFA")

    monkeypatch.setattr(dfa_module, "_refine", no_refinement)
    loaded = index_cache.load(pattern, vocabulary)
    assert loaded is not None
    for depth in (0, 1, 5, 16, 24, 100, 10**6):
        np.testing.assert_array_equal(
            loaded.dfa.indistinguishable_within(depth), built.dfa.indistinguishable_within(depth)
        )
    assert_same_index(built, loaded)  # every first visit of the loaded index, with no refinement


def vocabulary_encode(vocabulary: Vocabulary, text: bytes) -> list[int]:
    """Greedy longest-match tokenization over the vocabulary's own bytes (any valid split will do)."""
    by_bytes = {}
    for token_id, token in enumerate(vocabulary.tokens):
        if token is not None:
            by_bytes.setdefault(token, token_id)
    ids, position = [], 0
    while position < len(text):
        for end in range(len(text), position, -1):
            if text[position:end] in by_bytes:
                ids.append(by_bytes[text[position:end]])
                position = end
                break
        else:
            raise AssertionError(f"no token for {text[position:]!r}")
    return ids


@pytest.mark.parametrize(
    "damage",
    [
        lambda path: path.write_bytes(b"not an entry at all"),
        lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]),  # a truncated write
        lambda path: path.write_bytes(b""),
    ],
    ids=["garbage", "truncated", "empty"],
)
def test_corrupted_entry_is_rebuilt(folder, damage):
    vocabulary = small_vocabulary()
    Index.cached(PATTERN, vocabulary)
    path = index_cache.entry_path(PATTERN, vocabulary)
    damage(path)
    assert index_cache.load(PATTERN, vocabulary) is None
    rebuilt = Index.cached(PATTERN, vocabulary)
    assert_same_index(Index(PATTERN, vocabulary), rebuilt)
    reloaded = index_cache.load(PATTERN, vocabulary)  # the damaged file was replaced by a good one
    assert reloaded is not None
    assert_same_index(rebuilt, reloaded)


def test_entry_of_another_pattern_under_the_same_name_is_refused(folder):
    """A file whose stored key does not match (e.g. a hash collision or a renamed file) is a miss."""
    vocabulary = small_vocabulary()
    Index.cached(r"[0-9]+", vocabulary)
    os.replace(index_cache.entry_path(r"[0-9]+", vocabulary), index_cache.entry_path(PATTERN, vocabulary))
    assert index_cache.load(PATTERN, vocabulary) is None


def test_different_vocabulary_misses(folder):
    vocabulary = small_vocabulary()
    Index.cached(PATTERN, vocabulary)
    other = Vocabulary([*TOKENS[:8], b"abc", None], [EOS], size=40)  # one token differs
    assert other.fingerprint != vocabulary.fingerprint
    assert index_cache.entry_path(PATTERN, other) != index_cache.entry_path(PATTERN, vocabulary)
    assert index_cache.load(PATTERN, other) is None
    wider = Vocabulary(TOKENS, [EOS], size=72)  # same tokens, wider logits
    assert index_cache.load(PATTERN, wider) is None
    assert Index.cached(PATTERN, other).allowed_tokens(Index(PATTERN, other).initial_state).tolist() == (
        Index(PATTERN, other).allowed_tokens(Index(PATTERN, other).initial_state).tolist()
    )


def test_disabled_cache_writes_nothing(folder, monkeypatch):
    monkeypatch.setenv("OUTLINES_CORE_DISABLE_CACHE", "1")
    index = Index.cached(PATTERN, small_vocabulary())
    assert index.allowed_tokens(index.initial_state).size > 0
    assert not folder.exists() or not any(folder.iterdir())


def test_unwritable_folder_still_builds(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("the cache folder cannot be created under a file")
    monkeypatch.setenv("OUTLINES_CORE_CACHE_DIR", str(blocker / "indexes"))
    monkeypatch.delenv("OUTLINES_CORE_DISABLE_CACHE", raising=False)
    index = Index.cached(PATTERN, small_vocabulary())
    assert_same_index(Index(PATTERN, small_vocabulary()), index)


def _writer(folder: str, rounds: int) -> None:
    vocabulary = small_vocabulary()
    for _ in range(rounds):
        compile_dfa.cache_clear()
        index_cache.save(Index(PATTERN, vocabulary), Path(folder))


def test_concurrent_writers_and_readers(folder):
    """Four processes rewrite the same entry while this one reads it: every read is a complete entry
    (equal to a fresh build) or, before the first write lands, a miss; no temporary file is left."""
    vocabulary = small_vocabulary()
    expected = Index(PATTERN, vocabulary)
    context = multiprocessing.get_context("spawn" if os.name == "nt" else "fork")
    writers = [context.Process(target=_writer, args=(str(folder), 25)) for _ in range(4)]
    for writer in writers:
        writer.start()
    hits = 0
    while any(writer.is_alive() for writer in writers):
        loaded = index_cache.load(PATTERN, vocabulary, folder)
        if loaded is not None:
            hits += 1
            np.testing.assert_array_equal(loaded.mask(loaded.initial_state), expected.mask(expected.initial_state))
    for writer in writers:
        writer.join()
        assert writer.exitcode == 0
    final = index_cache.load(PATTERN, vocabulary, folder)
    assert final is not None
    assert_same_index(expected, final)
    assert [p.name for p in folder.iterdir()] == [index_cache.entry_path(PATTERN, vocabulary).name]


def test_prune_keeps_the_newest_entries(folder, monkeypatch):
    monkeypatch.setattr(index_cache, "MAX_ENTRIES", 3)
    vocabulary = small_vocabulary()
    patterns = [f"[0-9]{{{n}}}" for n in range(1, 7)]
    for age, pattern in enumerate(patterns):
        path = index_cache.save(Index(pattern, vocabulary))
        os.utime(path, (1_000_000 + age, 1_000_000 + age))  # distinct, increasing write times
    index_cache._prune(folder)
    survivors = {p.name for p in folder.iterdir()}
    assert survivors == {index_cache.entry_path(p, vocabulary).name for p in patterns[-3:]}


def test_prune_drops_entries_of_the_zip_format(folder):
    """Earlier versions wrote ``np.savez`` files, never read again: the next write removes them."""
    vocabulary = small_vocabulary()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ("0" * 40 + ".npz")).write_bytes(b"PK")
    path = index_cache.save(Index(PATTERN, vocabulary))
    assert [p.name for p in folder.iterdir()] == [path.name]


def test_an_entry_stores_each_distinct_mask_once(folder):
    """Many classes share a mask (the keys of an object with repeated fields): the file holds each
    distinct mask once, and the loaded index shares them the same way."""
    vocabulary = load_vocabulary("gpt-2")
    pattern = r"\{" + ",".join(f'"field_{i:02d}":[0-9]{{1,3}}' for i in range(12)) + r"\}"
    built = Index.cached(pattern, vocabulary)
    _, data = index_cache._read_entry(index_cache.entry_path(pattern, vocabulary))
    stored, classes = data["masks"].shape[0], data["classes"].shape[0]
    assert stored == built.num_unique_masks < classes
    loaded = index_cache.load(pattern, vocabulary)
    assert loaded.num_unique_masks == stored
    assert_same_index(built, loaded)


def test_entries_whose_header_does_not_fit_their_arrays_are_rebuilt(folder):
    """A header naming arrays past the file's end, of negative shapes or of Python objects, or arrays that
    do not fit the DFA, is a miss like a damaged file."""
    import json
    import struct

    vocabulary = small_vocabulary()
    Index.cached(PATTERN, vocabulary)
    path = index_cache.entry_path(PATTERN, vocabulary)
    good = path.read_bytes()
    magic = index_cache._MAGIC
    length, _ = struct.unpack_from("<QI", good, len(magic))
    meta = json.loads(good[len(magic) + 12 : len(magic) + 12 + length])
    body = good[len(magic) + 12 + length :]

    def rewritten(change) -> bytes:  # a new header with its checksum right: the structure checks must catch it
        edited = json.loads(json.dumps(meta))
        change(edited)
        header = json.dumps(edited).encode()
        return magic + struct.pack("<QI", len(header), zlib.crc32(header + body)) + header + body

    def past_the_end(edited):
        edited["arrays"][-1][3] += len(body)

    def negative_shape(edited):
        edited["arrays"][0][2] = [-1, 256]

    def objects(edited):
        edited["arrays"][0][1] = "|O"

    def swapped(edited):  # the mask classes read as the transitions
        names = [spec[0] for spec in edited["arrays"]]
        a, b = names.index("transitions"), names.index("mask_class")
        edited["arrays"][a][0], edited["arrays"][b][0] = "mask_class", "transitions"

    def start_out_of_range(edited):
        edited["start"] = 10**6

    for change in (past_the_end, negative_shape, objects, swapped, start_out_of_range):
        path.write_bytes(rewritten(change))
        assert index_cache.load(PATTERN, vocabulary) is None, change.__name__
    path.write_bytes(rewritten(lambda edited: None))
    assert_same_index(Index(PATTERN, vocabulary), index_cache.load(PATTERN, vocabulary))


def test_a_flipped_bit_anywhere_in_an_entry_is_caught(folder):
    # A mask bit flipped on disk would let a token through that the DFA refuses: the checksum catches it.
    vocabulary = small_vocabulary()
    Index.cached(PATTERN, vocabulary)
    path = index_cache.entry_path(PATTERN, vocabulary)
    good = path.read_bytes()
    for position in (len(good) - 1, len(good) // 2, len(index_cache._MAGIC) + 14):
        damaged = bytearray(good)
        damaged[position] ^= 0x04
        path.write_bytes(bytes(damaged))
        assert index_cache.load(PATTERN, vocabulary) is None, position
    path.write_bytes(good)
    assert index_cache.load(PATTERN, vocabulary) is not None


def test_a_loaded_lazy_index_still_refuses_a_dead_end_on_its_first_visit(folder, monkeypatch):
    from outlines_core import Guide, config
    from outlines_core.errors import IncompatibleVocabularyError

    # Every single byte but "b", and "ab": after the token "a", the output needs a lone "b".
    tokens = [bytes([byte]) for byte in range(256) if byte != ord("b")] + [b"ab"]
    vocabulary = Vocabulary(tokens + [None], eos_token_ids=[len(tokens)])
    pattern = r"x{0,60}(ab|c)[a-z]{0,60}"
    monkeypatch.setattr(config, "EAGER_INDEX_BUDGET_SECONDS", 0.0)  # states left to their first visits
    index_cache.save(Index(pattern, vocabulary))
    for index in (Index(pattern, vocabulary), index_cache.load(pattern, vocabulary)):
        guide = Guide(index)
        guide.advance(tokens.index(b"a"))
        with pytest.raises(IncompatibleVocabularyError):
            guide.allowed_tokens()
