"""``Generator(model, output_type)``: constrained generation with a steerable model.

The generator compiles the output type once (Index objects are cached per regex and vocabulary), then runs
its own decode loop: model logits -> bitmask from each row's guide -> sampling -> advance. Output text is
the vocabulary's bytes of the generated tokens, i.e. exactly what the guide matched.

A model is anything with ``vocabulary`` (a ``Vocabulary``), ``encode(prompt) -> list[int]`` and
``start(prompts_ids) -> session`` where the session has ``logits() -> torch.Tensor (batch, vocab)`` and
``append(token_ids)``; ``backends.transformers.from_transformers`` builds one.
"""

from __future__ import annotations

import codecs
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterator, Sequence

from .errors import IncompleteOutputError
from .index import Index
from .processors import GuidedLogitsProcessor
from .vocabulary import Vocabulary

_INDEX_CACHE: "OrderedDict[tuple[str, str], Index]" = OrderedDict()
_INDEX_CACHE_LOCK = threading.Lock()
INDEX_CACHE_SIZE = 64


def cached_index(regex: str, vocabulary: Vocabulary) -> Index:
    """The Index of ``regex`` for ``vocabulary``, shared by every generator (LRU of ``INDEX_CACHE_SIZE``)."""
    key = (regex, vocabulary.fingerprint)
    with _INDEX_CACHE_LOCK:
        index = _INDEX_CACHE.get(key)
        if index is not None:
            _INDEX_CACHE.move_to_end(key)
            return index
    index = Index(regex, vocabulary)
    with _INDEX_CACHE_LOCK:
        _INDEX_CACHE[key] = index
        while len(_INDEX_CACHE) > INDEX_CACHE_SIZE:
            _INDEX_CACHE.popitem(last=False)
    return index


def index_for(output_type, vocabulary: Vocabulary) -> Index | None:
    """The Index enforcing ``output_type`` (``None``: unconstrained)."""
    if output_type is None:
        return None
    from .types import to_regex

    return cached_index(to_regex(output_type), vocabulary)


@dataclass(frozen=True)
class SamplingParams:
    """``do_sample=False`` is greedy decoding; otherwise multinomial sampling from the masked logits with
    ``temperature``, then ``top_k`` / ``top_p`` filtering; ``seed`` makes sampling reproducible."""

    do_sample: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature} (use do_sample=False for greedy)")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


def _is_chat(prompt) -> bool:
    return isinstance(prompt, Sequence) and not isinstance(prompt, str) and bool(prompt) and all(
        isinstance(message, dict) for message in prompt
    )


def _normalize_prompts(prompt) -> tuple[list, bool]:
    """(list of single prompts, whether the caller passed a batch)."""
    if isinstance(prompt, str) or _is_chat(prompt):
        return [prompt], False
    if isinstance(prompt, Sequence) and prompt:
        return list(prompt), True
    raise TypeError(
        "prompt must be a str, a list of chat messages, or a non-empty list of those for a batch; got "
        f"{type(prompt).__name__}"
    )


class Generator:
    """Generate text that satisfies ``output_type`` with ``model``.

    Parameters
    ----------
    model:
        A steerable model, e.g. ``backends.transformers.from_transformers(hf_model, hf_tokenizer)`` or
        ``backends.transformers.load_default_model()``.
    output_type:
        ``None`` for unconstrained text, or an output type such as ``outlines_core.types.Regex(pattern)``.
        Compiled once, here: a bad regex fails at construction, not mid-generation.
    """

    def __init__(self, model, output_type=None) -> None:
        for attribute in ("vocabulary", "encode", "start"):
            if not hasattr(model, attribute):
                raise TypeError(
                    f"{type(model).__name__} is not a steerable model (no {attribute!r}); wrap a transformers "
                    "model with backends.transformers.from_transformers(model, tokenizer)"
                )
        self.model = model
        self.output_type = output_type
        self.index = index_for(output_type, model.vocabulary)

    def __call__(self, prompt, max_new_tokens: int = 256, **sampling) -> str | list[str]:
        """Generate for one prompt (a str or a list of chat messages) or a list of prompts (a batch).

        Keyword arguments are ``SamplingParams`` (``do_sample``, ``temperature``, ``top_k``, ``top_p``,
        ``seed``). Raises ``IncompleteOutputError`` if ``max_new_tokens`` runs out before a constrained
        output is complete (the partial texts are on the exception).
        """
        prompts, is_batch = _normalize_prompts(prompt)
        outputs = generate(self.model, prompts, [self.index] * len(prompts), max_new_tokens, **sampling)
        return outputs if is_batch else outputs[0]

    def batch(self, prompts: Sequence, max_new_tokens: int = 256, **sampling) -> list[str]:
        return generate(self.model, list(prompts), [self.index] * len(prompts), max_new_tokens, **sampling)

    def stream(self, prompt, max_new_tokens: int = 256, **sampling) -> Iterator[str]:
        """Yield the output of one prompt piece by piece; a multi-byte character split across tokens is
        yielded once complete. The concatenation equals what ``__call__`` returns."""
        prompts, is_batch = _normalize_prompts(prompt)
        if is_batch:
            raise ValueError("stream() takes one prompt; call the generator with a list for a batch")
        decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
        vocabulary = self.model.vocabulary
        steps = _decode(self.model, prompts, [self.index], max_new_tokens, SamplingParams(**sampling))
        for row_tokens in steps:
            piece = decoder.decode(vocabulary.decode(row_tokens[0]))
            if piece:
                yield piece
        tail = decoder.decode(b"", final=True)
        if tail:
            yield tail


