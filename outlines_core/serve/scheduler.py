"""Batches concurrent generation requests on one steerable model, with requests joining a running batch.

Requests queue up. When the scheduler thread is idle, it takes the first request and every other one that
arrives within ``window_ms`` (up to ``max_batch``) and starts one batch. While that batch decodes, newly
queued requests join it at the next step boundary (continuous batching): they are prefilled as a small batch
of their own, take their first token, and their KV cache is merged into the running one (left-padded to the
same length, the padding masked out). Every row has its own constraint (one ``GuidedLogitsProcessor`` masks
the batch in a single bitmask fill and apply per step), its own sampling parameters (and seed), stop strings
and token limit. A row that finishes (EOS, a complete constraint, a stop string, its token limit) or whose
client went away (``Request.cancel()``) leaves the batch at the next step, so it costs nothing more.

Each request gets its text as it is generated, through its ``on_piece`` callback (incremental UTF-8
decoding, so a character split across tokens is sent whole), then one ``on_done(text, finish_reason,
tokens)`` call. Callbacks run on the scheduler thread: they must be quick (the app hands them to the event
loop).

Joining a running batch needs a session whose KV cache can be merged: the transformers backend's
``TransformersSession`` with a ``DynamicCache`` of full-attention layers (``merge_sessions``). Other
sessions (llama.cpp) are batched per window: requests arriving during a batch wait for the next one.
"""

from __future__ import annotations

import codecs
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from ..generator import SamplingParams, _sample, mask_padding_ids
from ..processors import GuidedLogitsProcessor


@dataclass
class Request:
    """One generation. ``index`` is the compiled constraint (``generator.index_for``) or ``None``."""

    prompt_ids: list[int]
    index: object | None
    max_tokens: int = 256
    params: SamplingParams = field(default_factory=SamplingParams)
    stop: tuple[str, ...] = ()
    on_piece: Callable[[str], None] = lambda piece: None
    on_done: Callable[[str, str, int], None] = lambda text, finish_reason, tokens: None
    cancelled: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        self.cancelled.set()


class _Row:
    """Decode state of one request inside a batch."""

    def __init__(self, request: Request) -> None:
        self.request = request
        seed = request.params.seed
        self.rng = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        self.guide = None if request.index is None else request.index.make_guide()
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""
        self.emitted = 0  # characters of ``text`` already sent (stop strings may hold some back)
        self.tokens = 0
        self.done = False
        self.finish_reason = "length"
        self.cut = False  # the text was cut at a stop string (the decoder's remainder is past the cut)

    def add(self, data: bytes) -> None:
        self.text += self.decoder.decode(data)
        stop = self.request.stop
        if stop:
            start = max(0, self.emitted - max(len(s) for s in stop))
            cut = min((p for p in (self.text.find(s, start) for s in stop) if p >= 0), default=-1)
            if cut >= 0:
                self.text = self.text[:cut]
                self.cut = True
                self._flush(len(self.text))
                self.finish("stop")
                return
            # Hold back a tail that could still become a stop string.
            keep = max(len(s) - 1 for s in stop)
            self._flush(max(self.emitted, len(self.text) - keep))
        else:
            self._flush(len(self.text))

    def _flush(self, upto: int) -> None:
        if upto > self.emitted:
            self.request.on_piece(self.text[self.emitted : upto])
            self.emitted = upto

    def finish(self, reason: str) -> None:
        if self.done:
            return
        if not self.cut:
            self.text += self.decoder.decode(b"", final=True)
        self._flush(len(self.text))
        self.done = True
        self.finish_reason = reason
        self.request.on_done(self.text, reason, self.tokens)


def can_merge(session) -> bool:
    """Whether ``merge_sessions`` can take ``session``: a transformers session over a dynamic cache of
    full-attention layers (a sliding-window or recurrent cache cannot be left-padded this way)."""
    try:
        from backends.transformers import TransformersSession
        from transformers.cache_utils import DynamicCache, DynamicLayer
    except ImportError:  # pragma: no cover - the transformers backend is not installed
        return False
    if not isinstance(session, TransformersSession):
        return False
    past = session._past
    return isinstance(past, DynamicCache) and all(type(layer) is DynamicLayer and layer.is_initialized for layer in past.layers)


