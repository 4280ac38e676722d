"""``Generator(model, output_type)``: constrained generation with a steerable model.

The generator compiles the output type once (``Index`` objects are cached per regex and vocabulary in an
LRU shared by every generator), then runs its own decode loop: model logits (KV cache) -> each row's bitmask
-> greedy choice or sampling -> every guide advances. The output text is the vocabulary's bytes of the
generated tokens, i.e. exactly what the guide matched, never a re-decoding by the tokenizer.

If ``max_new_tokens`` runs out before a constrained output is complete, ``IncompleteOutputError`` is raised
(carrying every row's partial text): partial text is never returned as if it matched. Unconstrained rows
simply stop at the limit.

Async: ``await generator.acall(...)`` / ``abatch`` / ``async for piece in generator.astream(...)`` work
with every model (a steerable model decodes in a worker thread, one decode at a time per model); a model
built on an async client (``openai.AsyncOpenAI``, ``ollama.AsyncClient``) is awaited directly, and there
``await generator(...)`` and ``async for piece in generator.stream(...)`` work too.

Black-box models (``model.is_blackbox``: ``backends.openai``, ``backends.ollama``, ``backends.vllm_server``)
enforce the constraint on their server; the generator only dispatches to their ``generate``,
``generate_batch`` and ``generate_stream`` (see ``backends/blackbox.py``).

A steerable model is anything with ``vocabulary`` (a ``Vocabulary`` whose ``size`` is the logits width),
``encode(prompt) -> list[int]`` and ``start(prompts_ids) -> session``, where the session has
``logits() -> torch.Tensor (batch, vocab)`` and ``append(token_ids)``;
``backends.transformers.from_transformers`` builds one.
"""

from __future__ import annotations

import codecs
import math
import numbers
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from . import types
from .errors import IncompleteOutputError
from .grammars import CFG
from .index import Index
from .processors import GuidedLogitsProcessor
from .vocabulary import Vocabulary

__all__ = ["Generator", "SamplingParams", "cached_index", "generate", "index_for", "INDEX_CACHE_SIZE"]

_INDEX_CACHE: "OrderedDict[tuple, object]" = OrderedDict()  # Index or GrammarIndex
_INDEX_CACHE_LOCK = threading.Lock()
#: How many compiled indexes (regex x vocabulary) stay cached.
INDEX_CACHE_SIZE = 64


def cached_index(regex: str, vocabulary: Vocabulary) -> Index:
    """The ``Index`` of ``regex`` for ``vocabulary``, shared by every generator (LRU of ``INDEX_CACHE_SIZE``)."""
    key = (regex, vocabulary.fingerprint)
    with _INDEX_CACHE_LOCK:
        index = _INDEX_CACHE.get(key)
        if index is not None:
            _INDEX_CACHE.move_to_end(key)
            return index
    from .index_cache import load_or_build

    index = load_or_build(regex, vocabulary)  # outside the lock: compiling may take a while (disk cache)
    with _INDEX_CACHE_LOCK:
        index = _INDEX_CACHE.setdefault(key, index)
        _INDEX_CACHE.move_to_end(key)
        while len(_INDEX_CACHE) > INDEX_CACHE_SIZE:
            _INDEX_CACHE.popitem(last=False)
    return index


def regex_of(output_type) -> str:
    """The regex of an output type: ``outlines_core.types.to_regex`` (``Regex`` and everything the types
    module supports). Both it and ``CFG`` are imported with this module, when an application imports
    ``Generator``, not in its first request (5 ms of dataclasses and tables)."""
    to_regex = getattr(types, "to_regex", None)
    if to_regex is not None:
        return to_regex(output_type)
    if isinstance(output_type, types.Regex):
        return output_type.pattern
    from .errors import UnsupportedTypeError

    raise UnsupportedTypeError(f"unsupported output type {output_type!r}; use outlines_core.types.Regex(pattern)")


