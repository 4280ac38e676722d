"""Logits processors: one guide per batch row, a bitmask filled per step, masked logits.

``GuidedLogitsProcessor`` is the backend-agnostic core (numpy or torch logits). It can be driven two ways:

* explicitly, in a custom decode loop: ``processor.process_logits(logits)`` masks the current step and
  ``processor.advance(next_token_ids)`` moves every row on;
* like a ``transformers`` processor: ``processor(input_ids, logits)`` with the full sequences so far; the
  first call records the prompt length, later calls advance each row with its newest token.

``TransformersLogitsProcessor`` (from ``transformers_processor()``) is the same thing as a subclass of
``transformers.LogitsProcessor``, for ``model.generate(logits_processor=LogitsProcessorList([...]))``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .guide import Guide
from .index import Index


def _as_guides(constraints: Sequence[Guide | Index | None]) -> list[Guide | None]:
    guides: list[Guide | None] = []
    for row, constraint in enumerate(constraints):
        if constraint is None or isinstance(constraint, Guide):
            guides.append(constraint)
        elif isinstance(constraint, Index):
            guides.append(Guide(constraint))
        else:
            raise TypeError(f"row {row}: expected a Guide, an Index or None, got {type(constraint).__name__}")
    return guides


class GuidedLogitsProcessor:
    """Masks a batch of logits so that each row follows its own constraint.

    Parameters
    ----------
    constraints:
        One entry per batch row: a ``Guide``, an ``Index`` (a fresh guide is made) or ``None`` for an
        unconstrained row. Rows may use different indexes.
    tensor_library:
        ``"torch"`` or ``"numpy"``: the type of the logits this processor will receive.
    """

    def __init__(self, constraints: Sequence[Guide | Index | None], *, tensor_library: str = "torch") -> None:
        if tensor_library not in ("torch", "numpy"):
            raise ValueError(f"tensor_library must be 'torch' or 'numpy', got {tensor_library!r}")
        self.guides = _as_guides(constraints)
        if not self.guides:
            raise ValueError("a processor needs at least one row")
        self.tensor_library = tensor_library
        if tensor_library == "torch":
            from .kernels import torch as kernels
        else:
            from .kernels import numpy as kernels  # type: ignore[no-redef]
        self._kernels = kernels
        self._bitmask = None
        self._vocab_width: int | None = None
        self._prompt_length: int | None = None

    # -- explicit API --------------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return len(self.guides)

    def reset(self) -> None:
        """Rewind every guide to its start, for a new generation."""
        for guide in self.guides:
            if guide is not None:
                guide.reset()
        self._prompt_length = None

    def fill_bitmask(self, vocab_size: int):
        """Fill and return the batch bitmask (int32 ``(batch, ceil(vocab_size / 32))``) for this step."""
        if self._bitmask is None or self._vocab_width != vocab_size:
            self._bitmask = self._kernels.allocate_token_bitmask(self.batch_size, vocab_size)
            self._vocab_width = vocab_size
        rows = self._bitmask.numpy() if self.tensor_library == "torch" else self._bitmask
        for row, guide in enumerate(self.guides):
            if guide is None:
                rows[row] = -1
            else:
                width = guide.index.num_words
                if width != rows.shape[1]:
                    raise ValueError(
                        f"row {row}: the guide's vocabulary has {guide.index.vocabulary.size} tokens but the "
                        f"logits have {vocab_size} columns; build the Vocabulary with size={vocab_size}"
                    )
                guide.fill_bitmask(rows[row])
        return self._bitmask

    def process_logits(self, logits):
        """Mask ``logits`` (``(batch, vocab)``) in place for the current step and return them."""
        if logits.shape[0] != self.batch_size:
            raise ValueError(f"logits have {logits.shape[0]} rows but the processor has {self.batch_size} guides")
        if all(guide is None for guide in self.guides):
            return logits  # nothing to enforce
        bitmask = self.fill_bitmask(logits.shape[-1])
        self._kernels.apply_token_bitmask_inplace(logits, bitmask)
        return logits

    def advance(self, token_ids) -> None:
        """Move every row on with its sampled token. Rows already finished are left as they are (decode
        loops keep feeding padding to finished rows)."""
        tokens = np.asarray(token_ids.cpu() if hasattr(token_ids, "cpu") else token_ids).reshape(-1)
        if tokens.shape[0] != self.batch_size:
            raise ValueError(f"got {tokens.shape[0]} tokens for a batch of {self.batch_size}")
        for guide, token in zip(self.guides, tokens.tolist()):
            if guide is not None and not guide.is_finished():
                guide.advance(token)

    def is_finished(self) -> list[bool]:
        return [guide is not None and guide.is_finished() for guide in self.guides]

    # -- transformers-style API ----------------------------------------------------------------------
    def __call__(self, input_ids, logits):
        """``input_ids``: ``(batch, sequence)`` so far; ``logits``: ``(batch, vocab)``. Returns the logits."""
        if input_ids.shape[0] != self.batch_size:
            self._expand_rows(input_ids.shape[0])
        length = input_ids.shape[1]
        if self._prompt_length is None:
            self._prompt_length = length
        elif length == self._prompt_length + 1:
            self.advance(input_ids[:, -1])
            self._prompt_length = length
        elif length != self._prompt_length:
            raise ValueError(
                f"the processor saw sequences of length {self._prompt_length} and now {length}: call "
                "reset() between generations, and call the processor once per step"
            )
        return self.process_logits(logits)

    def _expand_rows(self, batch: int) -> None:
        """``generate(num_return_sequences=n)`` repeats each prompt row n times: copy the guides to match."""
        if self._prompt_length is not None or batch % self.batch_size:
            raise ValueError(f"logits have {batch} rows but the processor has {self.batch_size} guides")
        repeat = batch // self.batch_size
        self.guides = [None if g is None else g.copy() for g in self.guides for _ in range(repeat)]
        self._bitmask = None


def transformers_processor(constraints: Sequence[Guide | Index | None]):
    """A ``transformers.LogitsProcessor`` enforcing one constraint per batch row.

    Use it with ``model.generate(..., logits_processor=LogitsProcessorList([processor]))``; call
    ``processor.reset()`` (or build a new one) before reusing it for another ``generate`` call.
    """
    import transformers

    class TransformersLogitsProcessor(transformers.LogitsProcessor, GuidedLogitsProcessor):
        def __init__(self, constraints) -> None:
            GuidedLogitsProcessor.__init__(self, constraints, tensor_library="torch")

        def __call__(self, input_ids, scores):
            return GuidedLogitsProcessor.__call__(self, input_ids, scores)

    return TransformersLogitsProcessor(constraints)


def apply_bitmask(logits, bitmask):
    """Mask ``logits`` with ``bitmask`` (int32, bit ``t % 32`` of word ``t // 32`` = token ``t``) and return
    new logits; works for numpy arrays and torch tensors, for custom decode loops."""
    if isinstance(logits, np.ndarray):
        from .kernels import numpy as kernels
    else:
        from .kernels import torch as kernels  # type: ignore[no-redef]
    return kernels.apply_bitmask(logits, bitmask)
