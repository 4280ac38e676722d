"""Batches concurrent generation requests on one steerable model.

Requests queue up; a worker thread takes every request that arrives within a short window (up to
``max_batch``) and decodes them as one batch, each row with its own constraint (one ``GuidedLogitsProcessor``
masks the batch in a single bitmask fill and apply per step), its own sampling parameters, stop strings and
token limit. Each request gets its text as it is generated, through its ``on_piece`` callback, then one
``on_done`` call. A cancelled request (a client that went away) stops costing anything at the next step: its
row is treated as finished. Requests arriving while a batch runs wait for the next batch: the KV cache of a
running batch cannot take new rows, so this is batching per window, not continuous batching.
"""

from __future__ import annotations

import codecs
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from ..generator import SamplingParams, _sample
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

    def __init__(self, request: Request, rng: torch.Generator | None) -> None:
        self.request = request
        self.rng = rng
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""
        self.emitted = 0  # characters of ``text`` already sent (stop strings may hold some back)
        self.tokens = 0
        self.done = False
        self.finish_reason = "length"

    def add(self, data: bytes) -> None:
        self.text += self.decoder.decode(data)
        stop = self.request.stop
        if stop:
            cut = min((p for p in (self.text.find(s, max(0, self.emitted - len(s))) for s in stop) if p >= 0), default=-1)
            if cut >= 0:
                self.text = self.text[:cut]
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
        self.text += self.decoder.decode(b"", final=True)
        self._flush(len(self.text))
        self.done = True
        self.finish_reason = reason
        self.request.on_done(self.text, reason, self.tokens)


class BatchingEngine:
    """Runs ``Request``s on ``model`` in batches of up to ``max_batch``, collected for ``window_ms``."""

    def __init__(self, model, max_batch: int = 16, window_ms: float = 5.0) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.model = model
        self.max_batch = int(max_batch)
        self.window = float(window_ms) / 1000
        self._queue: "queue.Queue[Request | None]" = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="outlines-batching", daemon=True)
        self._thread.start()
        self.batches_run = 0
        self.largest_batch = 0

    def submit(self, request: Request) -> Request:
        if not self._thread.is_alive():
            raise RuntimeError("the batching engine has stopped")
        self._queue.put(request)
        return request

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    # -- worker --------------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.window
            while len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    request = self._queue.get(timeout=max(remaining, 0)) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if request is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(request)
            batch = [r for r in batch if not r.cancelled.is_set()]
            if not batch:
                continue
            self.batches_run += 1
            self.largest_batch = max(self.largest_batch, len(batch))
            try:
                self._decode(batch)
            except Exception as error:  # a failure ends its batch, never the server
                for request in batch:
                    request.on_done("", f"error: {type(error).__name__}: {error}", 0)

    def _decode(self, batch: list[Request]) -> None:
        model = self.model
        vocabulary = model.vocabulary
        eos = set(vocabulary.eos_token_ids)
        pad = int(vocabulary.eos_token_ids[0])
        rows = []
        for request in batch:
            seed = request.params.seed
            rng = torch.Generator().manual_seed(int(seed)) if seed is not None else None
            rows.append(_Row(request, rng))
        guides = [None if r.index is None else r.index.make_guide() for r in batch]
        session = model.start([r.prompt_ids for r in batch])
        can_shrink = hasattr(session, "keep")
        live = list(range(len(rows)))  # batch rows still in the session, in session order
        processor = GuidedLogitsProcessor([guides[i] for i in live], tensor_library="torch")
        for step in range(max(r.max_tokens for r in batch)):
            for row in rows:
                if not row.done and (row.request.cancelled.is_set() or row.tokens >= row.request.max_tokens):
                    row.finish("cancelled" if row.request.cancelled.is_set() else "length")
            if all(row.done for row in rows):
                return
            if can_shrink and any(rows[i].done for i in live) and step > 0:
                # Finished rows leave the session: the next steps compute only the live ones.
                kept = [position for position, i in enumerate(live) if not rows[i].done]
                session.keep(kept)
                live = [live[position] for position in kept]
                processor = GuidedLogitsProcessor([guides[i] for i in live], tensor_library="torch")
            else:
                for position, i in enumerate(live):
                    if rows[i].done:
                        processor.guides[position] = None  # a finished row takes padding, whatever its constraint
            logits = session.logits()
            processor.process_logits(logits)
            greedy = logits.argmax(dim=-1).tolist()
            tokens = []
            for position, i in enumerate(live):
                row = rows[i]
                if row.done:
                    tokens.append(pad)
                    continue
                params = row.request.params
                token = int(_sample(logits[position : position + 1], params, row.rng)[0]) if params.sampling else greedy[position]
                tokens.append(token)
            processor.advance(tokens)
            for position, i in enumerate(live):
                row = rows[i]
                if row.done:
                    continue
                token = tokens[position]
                if token in eos:
                    row.finish("stop")
                    continue
                row.tokens += 1
                row.add(vocabulary.token_bytes(token) or b"")
                guide = processor.guides[position]
                if not row.done and guide is not None and guide.is_finished():
                    row.finish("stop")
            session.append(torch.tensor(tokens, dtype=torch.long))
        for row in rows:
            row.finish("length")
