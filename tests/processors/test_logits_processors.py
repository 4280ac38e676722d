"""Batched processors with real Guides: each row follows its own constraint (or none), numpy and torch alike,
on a handmade vocabulary and on the five real tokenizers."""

import re

import numpy as np
import pytest
import torch

from outlines_core import Guide, Index, Vocabulary
from outlines_core.errors import TokenNotAllowedError
from outlines_core.processors import (
    GuidedLogitsProcessor,
    NumpyLogitsProcessor,
    TorchLogitsProcessor,
    apply_bitmask,
)

TOKENS = [b"1", b"2", b"a", b"b", b".", None]
EOS = 5


@pytest.fixture
def small_vocabulary():
    return Vocabulary(TOKENS, [EOS])


def make_processor(library, constraints):
    return NumpyLogitsProcessor(constraints) if library == "numpy" else TorchLogitsProcessor(constraints)


def as_numpy(logits):
    return logits.numpy() if isinstance(logits, torch.Tensor) else logits


def random_logits(rng, rows, width, library):
    logits = rng.normal(size=(rows, width)).astype(np.float32)
    return torch.from_numpy(logits) if library == "torch" else logits


def run_random_walk(processor, vocabulary, width, library, seed, steps=60, free_rows=()):
    """Sample from random logits through the processor until every constrained row has emitted EOS; return
    each row's generated token ids (EOS excluded)."""
    rng = np.random.default_rng(seed)
    outputs = [[] for _ in range(processor.batch_size)]
    ended = [False] * processor.batch_size
    for _ in range(steps):
        masked = as_numpy(processor.process_logits(random_logits(rng, processor.batch_size, width, library)))
        probabilities = np.exp(masked - masked.max(axis=1, keepdims=True))
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        tokens = [int(rng.choice(width, p=p)) for p in probabilities]
        for row, token in enumerate(tokens):
            guide = processor.guides[row]
            if guide is not None and not guide.is_finished():
                assert token in guide.allowed_tokens().tolist()  # the mask and the guide agree
            if not ended[row]:
                if token in vocabulary.eos_token_ids:
                    ended[row] = True
                else:
                    outputs[row].append(token)
        processor.advance(tokens)
        if all(ended[row] for row in range(processor.batch_size) if row not in free_rows):
            break
    return outputs, ended


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize("seed", range(5))
def test_rows_follow_different_constraints(small_vocabulary, library, seed):
    patterns = [r"[12]{2,3}", r"(ab)+\.", r"a|b1"]
    processor = make_processor(library, [Index(p, small_vocabulary) for p in patterns] + [None])
    outputs, ended = run_random_walk(processor, small_vocabulary, len(TOKENS), library, seed, free_rows=(3,))
    assert ended[:3] == [True, True, True]
    for pattern, tokens in zip(patterns, outputs):
        assert re.fullmatch(pattern, small_vocabulary.decode(tokens).decode()), (pattern, tokens)
    assert processor.is_finished() == [True, True, True, False]


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_unconstrained_row_is_left_untouched(small_vocabulary, library):
    processor = make_processor(library, [None, Index("a", small_vocabulary)])
    logits = random_logits(np.random.default_rng(0), 2, len(TOKENS), library)
    original = as_numpy(logits).copy()
    masked = as_numpy(processor.process_logits(logits))
    assert np.array_equal(masked[0], original[0])
    assert np.isfinite(masked[1]).nonzero()[0].tolist() == [2]
    assert masked[1, 2] == original[1, 2]


def test_only_unconstrained_rows_is_a_no_op(small_vocabulary):
    processor = GuidedLogitsProcessor([None, None], tensor_library="numpy")
    logits = np.ones((2, 6), dtype=np.float32)
    assert processor.process_logits(logits) is logits and (logits == 1).all()
    processor.advance([0, 1])


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_finished_rows_only_allow_eos_and_ignore_padding(small_vocabulary, library):
    processor = make_processor(library, [Index("a", small_vocabulary), Index("ab", small_vocabulary)])
    zeros = lambda: random_logits(np.random.default_rng(1), 2, 6, library) * 0  # noqa: E731
    processor.process_logits(zeros())
    processor.advance([2, 2])  # row 0 complete with "a" and nothing can extend it: finished
    masked = as_numpy(processor.process_logits(zeros()))
    assert np.isfinite(masked[0]).nonzero()[0].tolist() == [EOS]
    assert np.isfinite(masked[1]).nonzero()[0].tolist() == [3]
    processor.advance([0, 3])  # padding fed to a finished row is ignored
    assert processor.is_finished() == [True, True]
    masked = as_numpy(processor.process_logits(zeros()))
    assert np.isfinite(masked).nonzero()[1].tolist() == [EOS, EOS]
    processor.advance([EOS, EOS])
    assert processor.guides[0].is_finished() and processor.guides[1].is_finished()


