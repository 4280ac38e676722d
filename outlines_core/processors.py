"""Logits processors: one guide per batch row, a bitmask filled per step, masked logits.

``GuidedLogitsProcessor`` is the backend-agnostic core (``tensor_library="torch"`` or ``"numpy"``;
``TorchLogitsProcessor`` and ``NumpyLogitsProcessor`` fix the library). Every row has its own constraint:
an ``Index`` (a fresh ``Guide`` is made), a ``Guide``, or ``None`` for an unconstrained row. Drive it:

* in a custom decode loop: ``processor.process_logits(logits)`` masks the current step in place, then
  ``processor.advance(next_token_ids)`` moves every row on with its sampled token;
* like a ``transformers`` processor: ``processor(input_ids, logits)`` with the whole sequences so far. The
  first call records the prompt length (and repeats the rows for ``num_return_sequences``); each later call
  advances every row with its newest token. A row whose sequence does not extend its own previous one (beam
  search reorders rows) takes over the guide of the row it now extends.

``TransformersLogitsProcessor`` is the same thing as a subclass of ``transformers.LogitsProcessor`` for
``model.generate(logits_processor=LogitsProcessorList([...]))``; it is created on first access so that
``import outlines_core.processors`` needs neither torch nor transformers.

Finished rows (EOS consumed, or a complete match nothing can extend) are only allowed EOS, so a batch can
keep stepping until its last row ends. One processor serves one generation: ``reset()`` it (or make a new
one) before the next.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import TokenNotAllowedError
from .guide import Guide
from .index import Index

__all__ = [
    "GuidedLogitsProcessor",
    "NumpyLogitsProcessor",
    "TorchLogitsProcessor",
    "TransformersLogitsProcessor",
    "apply_bitmask",
    "transformers_processor",
]


def _is_guide(constraint) -> bool:
    # Guides of other constraint kinds (grammars) share the regex Guide's interface.
    return isinstance(constraint, Guide) or (hasattr(constraint, "fill_bitmask") and hasattr(constraint, "advance"))


def _as_guides(constraints: Sequence[Guide | Index | None]) -> list[Guide | None]:
    if isinstance(constraints, (Guide, Index)) or _is_guide(constraints) or hasattr(constraints, "make_guide"):
        raise TypeError("constraints must be a sequence with one Guide, Index or None per batch row")
    guides: list[Guide | None] = []
    for row, constraint in enumerate(constraints):
        if constraint is None or _is_guide(constraint):
            guides.append(constraint)
        elif hasattr(constraint, "make_guide"):  # Index, GrammarIndex
            guides.append(constraint.make_guide())
        else:
            raise TypeError(
                f"row {row}: expected a Guide, an Index (regex or grammar) or None, got {type(constraint).__name__}"
            )
    return guides


def _to_numpy(array) -> np.ndarray:
    if isinstance(array, np.ndarray):
        return array
    if hasattr(array, "detach"):  # torch, on any device
        return array.detach().cpu().numpy()
    return np.asarray(array)


class GuidedLogitsProcessor:
    """Masks a batch of logits so that each row follows its own constraint.

    Parameters
    ----------
    constraints:
        One entry per batch row: a ``Guide`` (driven in place, so the caller can inspect it), an ``Index``
        (a fresh guide is made) or ``None`` for an unconstrained row. Rows may use different indexes (even
        of different vocabularies, as long as each vocabulary's ``size`` is at most the logits' width).
    tensor_library:
        ``"torch"`` or ``"numpy"``: the type of the logits this processor will receive.
    """

    def __init__(self, constraints: Sequence[Guide | Index | None], *, tensor_library: str = "torch") -> None:
        if tensor_library not in ("torch", "numpy"):
            raise ValueError(f"tensor_library must be 'torch' or 'numpy', got {tensor_library!r}")
        guides = _as_guides(constraints)
        if not guides:
            raise ValueError("a processor needs at least one row")
        self.tensor_library = tensor_library
        if tensor_library == "torch":
            from .kernels import torch as kernels
        else:
            from .kernels import numpy as kernels  # type: ignore[no-redef]
        self._kernels = kernels
        # What reset() returns to: fresh copies of the rows as given (guides keep their given state).
        self._initial = [None if guide is None else guide.copy() for guide in guides]
        self.guides: list[Guide | None] = guides
        self._bitmask = None
        self._bitmask_width: int | None = None
        self._prompt_length: int | None = None
        self._previous: np.ndarray | None = None
        self._repeat = 1

    # -- explicit API --------------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return len(self.guides)

    def reset(self) -> None:
        """Return every row to its state at construction (as copies) and the original batch size, for a new
        generation."""
        self.guides = [None if guide is None else guide.copy() for guide in self._initial]
        self._bitmask = None
        self._bitmask_width = None
        self._prompt_length = None
        self._previous = None
        self._repeat = 1

    def fill_bitmask(self, vocab_size: int):
        """Fill and return the batch bitmask for this step: int32 ``(batch, ceil(vocab_size / 32))`` (a CPU
        tensor or a numpy array), all bits set in unconstrained rows."""
        if self._bitmask is None or self._bitmask_width != vocab_size:
            self._bitmask = self._kernels.allocate_token_bitmask(self.batch_size, vocab_size)
            self._bitmask_width = vocab_size
        rows = self._bitmask.numpy() if self.tensor_library == "torch" else self._bitmask
        for row, guide in enumerate(self.guides):
            if guide is None:
                rows[row] = -1
                continue
            vocabulary = guide.index.vocabulary
            if vocabulary.size > vocab_size:
                raise ValueError(
                    f"row {row}: the guide's vocabulary has {vocabulary.size} tokens but the logits have only "
                    f"{vocab_size} columns; build the Vocabulary with size={vocab_size} (the model's logits width)"
                )
            words = guide.index.num_words
            guide.fill_bitmask(rows[row, :words])
            rows[row, words:] = 0  # ids beyond the vocabulary (padded logits) are never allowed
        return self._bitmask

    def process_logits(self, logits):
        """Mask ``logits`` (``(batch, vocab)``) in place for the current step and return them."""
        if getattr(logits, "ndim", None) != 2:
            raise ValueError(f"logits must be 2-D (batch, vocab), got shape {tuple(getattr(logits, 'shape', ()))}")
        if logits.shape[0] != self.batch_size:
            raise ValueError(f"logits have {logits.shape[0]} rows but the processor has {self.batch_size} rows")
        if all(guide is None for guide in self.guides):
            return logits  # nothing to enforce
        bitmask = self.fill_bitmask(int(logits.shape[-1]))
        self._kernels.apply_token_bitmask_inplace(logits, bitmask)
        return logits

    def advance(self, token_ids) -> None:
        """Move every row on with its sampled token. Finished rows are left as they are (decode loops keep
        feeding padding or EOS to them); a token a row does not allow raises ``TokenNotAllowedError`` and
        leaves every row where it was (the rows before it are moved back)."""
        tokens = _to_numpy(token_ids).reshape(-1)
        if tokens.shape[0] != self.batch_size:
            raise ValueError(f"got {tokens.shape[0]} tokens for a batch of {self.batch_size} rows")
        moved = []  # (guide, its state and history length before this step), to move back on a rejection
        for row, (guide, token) in enumerate(zip(self.guides, tokens.tolist())):
            if guide is not None and not guide.is_finished():
                before = (guide, guide._state, guide._history_length)
                try:
                    guide.advance(token)
                except TokenNotAllowedError as error:
                    for earlier, state, length in moved:
                        earlier._state, earlier._history_length = state, length
                    raise TokenNotAllowedError(f"batch row {row}: {error}") from None
                moved.append(before)

    def is_finished(self) -> list[bool]:
        """Per row: its guide is finished (unconstrained rows never are: their end is the caller's call)."""
        return [guide is not None and guide.is_finished() for guide in self.guides]

    # -- transformers-style API ----------------------------------------------------------------------
    def __call__(self, input_ids, logits):
        """``input_ids``: ``(batch, sequence)`` so far; ``logits``: ``(batch, vocab)``. Returns the logits,
        masked in place."""
        sequences = _to_numpy(input_ids)
        if sequences.ndim != 2:
            raise ValueError(f"input_ids must be (batch, sequence), got shape {sequences.shape}")
        if self._prompt_length is None:
            if sequences.shape[0] != self.batch_size:
                self._expand_rows(sequences.shape[0])
            self._prompt_length = sequences.shape[1]
        else:
            self._follow(sequences)
        self._previous = sequences.copy()
        return self.process_logits(logits)

    def _follow(self, sequences: np.ndarray) -> None:
        """Advance every row with its newest token, after matching each row to the row it extends."""
        previous = self._previous
        assert previous is not None
        if sequences.shape[0] != previous.shape[0] or sequences.shape[1] != previous.shape[1] + 1:
            raise ValueError(
                f"the processor last saw sequences of shape {previous.shape} and now {sequences.shape}; it follows "
                "one generation, one token per call: call reset() (or make a new processor) between generations"
            )
        prefixes = sequences[:, :-1]
        extends_itself = (prefixes == previous).all(axis=1)
        if not extends_itself.all():
            # Beam search reorders rows: row r continues whichever previous row of its group it extends.
            guides = list(self.guides)
            for row in np.flatnonzero(~extends_itself).tolist():
                group = row // self._repeat
                candidates = range(group * self._repeat, (group + 1) * self._repeat)
                parent = next((p for p in candidates if np.array_equal(prefixes[row], previous[p])), None)
                if parent is None:
                    raise ValueError(
                        f"batch row {row} does not extend any sequence of the previous step; the processor follows "
                        "one generation: call reset() (or make a new processor) between generations"
                    )
                source = self.guides[parent]
                guides[row] = None if source is None else source.copy()
            self.guides = guides
        self.advance(sequences[:, -1])

    def _expand_rows(self, batch: int) -> None:
        """``generate(num_return_sequences=n)`` (or ``num_beams=n``) repeats each prompt row n times: repeat
        the guides to match."""
        if batch % self.batch_size:
            raise ValueError(
                f"input_ids have {batch} rows but the processor has {self.batch_size}: give one constraint per "
                "prompt row (rows repeated by num_return_sequences are handled)"
            )
        self._repeat = batch // self.batch_size
        self.guides = [None if g is None else g.copy() for g in self.guides for _ in range(self._repeat)]
        self._bitmask = None


class TorchLogitsProcessor(GuidedLogitsProcessor):
    """``GuidedLogitsProcessor`` for torch logits (on any device; the bitmask is filled on the CPU)."""

    def __init__(self, constraints: Sequence[Guide | Index | None]) -> None:
        super().__init__(constraints, tensor_library="torch")


class NumpyLogitsProcessor(GuidedLogitsProcessor):
    """``GuidedLogitsProcessor`` for numpy logits."""

    def __init__(self, constraints: Sequence[Guide | Index | None]) -> None:
        super().__init__(constraints, tensor_library="numpy")


_TRANSFORMERS_CLASS = None


def _transformers_class():
    global _TRANSFORMERS_CLASS
    if _TRANSFORMERS_CLASS is None:
        try:
            import transformers
        except ImportError as error:
            raise ImportError(
                "TransformersLogitsProcessor needs transformers: pip install 'outlines-core-py[transformers]'"
            ) from error

        class TransformersLogitsProcessor(transformers.LogitsProcessor, TorchLogitsProcessor):
            """A ``transformers.LogitsProcessor`` enforcing one constraint per batch row.

            ``model.generate(input_ids, logits_processor=LogitsProcessorList([TransformersLogitsProcessor(
            [index_row0, index_row1, ...])]))``: greedy or sampled decoding, batches (left padding), and
            ``num_return_sequences`` (each prompt's constraint is repeated). One processor per ``generate``
            call, or ``reset()`` it in between.
            """

            def __init__(self, constraints: Sequence[Guide | Index | None]) -> None:
                TorchLogitsProcessor.__init__(self, constraints)

            def __call__(self, input_ids, scores):
                return GuidedLogitsProcessor.__call__(self, input_ids, scores)

        TransformersLogitsProcessor.__module__ = __name__
        TransformersLogitsProcessor.__qualname__ = "TransformersLogitsProcessor"
        _TRANSFORMERS_CLASS = TransformersLogitsProcessor
    return _TRANSFORMERS_CLASS


def __getattr__(name: str):
    if name == "TransformersLogitsProcessor":
        return _transformers_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def transformers_processor(constraints: Sequence[Guide | Index | None]):
    """A ``TransformersLogitsProcessor`` (a ``transformers.LogitsProcessor``) with one constraint per row."""
    return _transformers_class()(constraints)


def apply_bitmask(logits, bitmask):
    """Mask ``logits`` with ``bitmask`` (int32 ``(batch, ceil(vocab / 32))``, bit ``t % 32`` of word ``t // 32``
    = token ``t``) and return new logits; numpy arrays and torch tensors, for custom decode loops."""
    if isinstance(logits, np.ndarray):
        from .kernels import numpy as kernels
    else:
        from .kernels import torch as kernels  # type: ignore[no-redef]
    return kernels.apply_bitmask(logits, bitmask)
