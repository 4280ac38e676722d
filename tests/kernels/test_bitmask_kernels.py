"""Bitmask kernels: numpy and torch agree with a bit-by-bit reference and with each other; layout is bit
t % 32 of word t // 32; non-multiple-of-32 vocabularies and logits wider than the bitmask are handled."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from outlines_core import Guide, Index, Vocabulary
from outlines_core.kernels import bitmask_width
from outlines_core.kernels import numpy as np_kernels
from outlines_core.kernels import torch as torch_kernels


def reference_allowed(bitmask: np.ndarray, width: int) -> np.ndarray:
    """Slow, obviously-correct unpacking: token t is allowed iff bit t % 32 of word t // 32 is set."""
    allowed = np.zeros((bitmask.shape[0], width), dtype=bool)
    for row in range(bitmask.shape[0]):
        for token in range(min(width, bitmask.shape[1] * 32)):
            word = int(bitmask[row, token // 32]) & 0xFFFFFFFF
            allowed[row, token] = bool((word >> (token % 32)) & 1)
    return allowed


def random_bitmask(rng, rows, words):
    return rng.integers(-(2**31), 2**31, size=(rows, words), dtype=np.int64).astype(np.int32)


@pytest.mark.parametrize("width", [1, 31, 32, 33, 63, 64, 65, 95, 96, 100, 130])
def test_numpy_and_torch_match_the_reference(width):
    rng = np.random.default_rng(width)
    bitmask = random_bitmask(rng, 3, bitmask_width(width))
    logits = rng.normal(size=(3, width)).astype(np.float32)
    expected = np.where(reference_allowed(bitmask, width), logits, -np.inf)

    numpy_logits = logits.copy()
    np_kernels.apply_token_bitmask_inplace(numpy_logits, bitmask)
    torch_logits = torch.from_numpy(logits.copy())
    torch_kernels.apply_token_bitmask_inplace(torch_logits, torch.from_numpy(bitmask.copy()))

    assert np.array_equal(numpy_logits, expected)
    assert np.array_equal(torch_logits.numpy(), expected)
    assert np.array_equal(np_kernels.apply_bitmask(logits, bitmask), expected)
    assert np.array_equal(torch_kernels.apply_bitmask(torch.from_numpy(logits), torch.from_numpy(bitmask)).numpy(), expected)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 4),
    width=st.integers(1, 200),
    extra_words=st.integers(0, 2),
    seed=st.integers(0, 2**32 - 1),
)
def test_numpy_and_torch_are_identical(rows, width, extra_words, seed):
    rng = np.random.default_rng(seed)
    bitmask = random_bitmask(rng, rows, max(1, bitmask_width(width) + extra_words - 1))
    logits = rng.normal(size=(rows, width)).astype(np.float32)
    numpy_result = np_kernels.apply_bitmask(logits, bitmask)
    torch_result = torch_kernels.apply_bitmask(torch.from_numpy(logits), torch.from_numpy(bitmask)).numpy()
    assert np.array_equal(numpy_result, torch_result)
    assert np.array_equal(np.isfinite(numpy_result), reference_allowed(bitmask, width))
    assert np.array_equal(np_kernels.allowed_matrix(bitmask, width), reference_allowed(bitmask, width))
    assert np.array_equal(torch_kernels.allowed_matrix(torch.from_numpy(bitmask), width).numpy(), reference_allowed(bitmask, width))