def merge_sessions(running, joining) -> None:
    """Append the rows of ``joining`` to ``running`` (both transformers sessions, both just after
    ``append``: a cache of past tokens plus one pending token per row). The shorter cache is left-padded
    with masked zeros, so each row attends to exactly its own tokens and keeps its own positions."""

    def pad_left(tensor: torch.Tensor, amount: int, dim: int) -> torch.Tensor:
        if amount == 0:
            return tensor
        shape = list(tensor.shape)
        shape[dim] = amount
        return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)

    a, b = running._past, joining._past
    length_a, length_b = a.get_seq_length(), b.get_seq_length()
    length = max(length_a, length_b)
    for layer_a, layer_b in zip(a.layers, b.layers):
        layer_a.keys = torch.cat([pad_left(layer_a.keys, length - length_a, -2), pad_left(layer_b.keys, length - length_b, -2)])
        layer_a.values = torch.cat([pad_left(layer_a.values, length - length_a, -2), pad_left(layer_b.values, length - length_b, -2)])
    running._attention = torch.cat(
        [pad_left(running._attention, length - length_a, 1), pad_left(joining._attention, length - length_b, 1)]
    )
    running._positions = torch.cat([running._positions, joining._positions])
    running._input_ids = torch.cat([running._input_ids, joining._input_ids])


class _Batch:
    """A running session and its rows, in session order."""

    def __init__(self, model, requests: list[Request]) -> None:
        self.model = model
        self.rows = [_Row(request) for request in requests]
        self.session = model.start([request.prompt_ids for request in requests])
        self.can_shrink = hasattr(self.session, "keep")
        self.processor = GuidedLogitsProcessor([row.guide for row in self.rows], tensor_library="torch")
        self.stepped = False

    def set_rows(self, rows: list[_Row]) -> None:
        self.rows = rows
        # A fresh processor over the same guide objects: they carry each row's constraint state.
        self.processor = GuidedLogitsProcessor([row.guide for row in rows], tensor_library="torch")

    def compact(self) -> bool:
        """Drop finished rows from the session; False when none is left."""
        live = [position for position, row in enumerate(self.rows) if not row.done]
        if not live:
            return False
        if len(live) < len(self.rows):
            if self.can_shrink:
                self.session.keep(live)
                self.set_rows([self.rows[position] for position in live])
            else:
                # No way to drop a row: it takes padding, whatever its constraint.
                for position, row in enumerate(self.rows):
                    if row.done:
                        self.processor.guides[position] = None
        return True

    def step(self) -> None:
        """One token for every live row: logits, masks, sampling, text, stop conditions, then ``append``."""
        vocabulary = self.model.vocabulary
        eos = set(vocabulary.eos_token_ids)
        pad = int(vocabulary.eos_token_ids[0])
        logits = self.session.logits()
        mask_padding_ids(logits, vocabulary)
        self.processor.process_logits(logits)
        greedy = None
        tokens = []
        for position, row in enumerate(self.rows):
            if row.done:
                tokens.append(pad)
                continue
            params = row.request.params
            if params.sampling:
                tokens.append(int(_sample(logits[position : position + 1], params, row.rng)[0]))
            else:
                if greedy is None:
                    greedy = logits.argmax(dim=-1).tolist()
                tokens.append(greedy[position])
        self.processor.advance(tokens)
        for position, row in enumerate(self.rows):
            if row.done:
                continue
            token = tokens[position]
            if token in eos:
                row.finish("stop")
                continue
            row.tokens += 1
            row.add(vocabulary.token_bytes(token) or b"")
            if row.done:
                continue
            if row.guide is not None and row.guide.is_finished():
                row.finish("stop")  # complete and nothing can extend it: no step spent on EOS
            elif row.tokens >= row.request.max_tokens:
                row.finish("length")
        self.session.append(torch.tensor(tokens, dtype=torch.long))
        self.stepped = True

    def cancel_abandoned(self) -> int:
        """Finish the rows whose client went away; how many there were."""
        abandoned = [row for row in self.rows if not row.done and row.request.cancelled.is_set()]
        for row in abandoned:
            row.finish("cancelled")
        return len(abandoned)

    def fail(self, error: Exception) -> None:
        for row in self.rows:
            if not row.done:
                row.done = True
                row.request.on_done(row.text, f"error: {type(error).__name__}: {error}", row.tokens)


