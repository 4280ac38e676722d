"""Bitmask kernels: numpy and torch agree, the layout is bit t % 32 of word t // 32, widths are handled."""

import numpy as np
import pytest
import torch

from outlines_core import Guide, Index, Vocabulary
from outlines_core.kernels import numpy as np_kernels
from outlines_core.kernels import torch as torch_kernels


def reference_mask(bitmask: np.ndarray, width: int) -> np.ndarray:
    """Slow, obviously-correct unpacking of one row per token."""
    allowed = np.zeros((bitmask.shape[0], width), dtype=bool)
    for row in range(bitmask.shape[0]):
        for token in range(min(width, bitmask.shape[1] * 32)):
            allowed[row, token] = (int(bitmask[row, token // 32]) >> (token % 32)) & 1
    return allowed


@pytest.mark.parametrize("width", [1, 31, 32, 33, 70, 100])
def test_numpy_and_torch_apply_match_the_reference(width):
    rng = np.random.default_rng(width)
    words = (70 + 31) // 32
    bitmask = rng.integers(-(2**31), 2**31 - 1, size=(3, words), dtype=np.int64).astype(np.int32)
    logits = rng.normal(size=(3, width)).astype(np.float32)
    expected = np.where(reference_mask(bitmask, width), logits, -np.inf)
    numpy_logits = logits.copy()
    np_kernels.apply_token_bitmask_inplace(numpy_logits, bitmask)
    torch_logits = torch.from_numpy(logits.copy())
    torch_kernels.apply_token_bitmask_inplace(torch_logits, torch.from_numpy(bitmask))
    assert np.array_equal(numpy_logits, expected)
    assert np.array_equal(torch_logits.numpy(), expected)
    assert np.array_equal(np_kernels.apply_bitmask(logits, bitmask), expected)


def test_logits_wider_than_the_bitmask_are_masked_beyond_it():
    bitmask = np.full((1, 1), -1, dtype=np.int32)  # 32 tokens allowed
    logits = torch.zeros(1, 40)
    torch_kernels.apply_token_bitmask_inplace(logits, torch.from_numpy(bitmask))
    assert torch.isinf(logits[0, 32:]).all() and not torch.isinf(logits[0, :32]).any()


def test_fill_from_a_guide_and_allocate():
    vocabulary = Vocabulary([b"a", b"b", b"ab", None], [3])
    guide = Guide(Index("ab?", vocabulary))
    for kernels, to_numpy in ((np_kernels, lambda x: x), (torch_kernels, lambda x: x.numpy())):
        bitmask = kernels.allocate_token_bitmask(2, 4)
        assert to_numpy(bitmask).shape == (2, 1) and (to_numpy(bitmask) == -1).all()
        kernels.fill_next_token_bitmask(guide, bitmask, index=1)
        assert int(to_numpy(bitmask)[1, 0]) == 0b101  # "a" and "ab"
        assert int(to_numpy(bitmask)[0, 0]) == -1


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="expected torch.int32"):
        torch_kernels.apply_token_bitmask_inplace(torch.zeros(1, 4), torch.zeros(1, 1, dtype=torch.int64))
    with pytest.raises(ValueError, match="expected int32"):
        np_kernels.apply_token_bitmask_inplace(np.zeros((1, 4), np.float32), np.zeros((1, 1), np.int64))
    with pytest.raises(ValueError, match="rows"):
        np_kernels.apply_token_bitmask_inplace(np.zeros((2, 4), np.float32), np.zeros((1, 1), np.int32))
    with pytest.raises(ValueError, match="floating-point"):
        torch_kernels.apply_token_bitmask_inplace(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 1, dtype=torch.int32))