def cached_grammar_index(cfg, vocabulary: Vocabulary):
    """The ``GrammarIndex`` of a ``CFG`` for ``vocabulary``, shared by every generator (same LRU as regexes)."""
    from .grammars import GrammarIndex, compile_grammar

    key = (("cfg", cfg.definition, cfg.start, cfg.parser), vocabulary.fingerprint)
    with _INDEX_CACHE_LOCK:
        index = _INDEX_CACHE.get(key)
        if index is not None:
            _INDEX_CACHE.move_to_end(key)
            return index
    index = GrammarIndex(compile_grammar(cfg.definition, cfg.start, cfg.parser), vocabulary)
    with _INDEX_CACHE_LOCK:
        index = _INDEX_CACHE.setdefault(key, index)
        _INDEX_CACHE.move_to_end(key)
        while len(_INDEX_CACHE) > INDEX_CACHE_SIZE:
            _INDEX_CACHE.popitem(last=False)
    return index


def index_for(output_type, vocabulary: Vocabulary):
    """The (cached) index enforcing ``output_type`` over ``vocabulary``: an ``Index`` for everything with a
    regex form, a ``GrammarIndex`` for a ``CFG``; ``None`` for ``None`` (unconstrained)."""
    if output_type is None:
        return None
    if isinstance(output_type, CFG):
        return cached_grammar_index(output_type, vocabulary)
    return cached_index(regex_of(output_type), vocabulary)


