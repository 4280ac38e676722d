"""Bitmask kernels for torch tensors (see ``outlines_core.kernels`` for the layout).

The bitmask lives on the CPU and is filled through a zero-copy numpy view of the tensor; applying it moves
it to the logits' device (a few KB) and unpacks it there with shifts over a ``(batch, words, 32)`` view, so
no Python loop ever touches the vocabulary.
"""

from __future__ import annotations

try:
    import torch
except ImportError as error:  # pragma: no cover - exercised only without torch
    raise ImportError(
        "outlines_core.kernels.torch needs torch: pip install 'outlines-core-py[torch]' (torch==2.13.0), "
        "or use outlines_core.kernels.numpy"
    ) from error

from . import bitmask_width

__all__ = [
    "allocate_token_bitmask",
    "allowed_matrix",
    "apply_bitmask",
    "apply_token_bitmask_inplace",
    "fill_next_token_bitmask",
]

_SHIFTS: dict = {}


def allocate_token_bitmask(batch_size: int, vocab_size: int) -> torch.Tensor:
    """A CPU int32 bitmask of shape ``(batch_size, ceil(vocab_size / 32))`` with every token allowed."""
    if int(batch_size) != batch_size or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return torch.full((int(batch_size), bitmask_width(vocab_size)), -1, dtype=torch.int32)


def fill_next_token_bitmask(guide, bitmask: torch.Tensor, index: int = 0) -> None:
    """Write ``guide``'s allowed tokens into row ``index`` of ``bitmask`` (a 2-D CPU int32 tensor), through
    a numpy view of the tensor's memory (no copy)."""
    _check_bitmask(bitmask)
    if bitmask.ndim != 2:
        raise ValueError(f"bitmask must be 2-D (batch, words), got shape {tuple(bitmask.shape)}")
    if bitmask.device.type != "cpu":
        raise ValueError(f"the bitmask must be filled on the CPU, got a tensor on {bitmask.device}")
    if not -bitmask.shape[0] <= index < bitmask.shape[0]:
        raise IndexError(f"row {index} is outside a bitmask of {bitmask.shape[0]} rows")
    guide.fill_bitmask(bitmask[index].numpy())


def allowed_matrix(bitmask: torch.Tensor, width: int, device=None) -> torch.Tensor:
    """Bool tensor ``(batch, width)`` on ``device`` (default: the bitmask's): True where the bitmask allows
    the token; columns beyond ``32 * words`` are False. A 1-D bitmask is one row."""
    _check_bitmask(bitmask)
    device = bitmask.device if device is None else torch.device(device)
    shifts = _SHIFTS.get(device)
    if shifts is None:
        shifts = _SHIFTS[device] = torch.arange(32, dtype=torch.int32, device=device)
    words = bitmask.to(device, non_blocking=True)
    if words.ndim == 1:
        words = words.unsqueeze(0)
    # (batch, words, 32): bit j of word w is token 32 * w + j (arithmetic shift of negative words is fine:
    # only the lowest bit is kept).
    bits = ((words.unsqueeze(-1) >> shifts) & 1).bool().reshape(words.shape[0], -1)
    if bits.shape[1] >= width:
        return bits[:, :width]
    return torch.nn.functional.pad(bits, (0, width - bits.shape[1]), value=False)


def apply_token_bitmask_inplace(logits: torch.Tensor, bitmask: torch.Tensor) -> None:
    """Set the logits of disallowed tokens to ``-inf``, in place.

    ``logits`` is ``(batch, vocab)`` with a ``(batch, words)`` bitmask, or ``(vocab,)`` with a one-row
    bitmask, on any device (the bitmask is moved there). Columns beyond ``32 * words`` are set to ``-inf``.
    """
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise ValueError(
            f"logits must be a floating-point torch tensor, got {getattr(logits, 'dtype', type(logits).__name__)}"
        )
    _check_bitmask(bitmask)
    if logits.ndim not in (1, 2):
        raise ValueError(f"logits must be (batch, vocab) or (vocab,), got shape {tuple(logits.shape)}")
    view = logits if logits.ndim == 2 else logits.view(1, -1)
    rows = 1 if bitmask.ndim == 1 else bitmask.shape[0]
    if view.shape[0] != rows:
        raise ValueError(f"logits have {view.shape[0]} rows but the bitmask has {rows}")
    view.masked_fill_(~allowed_matrix(bitmask, view.shape[1], device=view.device), float("-inf"))


def apply_bitmask(logits: torch.Tensor, bitmask: torch.Tensor) -> torch.Tensor:
    """Out-of-place form of ``apply_token_bitmask_inplace``: returns a masked copy of ``logits``."""
    if not isinstance(logits, torch.Tensor):
        raise ValueError(f"logits must be a torch tensor, got {type(logits).__name__}")
    result = logits.clone()
    apply_token_bitmask_inplace(result, bitmask)
    return result


def _check_bitmask(bitmask) -> None:
    if not isinstance(bitmask, torch.Tensor):
        raise ValueError(f"bitmask must be a torch tensor, got {type(bitmask).__name__}")
    if bitmask.dtype != torch.int32:
        raise ValueError(f"invalid bitmask dtype: expected torch.int32, got {bitmask.dtype}")
    if bitmask.ndim not in (1, 2):
        raise ValueError(f"bitmask must be 1-D or 2-D, got shape {tuple(bitmask.shape)}")
