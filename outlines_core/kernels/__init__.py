"""Bitmask kernels, one module per array library, exposing the same names.

* ``allocate_token_bitmask(batch_size, vocab_size)``: int32 ``(batch, ceil(vocab_size / 32))``, every bit
  set (every token allowed; ``-1`` in every word).
* ``fill_next_token_bitmask(guide, bitmask, index=0)``: ``guide.fill_bitmask`` into row ``index``.
* ``apply_token_bitmask_inplace(logits, bitmask)``: logits ``(batch, V)`` (or ``(V,)`` with one bitmask
  row); a cleared bit sets the logit to ``-inf``, and so do columns beyond ``32 * words``.
* ``apply_bitmask(logits, bitmask)``: the same, out of place.

Layout (shared with xgrammar and llguidance): bit ``t % 32`` of word ``t // 32`` is set when token ``t`` is
allowed. Import the module of your library, ``outlines_core.kernels.numpy`` or
``outlines_core.kernels.torch``; neither is imported here, so numpy-only installs never touch torch.
"""

from __future__ import annotations

__all__ = ["bitmask_width"]


def bitmask_width(vocab_size: int) -> int:
    """Number of int32 words per bitmask row for ``vocab_size`` tokens."""
    if int(vocab_size) != vocab_size or vocab_size <= 0:
        raise ValueError(f"vocab_size must be a positive integer, got {vocab_size!r}")
    return (int(vocab_size) + 31) // 32