def test_single_bits_land_on_their_token():
    width = 70
    for token in range(width):
        bitmask = np.zeros((1, bitmask_width(width)), dtype=np.int32)
        bitmask[0, token // 32] = np.int32(np.uint32(1 << (token % 32)).view(np.int32))
        for result in (
            np_kernels.apply_bitmask(np.zeros((1, width), np.float32), bitmask),
            torch_kernels.apply_bitmask(torch.zeros(1, width), torch.from_numpy(bitmask)).numpy(),
        ):
            assert np.flatnonzero(np.isfinite(result[0])).tolist() == [token]


def test_logits_wider_than_the_bitmask_are_masked_beyond_it():
    bitmask = np.full((2, 1), -1, dtype=np.int32)  # 32 tokens allowed
    torch_logits = torch.zeros(2, 45)
    torch_kernels.apply_token_bitmask_inplace(torch_logits, torch.from_numpy(bitmask))
    numpy_logits = np.zeros((2, 45), dtype=np.float32)
    np_kernels.apply_token_bitmask_inplace(numpy_logits, bitmask)
    for result in (torch_logits.numpy(), numpy_logits):
        assert np.isneginf(result[:, 32:]).all() and np.isfinite(result[:, :32]).all()


def test_one_dimensional_logits_with_a_one_row_bitmask():
    bitmask = np.array([0b1010], dtype=np.int32)
    numpy_logits = np.zeros(8, dtype=np.float32)
    np_kernels.apply_token_bitmask_inplace(numpy_logits, bitmask)
    torch_logits = torch.zeros(8)
    torch_kernels.apply_token_bitmask_inplace(torch_logits, torch.from_numpy(bitmask))
    for result in (numpy_logits, torch_logits.numpy()):
        assert np.flatnonzero(np.isfinite(result)).tolist() == [1, 3]


def test_masking_keeps_allowed_values_and_dtype():
    bitmask = np.array([[0b110]], dtype=np.int32)
    logits = torch.tensor([[1.0, 2.0, 3.0, 4.0]], dtype=torch.bfloat16)
    masked = torch_kernels.apply_bitmask(logits, torch.from_numpy(bitmask))
    assert masked.dtype == torch.bfloat16
    assert masked.tolist() == [[float("-inf"), 2.0, 3.0, float("-inf")]]
    assert logits.tolist() == [[1.0, 2.0, 3.0, 4.0]]  # out of place really is out of place
    numpy_logits = np.array([[1, 2, 3, 4]], dtype=np.float16)
    assert np_kernels.apply_bitmask(numpy_logits, bitmask).dtype == np.float16


def test_allocate_has_every_bit_set():
    for kernels, as_numpy in ((np_kernels, np.asarray), (torch_kernels, lambda t: t.numpy())):
        bitmask = as_numpy(kernels.allocate_token_bitmask(3, 65))
        assert bitmask.shape == (3, 3) and bitmask.dtype == np.int32 and (bitmask == -1).all()
    assert torch_kernels.allocate_token_bitmask(1, 32).device.type == "cpu"


def test_fill_from_a_guide_writes_only_its_row_and_shares_memory():
    vocabulary = Vocabulary([b"a", b"b", b"ab", None] + [b"c"] * 33, [3])  # 37 tokens: 2 words
    guide = Guide(Index("ab?", vocabulary))
    expected = np.zeros(2, dtype=np.int32)
    guide.fill_bitmask(expected)
    assert int(expected[0]) == 0b101 and int(expected[1]) == 0  # "a" and "ab"
    for kernels, as_numpy in ((np_kernels, np.asarray), (torch_kernels, lambda t: t.numpy())):
        bitmask = kernels.allocate_token_bitmask(3, vocabulary.size)
        kernels.fill_next_token_bitmask(guide, bitmask, index=1)
        view = as_numpy(bitmask)  # torch: a view of the tensor's memory, so this also checks zero-copy fill
        assert np.array_equal(view[1], expected)
        assert (view[[0, 2]] == -1).all()


def test_torch_mask_follows_the_logits_device():
    bitmask = torch.tensor([[0b11]], dtype=torch.int32)
    logits = torch.zeros(1, 4, device="meta")
    allowed = torch_kernels.allowed_matrix(bitmask, 4, device=logits.device)
    assert allowed.device.type == "meta"


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="expected torch.int32"):
        torch_kernels.apply_token_bitmask_inplace(torch.zeros(1, 4), torch.zeros(1, 1, dtype=torch.int64))
    with pytest.raises(ValueError, match="expected int32"):
        np_kernels.apply_token_bitmask_inplace(np.zeros((1, 4), np.float32), np.zeros((1, 1), np.int64))
    with pytest.raises(ValueError, match="2 rows but the bitmask has 1"):
        np_kernels.apply_token_bitmask_inplace(np.zeros((2, 4), np.float32), np.zeros((1, 1), np.int32))
    with pytest.raises(ValueError, match="2 rows but the bitmask has 1"):
        torch_kernels.apply_token_bitmask_inplace(torch.zeros(2, 4), torch.zeros(1, 1, dtype=torch.int32))
    with pytest.raises(ValueError, match="floating-point"):
        torch_kernels.apply_token_bitmask_inplace(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 1, dtype=torch.int32))
    with pytest.raises(ValueError, match="floating-point"):
        np_kernels.apply_token_bitmask_inplace(np.zeros((1, 4), np.int64), np.zeros((1, 1), np.int32))
    with pytest.raises(ValueError, match="numpy array"):
        np_kernels.apply_token_bitmask_inplace(np.zeros((1, 4), np.float32), torch.zeros(1, 1, dtype=torch.int32))
    with pytest.raises(ValueError, match="torch tensor"):
        torch_kernels.apply_token_bitmask_inplace(torch.zeros(1, 4), np.zeros((1, 1), np.int32))
    with pytest.raises(ValueError, match="batch, vocab"):
        np_kernels.apply_token_bitmask_inplace(np.zeros((1, 1, 4), np.float32), np.zeros((1, 1), np.int32))
    with pytest.raises(ValueError, match="1-D or 2-D"):
        torch_kernels.apply_token_bitmask_inplace(torch.zeros(1, 4), torch.zeros(1, 1, 1, dtype=torch.int32))
    with pytest.raises(ValueError, match="vocab_size"):
        np_kernels.allocate_token_bitmask(1, 0)
    with pytest.raises(ValueError, match="batch_size"):
        torch_kernels.allocate_token_bitmask(0, 10)
    with pytest.raises(IndexError, match="row 2"):
        np_kernels.fill_next_token_bitmask(None, np_kernels.allocate_token_bitmask(2, 10), index=2)
    with pytest.raises(IndexError, match="row 5"):
        torch_kernels.fill_next_token_bitmask(None, torch_kernels.allocate_token_bitmask(2, 10), index=5)
