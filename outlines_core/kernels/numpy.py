"""Bitmask kernels for numpy arrays (see ``outlines_core.kernels`` for the layout)."""

from __future__ import annotations

import numpy as np

from . import bitmask_width

__all__ = [
    "allocate_token_bitmask",
    "allowed_matrix",
    "apply_bitmask",
    "apply_token_bitmask_inplace",
    "fill_next_token_bitmask",
]


def allocate_token_bitmask(batch_size: int, vocab_size: int) -> np.ndarray:
    """An int32 bitmask of shape ``(batch_size, ceil(vocab_size / 32))`` with every token allowed."""
    if int(batch_size) != batch_size or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return np.full((int(batch_size), bitmask_width(vocab_size)), -1, dtype=np.int32)


def fill_next_token_bitmask(guide, bitmask: np.ndarray, index: int = 0) -> None:
    """Write ``guide``'s allowed tokens into row ``index`` of ``bitmask`` (2-D int32)."""
    _check_bitmask(bitmask)
    if bitmask.ndim != 2:
        raise ValueError(f"bitmask must be 2-D (batch, words), got shape {bitmask.shape}")
    if not -bitmask.shape[0] <= index < bitmask.shape[0]:
        raise IndexError(f"row {index} is outside a bitmask of {bitmask.shape[0]} rows")
    guide.fill_bitmask(bitmask[index])


def allowed_matrix(bitmask: np.ndarray, width: int) -> np.ndarray:
    """Bool matrix ``(batch, width)``: True where the bitmask allows the token. Columns beyond the
    bitmask's ``32 * words`` are False. A 1-D bitmask is one row."""
    _check_bitmask(bitmask)
    words = np.ascontiguousarray(bitmask.reshape(1, -1) if bitmask.ndim == 1 else bitmask)
    # Little-endian bytes of each word, each byte's bits least significant first: bit t of the row.
    bits = np.unpackbits(words.astype("<i4", copy=False).view(np.uint8), axis=1, bitorder="little")
    if bits.shape[1] >= width:
        return bits[:, :width].astype(bool)
    padded = np.zeros((words.shape[0], width), dtype=bool)
    padded[:, : bits.shape[1]] = bits
    return padded


def apply_token_bitmask_inplace(logits: np.ndarray, bitmask: np.ndarray) -> None:
    """Set the logits of disallowed tokens to ``-inf``, in place.

    ``logits`` is ``(batch, vocab)`` with a ``(batch, words)`` bitmask, or ``(vocab,)`` with a one-row
    bitmask. Columns beyond ``32 * words`` are set to ``-inf``; extra bitmask words are ignored.
    """
    if not isinstance(logits, np.ndarray) or not np.issubdtype(logits.dtype, np.floating):
        raise ValueError(
            f"logits must be a floating-point numpy array, got {getattr(logits, 'dtype', type(logits).__name__)}"
        )
    _check_bitmask(bitmask)
    if logits.ndim not in (1, 2):
        raise ValueError(f"logits must be (batch, vocab) or (vocab,), got shape {logits.shape}")
    view = logits if logits.ndim == 2 else logits.reshape(1, -1)
    rows = 1 if bitmask.ndim == 1 else bitmask.shape[0]
    if view.shape[0] != rows:
        raise ValueError(f"logits have {view.shape[0]} rows but the bitmask has {rows}")
    view[~allowed_matrix(bitmask, view.shape[1])] = -np.inf


def apply_bitmask(logits: np.ndarray, bitmask: np.ndarray) -> np.ndarray:
    """Out-of-place form of ``apply_token_bitmask_inplace``: returns masked copies of ``logits``."""
    if not isinstance(logits, np.ndarray):
        raise ValueError(f"logits must be a numpy array, got {type(logits).__name__}")
    result = logits.copy()
    apply_token_bitmask_inplace(result, bitmask)
    return result


def _check_bitmask(bitmask) -> None:
    if not isinstance(bitmask, np.ndarray):
        raise ValueError(f"bitmask must be a numpy array, got {type(bitmask).__name__}")
    if bitmask.dtype != np.int32:
        raise ValueError(f"invalid bitmask dtype: expected int32, got {bitmask.dtype}")
    if bitmask.ndim not in (1, 2):
        raise ValueError(f"bitmask must be 1-D or 2-D, got shape {bitmask.shape}")