class BatchingEngine:
    """Runs ``Request``s on ``model`` in batches of up to ``max_batch`` rows: the first batch collected for
    ``window_ms``, later requests joining it while it runs (when the session allows, see the module doc)."""

    def __init__(self, model, max_batch: int = 16, window_ms: float = 5.0, continuous: bool = True) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if window_ms < 0:
            raise ValueError(f"window_ms must be >= 0, got {window_ms}")
        self.model = model
        self.max_batch = int(max_batch)
        self.window = float(window_ms) / 1000
        self.continuous = bool(continuous)
        self._queue: "queue.Queue[Request | None]" = queue.Queue()
        self._stopping = False
        # Statistics, for tests and benchmarks.
        self.batches_run = 0  # batches started from an idle engine
        self.largest_batch = 0  # most rows decoded together in one step
        self.joined = 0  # requests that joined a running batch
        self.cancelled = 0  # rows freed because their client went away
        self._thread = threading.Thread(target=self._run, name="outlines-batching", daemon=True)
        self._thread.start()

    def submit(self, request: Request) -> Request:
        if self._stopping or not self._thread.is_alive():
            raise RuntimeError("the batching engine has stopped")
        self._queue.put(request)
        return request

    def close(self) -> None:
        self._stopping = True
        self._queue.put(None)
        self._thread.join(timeout=30)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- worker --------------------------------------------------------------------------------------
    def _take(self, limit: int, wait: float) -> list[Request]:
        """Up to ``limit`` queued requests, waiting at most ``wait`` seconds for them; cancelled ones are
        answered and skipped."""
        taken: list[Request] = []
        deadline = time.monotonic() + wait
        while len(taken) < limit:
            remaining = deadline - time.monotonic()
            try:
                request = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if request is None:
                self._stopping = True
                break
            if request.cancelled.is_set():
                request.on_done("", "cancelled", 0)
                continue
            taken.append(request)
        return taken

    def _run(self) -> None:
        while not self._stopping:
            first = self._queue.get()
            if first is None:
                return
            if first.cancelled.is_set():
                first.on_done("", "cancelled", 0)
                continue
            requests = [first] + self._take(self.max_batch - 1, self.window)
            batch = None
            try:
                batch = _Batch(self.model, requests)
                self.batches_run += 1
                self._decode(batch)
            except Exception as error:  # a failure ends its batch, never the server
                if batch is None:
                    for request in requests:
                        request.on_done("", f"error: {type(error).__name__}: {error}", 0)
                else:
                    batch.fail(error)
        # Answer whatever is still queued so no client waits forever.
        while True:
            try:
                request = self._queue.get_nowait()
            except queue.Empty:
                return
            if request is not None:
                request.on_done("", "error: RuntimeError: the server is shutting down", 0)

    def _decode(self, batch: _Batch) -> None:
        while True:
            self.cancelled += batch.cancel_abandoned()
            if not batch.compact():
                return
            self.largest_batch = max(self.largest_batch, sum(not row.done for row in batch.rows))
            batch.step()
            if self.continuous and not self._stopping:
                self._admit(batch)

    def _admit(self, batch: _Batch) -> None:
        """Let queued requests join ``batch`` (after its ``append``): prefill them as a batch of their own,
        take their first token, then merge their cache into the running one."""
        room = self.max_batch - sum(not row.done for row in batch.rows)
        if room <= 0 or self._queue.empty() or not can_merge(batch.session):
            return
        joiners = self._take(room, 0)
        if not joiners:
            return
        try:
            joining = _Batch(self.model, joiners)
        except Exception as error:  # the joiners' prefill failed: they alone are answered, the batch goes on
            for request in joiners:
                request.on_done("", f"error: {type(error).__name__}: {error}", 0)
            return
        try:
            joining.step()
        except Exception as error:
            joining.fail(error)
            return
        self.cancelled += joining.cancel_abandoned()
        if not joining.compact():
            return  # every joiner finished on its first token
        if not can_merge(joining.session):  # pragma: no cover - same model, same cache type
            joining.fail(RuntimeError("could not merge a new request into the running batch"))
            return
        merge_sessions(batch.session, joining.session)
        batch.set_rows(batch.rows + joining.rows)
        self.joined += len(joiners)