@dataclass(frozen=True)
class SamplingParams:
    """How the next token is chosen from the masked logits.

    ``do_sample=False`` is greedy decoding (the default). Sampling is multinomial from
    ``softmax(logits / temperature)`` after ``top_k`` / ``top_p`` filtering; ``seed`` makes it reproducible.
    If ``do_sample`` is not given, passing ``temperature`` (> 0), ``top_k``, ``top_p`` or ``seed`` turns
    sampling on; ``temperature=0`` means greedy.
    """

    do_sample: bool | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.do_sample is not None and not isinstance(self.do_sample, (bool, np.bool_)):
            raise TypeError(f"do_sample must be True or False, got {self.do_sample!r}")
        for name in ("temperature", "top_p"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        for name in ("top_k", "seed"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if self.temperature is not None and self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature} (0 is greedy)")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.seed is not None and not 0 <= self.seed < 2**64:
            raise ValueError(f"seed must be in [0, 2**64), got {self.seed}")
        if self.do_sample and self.temperature == 0:
            raise ValueError("do_sample=True with temperature=0: use do_sample=False for greedy decoding")

    @classmethod
    def from_kwargs(cls, kwargs: dict) -> "SamplingParams":
        unknown = sorted(set(kwargs) - {"do_sample", "temperature", "top_k", "top_p", "seed"})
        if unknown:
            raise TypeError(
                f"unknown generation argument(s) {unknown}; expected max_new_tokens, stop, do_sample, temperature, "
                "top_k, top_p, seed"
            )
        return cls(**kwargs)

    @property
    def sampling(self) -> bool:
        if self.do_sample is not None:
            return bool(self.do_sample)
        if self.temperature == 0:
            return False
        return any(value is not None for value in (self.temperature, self.top_k, self.top_p, self.seed))


def _is_chat(prompt) -> bool:
    return (
        isinstance(prompt, Sequence)
        and not isinstance(prompt, str)
        and bool(prompt)
        and all(isinstance(message, dict) for message in prompt)
    )


def _normalize_prompts(prompt) -> tuple[list, bool]:
    """(list of single prompts, whether the caller passed a batch)."""
    if isinstance(prompt, str) or _is_chat(prompt):
        return [prompt], False
    if isinstance(prompt, Sequence) and prompt and all(isinstance(p, str) or _is_chat(p) for p in prompt):
        return list(prompt), True
    raise TypeError(
        "prompt must be a str, a list of {'role': ..., 'content': ...} messages, or a non-empty list of those "
        f"for a batch; got {type(prompt).__name__}"
    )


class Generator:
    """Generate text that satisfies ``output_type`` with ``model``.

    Parameters
    ----------
    model:
        A steerable model, e.g. ``backends.transformers.from_transformers(hf_model, hf_tokenizer)`` or
        ``backends.transformers.load_default_model()``; or a black-box model (``is_blackbox``:
        ``backends.openai.from_openai``, ``backends.ollama.from_ollama``, ``backends.vllm_server``), which
        gets the output type sent as its server's structured-output parameter. With an async client,
        calling returns a coroutine and ``stream`` an async iterator.
    output_type:
        ``None`` for unconstrained text, ``outlines_core.types.Regex(pattern)``, or anything
        ``outlines_core.types.to_regex`` accepts, or ``outlines_core.types.CFG(lark_grammar)``. Compiled
        once, here: a bad regex or grammar fails at construction.
    """

    def __init__(self, model, output_type=None) -> None:
        self.model = model
        self.output_type = output_type
        if getattr(model, "is_blackbox", False):
            # The server enforces the constraint: check now that the backend can carry it.
            model.native_format(output_type)
            self.index = None
            return
        for attribute in ("vocabulary", "encode", "start"):
            if not hasattr(model, attribute):
                raise TypeError(
                    f"{type(model).__name__} is not a steerable model (no {attribute!r}); wrap a transformers "
                    "model with backends.transformers.from_transformers(model, tokenizer)"
                )
        self.model = model
        self.output_type = output_type
        self.index = index_for(output_type, model.vocabulary)

    @property
    def is_blackbox(self) -> bool:
        return bool(getattr(self.model, "is_blackbox", False))

    def __repr__(self) -> str:
        if self.is_blackbox:
            return f"Generator(model={self.model!r}, output_type={self.output_type!r})"
        if self.index is None or hasattr(self.index, "pattern"):
            pattern = None if self.index is None else self.index.pattern
            return f"Generator(model={self.model!r}, regex={pattern!r})"
        return f"Generator(model={self.model!r}, grammar={self.output_type!r})"

    def __call__(self, prompt, max_new_tokens: int = 256, **sampling) -> str | list[str]:
        """Generate for one prompt (a str or a list of chat messages) or a list of prompts (a batch, left
        padded, returns a list).

        Keyword arguments are the ``SamplingParams`` (``do_sample``, ``temperature``, ``top_k``, ``top_p``,
        ``seed``) and ``stop`` (a string or list: unconstrained output ends before the first one). Raises ``IncompleteOutputError`` if ``max_new_tokens`` runs out before a constrained
        output is complete (the partial texts are on the exception).
        """
        prompts, is_batch = _normalize_prompts(prompt)
        if self.is_blackbox:
            return self._blackbox_call(prompts, is_batch, max_new_tokens, sampling)
        outputs = generate(self.model, prompts, [self.index] * len(prompts), max_new_tokens, **sampling)
        return outputs if is_batch else outputs[0]

    def _blackbox_call(self, prompts, is_batch, max_new_tokens, sampling):
        # The backend builds the requests; with an async client these are coroutines for the caller to await.
        if is_batch:
            return self.model.generate_batch(prompts, self.output_type, max_new_tokens=max_new_tokens, **sampling)
        return self.model.generate(prompts[0], self.output_type, max_new_tokens=max_new_tokens, **sampling)

    def batch(self, prompts: Sequence, max_new_tokens: int = 256, **sampling) -> list[str]:
        """Like calling with a list of prompts; always returns a list (a single ``str`` is one prompt)."""
        prompts, _ = _normalize_prompts([prompts] if isinstance(prompts, str) else list(prompts))
        if self.is_blackbox:
            return self._blackbox_call(prompts, True, max_new_tokens, sampling)
        return generate(self.model, prompts, [self.index] * len(prompts), max_new_tokens, **sampling)

    def stream(self, prompt, max_new_tokens: int = 256, **sampling) -> Iterator[str]:
        """Yield the output of one prompt piece by piece as it is generated.

        Bytes are decoded incrementally: a multi-byte character split across tokens is yielded once
        complete, never broken. The pieces concatenate to what ``__call__`` returns for the same arguments.
        Raises ``IncompleteOutputError`` at the end if ``max_new_tokens`` ran out before the constrained
        output was complete.
        """
        prompts, is_batch = _normalize_prompts(prompt)
        if is_batch:
            raise ValueError("stream() takes one prompt; call the generator with a list for a batch")
        if self.is_blackbox:
            # An async model gives an async iterator: ``async for piece in generator.stream(...)``.
            return self.model.generate_stream(prompts[0], self.output_type, max_new_tokens=max_new_tokens, **sampling)
        return self._stream(prompts, max_new_tokens, sampling)

    # -- async: one API for every model. Async black-box clients are awaited; a steerable model (or a
    # synchronous client) runs in a worker thread, one decode at a time per model, so the event loop stays
    # free while it computes. --
    async def acall(self, prompt, max_new_tokens: int = 256, **sampling):
        """``await generator.acall(prompt)``: what calling returns, without blocking the event loop."""
        if self.is_blackbox and self.model.is_async:
            return await self(prompt, max_new_tokens, **sampling)
        return await _in_thread(self.model, lambda: self(prompt, max_new_tokens, **sampling))

    async def abatch(self, prompts: Sequence, max_new_tokens: int = 256, **sampling) -> list[str]:
        """``await generator.abatch(prompts)``: what ``batch`` returns, without blocking the event loop."""
        if self.is_blackbox and self.model.is_async:
            return await self.batch(prompts, max_new_tokens, **sampling)
        return await _in_thread(self.model, lambda: self.batch(prompts, max_new_tokens, **sampling))

    async def astream(self, prompt, max_new_tokens: int = 256, **sampling):
        """``async for piece in generator.astream(prompt)``: the pieces of ``stream``; each step of a
        steerable model's decode runs in a worker thread."""
        import asyncio

        pieces = self.stream(prompt, max_new_tokens, **sampling)
        if hasattr(pieces, "__aiter__"):
            async for piece in pieces:
                yield piece
            return
        done = object()
        lock = _model_lock(self.model)
        loop = asyncio.get_running_loop()

        def step():
            with lock:  # the model runs one decode at a time; other steps wait between ours
                return next(pieces, done)

        while (piece := await loop.run_in_executor(None, step)) is not done:
            yield piece

    def _stream(self, prompts, max_new_tokens, sampling) -> Iterator[str]:
        stop, sampling = _split_stop(sampling, [self.index])
        params = SamplingParams.from_kwargs(sampling)
        vocabulary = self.model.vocabulary
        errors = "strict" if self.index is not None else "replace"
        decoder = codecs.getincrementaldecoder("utf-8")(errors=errors)
        processor_box: list[GuidedLogitsProcessor] = []
        emitted: list[str] = []
        if stop:
            yield from self._stream_with_stop(prompts, max_new_tokens, params, stop, decoder)
            return
        for row_tokens in _decode(self.model, prompts, [self.index], max_new_tokens, params, processor_box):
            piece = decoder.decode(vocabulary.decode(row_tokens[0]))
            if piece:
                emitted.append(piece)
                yield piece
        guide = processor_box[0].guides[0]
        if guide is not None and not guide.is_accepting():
            decoder.errors = "replace"
            partial = "".join(emitted) + decoder.decode(b"", final=True)
            raise _incomplete([partial], [0], max_new_tokens)
        tail = decoder.decode(b"", final=True)
        if tail:
            yield tail

    def _stream_with_stop(self, prompts, max_new_tokens, params, stop, decoder) -> Iterator[str]:
        # Hold back a tail that could still become a stop string; the pieces join to the call's text.
        vocabulary = self.model.vocabulary
        hold = max(len(s) for s in stop) - 1
        text, sent = "", 0
        for row_tokens in _decode(self.model, prompts, [None], max_new_tokens, params, None, stop):
            text += decoder.decode(vocabulary.decode(row_tokens[0]))
            cut, stopped = _cut_at_stop(text, stop)
            upto = len(cut) if stopped else max(sent, len(text) - hold)
            if upto > sent:
                yield text[sent:upto]
                sent = upto
            if stopped:
                return
        text += decoder.decode(b"", final=True)
        if len(text) > sent:
            yield text[sent:]


_MODEL_LOCKS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


class _NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _model_lock(model):
    """One lock per steerable model: concurrent decodes on one model would only fight over the same cores
    (and interleave on its device). Black-box requests need none: the server batches them."""
    if getattr(model, "is_blackbox", False):
        return _NoLock()
    with _INDEX_CACHE_LOCK:
        lock = _MODEL_LOCKS.get(model)
        if lock is None:
            lock = _MODEL_LOCKS[model] = threading.Lock()
        return lock


async def _in_thread(model, work):
    import asyncio

    lock = _model_lock(model)

    def locked():
        with lock:
            return work()

    return await asyncio.get_running_loop().run_in_executor(None, locked)


def _split_stop(sampling: dict, indexes) -> tuple[tuple[str, ...], dict]:
    """Take ``stop`` out of the sampling keywords. Stop strings end unconstrained rows only: a constraint
    decides where its output ends, and cutting it at a stop string would return text that does not match."""
    sampling = dict(sampling)
    stop = sampling.pop("stop", None)
    if stop is None:
        return (), sampling
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, (list, tuple)) or not stop or not all(isinstance(s, str) and s for s in stop):
        raise ValueError(f"stop must be a non-empty string or a list of them, got {stop!r}")
    if any(index is not None for index in indexes):
        raise ValueError(
            "stop strings apply to unconstrained generation only: a constrained output ends where its "
            "constraint is complete (cutting it at a stop string would break the shape)"
        )
    return tuple(stop), sampling