def generate(model, prompts: list, indexes: list[Index | None], max_new_tokens: int = 256, **sampling) -> list[str]:
    """Generate one output per prompt, row ``i`` constrained by ``indexes[i]`` (``None``: free text).

    Rows may have different constraints; this is what ``Generator`` calls, and what to call for a batch of
    different output types: ``generate(model, prompts, [index_for(t, model.vocabulary) for t in types])``.
    """
    if len(prompts) != len(indexes):
        raise ValueError(f"{len(prompts)} prompts but {len(indexes)} constraints")
    generated: list[list[int]] = [[] for _ in prompts]
    processor_box: list[GuidedLogitsProcessor] = []
    for step_tokens in _decode(model, prompts, indexes, max_new_tokens, SamplingParams(**sampling), processor_box):
        for row, tokens in enumerate(step_tokens):
            generated[row].extend(tokens)
    vocabulary = model.vocabulary
    processor = processor_box[0]
    incomplete = [
        row for row, guide in enumerate(processor.guides) if guide is not None and not guide.is_accepting()
    ]
    outputs = [vocabulary.decode(tokens).decode("utf-8", errors="replace" if row in incomplete else "strict")
               for row, tokens in enumerate(generated)]
    if incomplete:
        raise IncompleteOutputError(
            f"max_new_tokens={max_new_tokens} ran out before the output of row(s) {incomplete} matched the "
            "constraint; raise max_new_tokens (partial outputs are in the exception's .outputs)",
            outputs,
            incomplete,
        )
    return outputs


def _decode(model, prompts, indexes, max_new_tokens, params: SamplingParams, processor_box=None):
    """The decode loop. Yields, per step, each row's newly committed content tokens (EOS excluded)."""
    import torch

    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    vocabulary = model.vocabulary
    processor = GuidedLogitsProcessor(indexes, tensor_library="torch")
    if processor_box is not None:
        processor_box.append(processor)
    done = [False] * len(prompts)
    session = model.start([model.encode(prompt) for prompt in prompts])
    generator = None
    if params.do_sample and params.seed is not None:
        generator = torch.Generator().manual_seed(params.seed)
    pad = int(vocabulary.eos_token_ids[0])
    for _ in range(max_new_tokens):
        logits = session.logits().cpu()
        processor.process_logits(logits)
        next_tokens = _sample(logits, params, generator)
        step = []
        for row, token in enumerate(next_tokens.tolist()):
            if done[row]:
                next_tokens[row] = pad
                step.append([])
                continue
            if token in vocabulary.eos_token_ids:
                done[row] = True
                step.append([])
            else:
                step.append([token])
        processor.advance(next_tokens)
        for row, guide in enumerate(processor.guides):
            if guide is not None and guide.is_finished():
                done[row] = True  # complete and nothing can extend it: no need to sample EOS
        yield step
        if all(done):
            return
        session.append(next_tokens)


def _sample(logits, params: SamplingParams, generator):
    import torch

    if not params.do_sample:
        return logits.argmax(dim=-1)
    scores = logits / params.temperature
    if params.top_k is not None and params.top_k < scores.shape[-1]:
        threshold = torch.topk(scores, params.top_k, dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < threshold, float("-inf"))
    if params.top_p is not None and params.top_p < 1:
        sorted_scores, order = torch.sort(scores, descending=True, dim=-1)
        cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative - sorted_scores.softmax(dim=-1) >= params.top_p  # keep the token crossing top_p
        sorted_scores = sorted_scores.masked_fill(drop, float("-inf"))
        scores = torch.full_like(scores, float("-inf")).scatter(-1, order, sorted_scores)
    probabilities = scores.softmax(dim=-1)
    return torch.multinomial(probabilities, 1, generator=generator).reshape(-1)
