"""Bitmask kernels, one module per array library, all with the same three names.

``allocate_token_bitmask(batch_size, vocab_size)``, ``fill_next_token_bitmask(guide, bitmask, index=0)``
and ``apply_token_bitmask_inplace(logits, bitmask)``. The bitmask is int32 of shape
``(batch, ceil(vocab_size / 32))``; bit ``t % 32`` of word ``t // 32`` is set when token ``t`` is allowed
(the xgrammar / llguidance layout). Import the module of your library: ``outlines_core.kernels.numpy`` or
``outlines_core.kernels.torch``; they are not imported here so that numpy-only installs never touch torch.
"""

from __future__ import annotations


def bitmask_width(vocab_size: int) -> int:
    """Number of int32 words per row for ``vocab_size`` tokens."""
    if vocab_size <= 0:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}")
    return (vocab_size + 31) // 32
