"""Bitmask kernels for numpy arrays (see ``outlines_core.kernels``)."""

from __future__ import annotations

import numpy as np

from . import bitmask_width


def allocate_token_bitmask(batch_size: int, vocab_size: int) -> np.ndarray:
    """An int32 bitmask of shape ``(batch_size, ceil(vocab_size / 32))`` with every token allowed."""
    return np.full((batch_size, bitmask_width(vocab_size)), -1, dtype=np.int32)


def fill_next_token_bitmask(guide, bitmask: np.ndarray, index: int = 0) -> None:
    """Write ``guide``'s allowed tokens into row ``index`` of ``bitmask``."""
    _check_bitmask(bitmask)
    guide.fill_bitmask(bitmask[index])


def allowed_matrix(bitmask: np.ndarray, width: int) -> np.ndarray:
    """Bool matrix ``(batch, width)``: True where the bitmask allows the token; columns beyond the
    bitmask's ``32 * words`` are False."""
    _check_bitmask(bitmask)
    bits = np.unpackbits(bitmask.astype("<i4", copy=False).view(np.uint8), axis=1, bitorder="little")
    if bits.shape[1] >= width:
        return bits[:, :width].astype(bool)
    padded = np.zeros((bitmask.shape[0], width), dtype=bool)
    padded[:, : bits.shape[1]] = bits
    return padded


def apply_token_bitmask_inplace(logits: np.ndarray, bitmask: np.ndarray) -> None:
    """Set the logits of disallowed tokens to -inf, in place. ``logits`` is ``(batch, vocab)`` or ``(vocab,)``
    (with a one-row bitmask)."""
    if not isinstance(logits, np.ndarray) or not np.issubdtype(logits.dtype, np.floating):
        raise ValueError(f"logits must be a floating-point numpy array, got {getattr(logits, 'dtype', type(logits))}")
    view = logits if logits.ndim == 2 else logits.reshape(1, -1)
    if bitmask.ndim == 1:
        bitmask = bitmask.reshape(1, -1)
    if view.shape[0] != bitmask.shape[0]:
        raise ValueError(f"logits have {view.shape[0]} rows but the bitmask has {bitmask.shape[0]}")
    view[~allowed_matrix(bitmask, view.shape[1])] = -np.inf


def apply_bitmask(logits: np.ndarray, bitmask: np.ndarray) -> np.ndarray:
    """Out-of-place form of ``apply_token_bitmask_inplace``."""
    result = np.array(logits, copy=True)
    apply_token_bitmask_inplace(result, bitmask)
    return result


def _check_bitmask(bitmask: np.ndarray) -> None:
    if not isinstance(bitmask, np.ndarray):
        raise ValueError(f"bitmask must be a numpy array, got {type(bitmask).__name__}")
    if bitmask.dtype != np.int32:
        raise ValueError(f"invalid bitmask dtype: expected int32, got {bitmask.dtype}")
    if bitmask.ndim not in (1, 2):
        raise ValueError(f"bitmask must be 1-D or 2-D, got shape {bitmask.shape}")