def _cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    positions = [p for p in (text.find(s) for s in stop) if p >= 0]
    return (text[: min(positions)], True) if positions else (text, False)


def _incomplete(outputs: list[str], rows: list[int], max_new_tokens: int) -> IncompleteOutputError:
    return IncompleteOutputError(
        f"max_new_tokens={max_new_tokens} ran out before the output of row(s) {rows} matched the constraint; "
        "raise max_new_tokens (the partial outputs are in the exception's .outputs)",
        outputs,
        rows,
    )


def generate(model, prompts: list, indexes: list[Index | None], max_new_tokens: int = 256, **sampling) -> list[str]:
    """Generate one output per prompt, row ``i`` constrained by ``indexes[i]`` (``None``: free text).

    Rows may have different constraints: ``generate(model, prompts, [index_for(t, model.vocabulary) for t
    in output_types])``. Sampling keywords as for ``Generator``. Raises ``IncompleteOutputError`` when a
    constrained row is not complete after ``max_new_tokens`` tokens.
    """
    if len(prompts) != len(indexes):
        raise ValueError(f"{len(prompts)} prompts but {len(indexes)} constraints")
    stop, sampling = _split_stop(sampling, indexes)
    params = SamplingParams.from_kwargs(sampling)
    generated: list[list[int]] = [[] for _ in prompts]
    processor_box: list[GuidedLogitsProcessor] = []
    for step_tokens in _decode(model, prompts, indexes, max_new_tokens, params, processor_box, stop):
        for row, tokens in enumerate(step_tokens):
            generated[row].extend(tokens)
    vocabulary = model.vocabulary
    guides = processor_box[0].guides
    incomplete = [row for row, guide in enumerate(guides) if guide is not None and not guide.is_accepting()]
    # A complete match of a regex over text is valid UTF-8; free text cut by the limit may end mid-character.
    outputs = [
        vocabulary.decode(tokens).decode("utf-8", errors="strict" if guides[row] is not None and row not in incomplete else "replace")
        for row, tokens in enumerate(generated)
    ]
    if incomplete:
        raise _incomplete(outputs, incomplete, max_new_tokens)
    if stop:
        outputs = [_cut_at_stop(output, stop)[0] for output in outputs]
    return outputs