def test_a_disallowed_token_names_the_row(small_vocabulary):
    processor = NumpyLogitsProcessor([None, Index("ab", small_vocabulary)])
    processor.process_logits(np.zeros((2, 6), dtype=np.float32))
    with pytest.raises(TokenNotAllowedError, match="batch row 1"):
        processor.advance([0, 0])


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_a_rejected_batch_step_moves_no_row(small_vocabulary, library):
    # Row 1 rejects its token: row 0, which accepted its own, must not have moved (a retry would move it twice).
    processor = make_processor(library, [Index("12", small_vocabulary), Index("[ab]+", small_vocabulary)])
    processor.advance([0, 2])
    states = [guide.state for guide in processor.guides]
    with pytest.raises(TokenNotAllowedError, match="batch row 1"):
        processor.advance([1, 0])
    assert [guide.state for guide in processor.guides] == states
    processor.advance([1, 3])  # the step again with row 1's token changed: row 0 takes its "2" once
    assert [guide.is_accepting() for guide in processor.guides] == [True, True]


def test_logits_wider_than_the_vocabulary_mask_the_extra_ids(small_vocabulary):
    # Models often pad their logits beyond the tokenizer (e.g. Qwen2): those ids are never allowed.
    processor = TorchLogitsProcessor([Index("[ab]", small_vocabulary), None])
    logits = torch.zeros(2, 100)
    processor.process_logits(logits)
    assert torch.isfinite(logits[0]).nonzero().reshape(-1).tolist() == [2, 3]
    assert torch.isfinite(logits[1]).all()


def test_logits_narrower_than_the_vocabulary_are_refused(small_vocabulary):
    processor = NumpyLogitsProcessor([Index("a", small_vocabulary)])
    with pytest.raises(ValueError, match="build the Vocabulary with size=4"):
        processor.process_logits(np.zeros((1, 4), dtype=np.float32))


def test_shape_errors(small_vocabulary):
    processor = NumpyLogitsProcessor([Index("a", small_vocabulary)])
    with pytest.raises(ValueError, match="2 rows but the processor has 1"):
        processor.process_logits(np.zeros((2, 6), dtype=np.float32))
    with pytest.raises(ValueError, match="2-D"):
        processor.process_logits(np.zeros(6, dtype=np.float32))
    with pytest.raises(ValueError, match="2 tokens for a batch of 1"):
        processor.advance([1, 2])
    with pytest.raises(TypeError, match="row 1"):
        NumpyLogitsProcessor([None, "a"])
    with pytest.raises(TypeError, match="one Guide, Index or None per batch row"):
        NumpyLogitsProcessor(Index("a", small_vocabulary))
    with pytest.raises(ValueError, match="at least one row"):
        NumpyLogitsProcessor([])
    with pytest.raises(ValueError, match="tensor_library"):
        GuidedLogitsProcessor([None], tensor_library="jax")


def test_reset_returns_to_the_given_guides(small_vocabulary):
    guide = Guide(Index("ab", small_vocabulary))
    guide.advance(2)
    processor = NumpyLogitsProcessor([guide])
    processor.process_logits(np.zeros((1, 6), dtype=np.float32))
    processor.advance([3])
    assert processor.is_finished() == [True]
    processor.reset()
    assert processor.guides[0].allowed_tokens().tolist() == [3]  # back to "a" consumed, as given
    assert guide.is_finished()  # the caller's guide was driven in place (it can be inspected)
    assert processor.guides[0] is not guide


def test_apply_bitmask_for_custom_loops(small_vocabulary):
    guide = Guide(Index("[ab]", small_vocabulary))
    row = np.zeros((1, 1), dtype=np.int32)
    guide.fill_bitmask(row[0])
    masked = apply_bitmask(torch.zeros(1, 6), torch.from_numpy(row))
    assert torch.isfinite(masked).nonzero()[:, 1].tolist() == [2, 3]
    masked = apply_bitmask(np.zeros((1, 6), np.float32), row)
    assert np.isfinite(masked).nonzero()[1].tolist() == [2, 3]


REAL_PATTERNS = [
    r"((25[0-5]|2[0-4]\d|[01]?\d\d?)\.){3}(25[0-5]|2[0-4]\d|[01]?\d\d?)",
    r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])",
    r"(日本|東京|大阪)(、(日本|東京|大阪)){0,2}",
    r"(true|false)",
]


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_real_vocabularies_batch_of_different_regexes(vocabulary, library):
    """A random 'model' over a real tokenizer: every row ends, and each row's bytes fullmatch its regex."""
    processor = make_processor(library, [Index(p, vocabulary) for p in REAL_PATTERNS] + [None])
    outputs, ended = run_random_walk(processor, vocabulary, vocabulary.size, library, seed=0, steps=80, free_rows=(4,))
    assert ended[:4] == [True] * 4
    for pattern, tokens in zip(REAL_PATTERNS, outputs):
        text = vocabulary.decode(tokens).decode("utf-8")
        assert re.fullmatch(pattern, text), (pattern, text)


def test_real_vocabulary_bitmask_matches_allowed_tokens(vocabulary):
    index = Index(REAL_PATTERNS[1], vocabulary)
    processor = TorchLogitsProcessor([index, None])
    bitmask = processor.fill_bitmask(vocabulary.size).numpy()
    allowed = np.flatnonzero(np.unpackbits(bitmask[0].view(np.uint8), bitorder="little")[: vocabulary.size])
    assert allowed.tolist() == Guide(index).allowed_tokens().tolist()
    assert (bitmask[1] == -1).all()
