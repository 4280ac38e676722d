"""Per-sequence cursor over a ``GrammarIndex``: the same interface as the regex ``Guide``, so logits
processors, batching and backends drive grammar constraints unchanged."""

from __future__ import annotations

import operator
from typing import Iterable

import numpy as np

from ..errors import TokenNotAllowedError
from .index import FINISHED, GrammarIndex, GrammarState


class GrammarGuide:
    """Walks one output through a grammar. Cheap to create and to ``copy`` (a state is three integers;
    the index and its caches are shared)."""

    __slots__ = ("index", "_state", "_history_length")

    def __init__(self, index: GrammarIndex) -> None:
        if not isinstance(index, GrammarIndex):
            raise TypeError(f"GrammarGuide expects a GrammarIndex, got {type(index).__name__}")
        self.index = index
        self._state = index.initial_state
        self._history_length = 0

    @property
    def state(self) -> GrammarState:
        return self._state

    def allowed_tokens(self) -> np.ndarray:
        """Sorted ids (int32) of the tokens allowed next; EOS ids appear exactly when the output so far is
        a complete sentence."""
        return self.index.allowed_tokens(self._state)

    def fill_bitmask(self, row: np.ndarray) -> None:
        """Write the allowed-token bitmask into ``row`` (int32, ``ceil(vocab_size / 32)`` words)."""
        mask = self.index.mask(self._state)
        if row.shape != mask.shape:
            raise ValueError(
                f"bitmask row has shape {row.shape}, expected ({mask.shape[0]},) for a vocabulary of "
                f"{self.index.vocabulary.size} tokens"
            )
        np.copyto(row, mask, casting="unsafe")

    def is_allowed(self, token_id: int) -> bool:
        return self.index.is_allowed(self._state, operator.index(token_id))

    def advance(self, token_id: int) -> None:
        """Consume ``token_id``; ``TokenNotAllowedError`` (state unchanged) if the grammar forbids it."""
        token_id = operator.index(token_id)  # 97.5 or "97" is no token id: TypeError
        target = self.index.next_state(self._state, token_id)
        if target is None:
            raise TokenNotAllowedError(self._not_allowed_message(token_id))
        self._state = target
        self._history_length += 1

    def accepts(self, token_ids: Iterable[int]) -> int:
        """How many leading tokens of ``token_ids`` would be accepted from here (the state is unchanged)."""
        state = self._state
        count = 0
        for token_id in token_ids:
            state = self.index.next_state(state, int(token_id))
            if state is None:
                break
            count += 1
        return count

    def is_accepting(self) -> bool:
        return self.index.is_accepting(self._state)

    def is_finished(self) -> bool:
        return self.index.is_final(self._state)

    def reset(self) -> None:
        self._state = self.index.initial_state
        self._history_length = 0

    def copy(self) -> "GrammarGuide":
        clone = GrammarGuide.__new__(GrammarGuide)
        clone.index = self.index
        clone._state = self._state
        clone._history_length = self._history_length
        return clone

    def __repr__(self) -> str:
        return f"GrammarGuide(tokens={self._history_length}, accepting={self.is_accepting()})"

    def _not_allowed_message(self, token_id: int) -> str:
        vocabulary = self.index.vocabulary
        if not 0 <= token_id < vocabulary.size:
            return f"token id {token_id} is outside the vocabulary (size {vocabulary.size})"
        if self._state.node == FINISHED:
            return f"token {token_id} given after EOS: the guide is finished, only EOS is allowed"
        if token_id in vocabulary.eos_token_ids:
            what = "EOS, but the output is not a complete sentence yet"
        else:
            token = vocabulary.token_bytes(token_id)
            what = "a special token, never allowed as content" if token is None else f"bytes {token!r}"
        allowed = self.allowed_tokens()
        sample = ", ".join(
            "EOS" if int(t) in vocabulary.eos_token_ids else repr(vocabulary.token_bytes(int(t))) for t in allowed[:5]
        )
        return (
            f"token {token_id} ({what}) is not allowed by the grammar after {self._history_length} tokens; "
            f"{len(allowed)} tokens are allowed, e.g. {sample}"
        )