def _decode(model, prompts, indexes, max_new_tokens, params: SamplingParams, processor_box=None, stop=()):
    """The decode loop. Yields, per step, each row's newly generated content tokens (EOS excluded); a row
    whose text contains one of ``stop`` ends there (the caller cuts the text)."""
    import torch

    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, numbers.Integral) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    vocabulary = model.vocabulary
    eos = set(vocabulary.eos_token_ids)
    processor = GuidedLogitsProcessor(indexes, tensor_library="torch")
    if processor_box is not None:
        processor_box.append(processor)
    done = [False] * len(prompts)
    texts = [b""] * len(prompts)
    stop_bytes = [s.encode("utf-8") for s in stop]
    session = model.start([model.encode(prompt) for prompt in prompts])
    sampling = params.sampling
    # One generator per row, each seeded alike: a row samples what it would alone (as the server's rows do).
    rngs = None
    pad = int(vocabulary.eos_token_ids[0])
    for _ in range(int(max_new_tokens)):
        logits = session.logits()
        processor.process_logits(logits)
        mask_padding_ids(logits, vocabulary)
        if sampling and rngs is None and params.seed is not None:
            rngs = [torch.Generator(device=logits.device).manual_seed(int(params.seed)) for _ in prompts]
        if not sampling:
            next_tokens = logits.argmax(dim=-1)
        elif rngs is None:
            next_tokens = _sample(logits, params, None)
        else:
            next_tokens = torch.cat([_sample(logits[row : row + 1], params, rng) for row, rng in enumerate(rngs)])
        tokens = next_tokens.tolist()
        step = []
        for row, token in enumerate(tokens):
            if done[row]:
                tokens[row] = pad  # finished rows keep feeding EOS; their guides only allow it anyway
                step.append([])
            elif token in eos:
                done[row] = True
                step.append([])
            else:
                step.append([token])
                if stop:
                    texts[row] += vocabulary.token_bytes(token) or b""
                    if any(s in texts[row] for s in stop_bytes):
                        done[row] = True
        processor.advance(tokens)
        for row, guide in enumerate(processor.guides):
            if guide is not None and guide.is_finished():
                done[row] = True  # complete and nothing can extend it: no need to spend a step on EOS
        yield step
        if all(done):
            return
        session.append(torch.tensor(tokens, dtype=torch.long))


