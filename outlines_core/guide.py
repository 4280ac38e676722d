"""Per-sequence cursor over an Index: which tokens are allowed now, and the move after each token."""

from __future__ import annotations

import operator
from typing import Iterable

import numpy as np

from .errors import TokenNotAllowedError
from .index import FINISHED, Index
from .regex.dfa import DEAD


class Guide:
    """Walks one output through an ``Index``. Cheap to create and to ``copy`` (the Index is shared)."""

    __slots__ = ("index", "_state", "_history_length")

    def __init__(self, index: Index) -> None:
        if not isinstance(index, Index):
            raise TypeError(f"Guide expects an outlines_core.Index, got {type(index).__name__}")
        self.index = index
        self._state = index.initial_state
        self._history_length = 0

    @property
    def state(self) -> int:
        """The current DFA state (``outlines_core.index.FINISHED`` once EOS was consumed)."""
        return self._state

    def allowed_tokens(self) -> np.ndarray:
        """Sorted ids (int32) of the tokens allowed next; EOS ids appear exactly when the output so far is
        a complete match."""
        return self.index.allowed_tokens(self._state)

    def fill_bitmask(self, row: np.ndarray) -> None:
        """Write the allowed-token bitmask into ``row`` (int32, ``ceil(vocab_size / 32)`` words)."""
        # The cache read inline and the cheapest checks and copy: this runs on every decode step.
        mask = self.index._masks.get(self._state)
        if mask is None:
            mask = self.index.mask(self._state)
        if row.ndim != 1 or len(row) != len(mask):
            raise ValueError(
                f"bitmask row has shape {row.shape}, expected ({mask.shape[0]},) for a vocabulary of "
                f"{self.index.vocabulary.size} tokens"
            )
        row[...] = mask  # like np.copyto(row, mask, casting="unsafe"): 0.25 us less per step

    def is_allowed(self, token_id: int) -> bool:
        return self.index.is_allowed(self._state, operator.index(token_id))

    def advance(self, token_id: int) -> None:
        """Consume ``token_id``.

        Raises
        ------
        TokenNotAllowedError
            When the token is not allowed here (the state is left unchanged).
        """
        token_id = operator.index(token_id)  # 97.5 or "97" is no token id: TypeError
        target = self.index.next_state(self._state, token_id)
        if target == DEAD:
            raise TokenNotAllowedError(self._not_allowed_message(token_id))
        self._state = target
        self._history_length += 1

    def accepts(self, token_ids: Iterable[int]) -> int:
        """How many leading tokens of ``token_ids`` would be accepted from here (the state is unchanged);
        useful to verify a speculative draft."""
        state = self._state
        count = 0
        for token_id in token_ids:
            state = self.index.next_state(state, int(token_id))
            if state == DEAD:
                break
            count += 1
        return count

    def is_accepting(self) -> bool:
        """The output so far is a complete match (EOS is allowed)."""
        return self.index.is_accepting(self._state)

    def is_finished(self) -> bool:
        """EOS was consumed, or the output is complete and nothing can extend it."""
        return self.index.is_final(self._state)

    def reset(self) -> None:
        self._state = self.index.initial_state
        self._history_length = 0

    def copy(self) -> "Guide":
        clone = Guide.__new__(Guide)
        clone.index = self.index
        clone._state = self._state
        clone._history_length = self._history_length
        return clone

    def __repr__(self) -> str:
        return f"Guide(state={self._state}, accepting={self.is_accepting()}, index={self.index!r})"

    def _not_allowed_message(self, token_id: int) -> str:
        vocabulary = self.index.vocabulary
        if not 0 <= token_id < vocabulary.size:
            return f"token id {token_id} is outside the vocabulary (size {vocabulary.size})"
        if self._state == FINISHED:
            return f"token {token_id} given after EOS: the guide is finished, only EOS is allowed"
        token = vocabulary.token_bytes(token_id)
        if token is None and token_id not in vocabulary.eos_token_ids:
            what = "a special token, never allowed as content"
        elif token_id in vocabulary.eos_token_ids:
            what = "EOS, but the output is not a complete match yet"
        else:
            what = f"bytes {token!r}"
        allowed = self.allowed_tokens()
        sample = ", ".join(
            repr(vocabulary.token_bytes(int(t))) if int(t) not in vocabulary.eos_token_ids else "EOS"
            for t in allowed[:5]
        )
        return (
            f"token {token_id} ({what}) is not allowed after {self._history_length} tokens in state "
            f"{self._state} of regex {self.index.pattern[:80]!r}; {len(allowed)} tokens are allowed, "
            f"e.g. {sample}"
        )