def mask_padding_ids(logits, vocabulary: Vocabulary) -> None:
    """Logits wider than the vocabulary (a model's padded embeddings) never pick the extra ids, in any row:
    the constrained rows' masks leave them out, and this does for the unconstrained ones too."""
    if logits.shape[-1] > vocabulary.size:
        logits[:, vocabulary.size :] = float("-inf")


def _sample(logits, params: SamplingParams, rng):
    import torch

    scores = logits.double()  # a temperature like 1e-300 is 0 in float32
    if params.temperature is not None and params.temperature != 1:
        # From the best score down: a tiny temperature then sends the others to -inf, not inf - inf = nan.
        scores = (scores - scores.max(dim=-1, keepdim=True).values) / params.temperature
    if params.top_k is not None and params.top_k < scores.shape[-1]:
        threshold = torch.topk(scores, params.top_k, dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < threshold, float("-inf"))
    if params.top_p is not None and params.top_p < 1:
        sorted_scores, order = torch.sort(scores, descending=True, dim=-1)
        probabilities = sorted_scores.softmax(dim=-1)
        # Drop a token when the tokens ranked above it already reach top_p (the top token always stays).
        drop = probabilities.cumsum(dim=-1) - probabilities >= params.top_p
        sorted_scores = sorted_scores.masked_fill(drop, float("-inf"))
        scores = torch.full_like(scores, float("-inf")).scatter(-1, order, sorted_scores)
    return torch.multinomial(scores.softmax(dim=-1), 1, generator=rng).reshape(-1)
