"""What black-box backends share: servers that take the constraint as a request parameter and enforce it on
their side.

A black-box model has ``is_blackbox = True``, ``is_async``, ``native_format(output_type)`` (the request
parameters carrying the output type, or ``UnsupportedTypeError`` naming what the backend takes; ``Generator``
calls it once, at construction) and ``generate`` / ``generate_stream`` / ``generate_batch``
(coroutines and an async iterator when ``is_async``). ``Generator`` only dispatches to these.

Subclasses build one request (``request(prompt, output_type, **sampling)``: the client call's keyword
arguments) and send it: ``_send(request) -> (text, hit_limit)`` and ``_send_stream(request)`` yielding
``(piece, hit_limit)`` (``_asend`` / ``_asend_stream`` for async clients). The base
class turns a constrained answer cut by the token limit into ``IncompleteOutputError`` when the text is not
complete (``is_complete``), as steerable models do: a truncated JSON document is never returned as if it
matched.
"""

from __future__ import annotations

import functools
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from outlines_core.errors import IncompleteOutputError, OutlinesCoreError, UnsupportedTypeError

__all__ = [
    "AsyncBlackBoxModel",
    "BlackBoxModel",
    "RefusalError",
    "SAMPLING_KEYS",
    "as_messages",
    "json_schema_or_none",
]

#: Keyword arguments of ``Generator`` calls that black-box backends understand (each backend may take fewer).
SAMPLING_KEYS = ("max_new_tokens", "temperature", "top_p", "top_k", "seed", "stop")

#: ``json_schema_or_none`` returns this for the builtin ``dict``: any JSON object, the servers' "JSON mode".
ANY_JSON_OBJECT = {"type": "object"}


class RefusalError(OutlinesCoreError, RuntimeError):
    """The server declined to answer (OpenAI's ``refusal``): there is no output to return."""


def check_sampling(kwargs: dict, backend: str, supported=SAMPLING_KEYS) -> dict:
    """The sampling keywords without ``None`` values; a keyword the backend cannot send is a ``TypeError``."""
    unknown = sorted(set(kwargs) - set(supported))
    if unknown:
        raise TypeError(f"{backend} does not take {unknown}; it takes {list(supported)}")
    sampling = {k: v for k, v in kwargs.items() if v is not None}
    stop = sampling.get("stop")
    if stop is not None:
        stop = [stop] if isinstance(stop, str) else stop
        if not isinstance(stop, (list, tuple)) or not stop or not all(isinstance(s, str) and s for s in stop):
            raise ValueError(f"stop must be a non-empty string or a list of them, got {sampling['stop']!r}")
        sampling["stop"] = list(stop)
    return sampling


def as_messages(prompt) -> list[dict]:
    """A str prompt becomes one user message; a list of {"role", "content"} messages passes as is."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, Sequence) and prompt and all(isinstance(m, dict) and "role" in m for m in prompt):
        return [dict(m) for m in prompt]
    raise TypeError(f"a prompt must be a str or a list of {{'role', 'content'}} messages, got {type(prompt).__name__}")


def json_schema_or_none(output_type, backend: str, takes: str = "JSON Schema output types") -> dict | None:
    """The JSON Schema to send for ``output_type`` (``None``: plain text), or ``UnsupportedTypeError``.

    JSON Schemas (dict or JSON text), ``types.JsonSchema``, Pydantic models, dataclasses, ``TypedDict`` and
    other Python types with a JSON Schema form (``int``, ``list[str]``, ``Literal``...) are sent as schemas;
    the builtin ``dict`` (any JSON object) is ``ANY_JSON_OBJECT``. Regexes, grammars and ``Choice`` have no
    JSON Schema form, so servers that take only JSON Schema cannot enforce them."""
    from outlines_core.grammars import CFG
    from outlines_core.types import Choice, JsonSchema, Regex
    from outlines_core.types.python_types import json_schema_of, writes_bare_text

    if output_type is None:
        return None
    if isinstance(output_type, (Regex, CFG, Choice)):
        kind = {Regex: "a regex", CFG: "a context-free grammar (CFG)", Choice: "a Choice"}[type(output_type)]
        raise UnsupportedTypeError(
            f"{backend} takes only {takes}; {kind} cannot be sent to it. Use a steerable backend "
            "(transformers, llama.cpp), our server, or from_vllm_server, which accept regexes, grammars and choices"
        )
    if output_type is dict:
        return dict(ANY_JSON_OBJECT)
    if writes_bare_text(output_type):
        name = getattr(output_type, "__name__", None) or repr(output_type)
        raise UnsupportedTypeError(
            f"{backend}: {name} is written as bare text by steerable models (True, no, 2024-01-01), but a server "
            f"that takes JSON Schema answers in JSON (true, \"no\", \"2024-01-01\"); ask for JSON on every backend "
            f"with types.JsonSchema({name}) (parse_output reads it back)"
        )
    if isinstance(output_type, JsonSchema):
        output_type = output_type.schema
    if isinstance(output_type, str):
        try:
            output_type = json.loads(output_type)
        except json.JSONDecodeError:
            raise UnsupportedTypeError(
                f"{backend}: a str output type must be JSON Schema text (use types.Regex for a regex); "
                f"got {output_type[:40]!r}"
            ) from None
    if isinstance(output_type, dict):
        return output_type
    try:
        return json_schema_of(output_type)
    except Exception as error:  # the types module says why; keep its reason, name the backend
        raise UnsupportedTypeError(f"{backend}: {output_type!r} has no JSON Schema form ({error})") from error


def schema_name(output_type, schema: dict) -> str:
    """A name for the schema (OpenAI requires one): the class name, else the schema's title, else "output"."""
    for name in (getattr(output_type, "__name__", None), schema.get("title")):
        if isinstance(name, str) and name.isidentifier() and name != "dict":
            return name
    return "output"


@functools.lru_cache(maxsize=32)
def _lark_parser(definition: str, start: str):
    import lark

    return lark.Lark(definition, start=start, parser="earley")


def is_complete(output_type, text: str) -> bool:
    """Whether ``text`` is a complete output of ``output_type``: the server says only that it stopped on
    its token limit, and an output that stops there may still be complete (``12345678`` for an integer),
    as a steerable model's guide would tell. JSON types: the text parses as JSON (the schema itself is the
    server's to enforce); regexes: our own automaton; grammars: Lark; choices: one of the options."""
    from outlines_core.grammars import CFG
    from outlines_core.types import Choice, Regex

    if output_type is None:
        return True
    if isinstance(output_type, Choice):
        return text in output_type.options
    if isinstance(output_type, Regex):
        from outlines_core.regex.dfa import compile_dfa

        return compile_dfa(output_type.pattern).matches(text.encode("utf-8"))
    if isinstance(output_type, CFG):
        import lark

        try:
            _lark_parser(output_type.definition, output_type.start).parse(text)
            return True
        except lark.exceptions.LarkError:
            return False
    try:
        json.loads(text)
        return True
    except json.JSONDecodeError:
        return False


def _check_complete(backend: str, output_type, texts: list[str], hit_limit: list[bool], max_new_tokens) -> None:
    rows = [row for row, cut in enumerate(hit_limit) if cut and not is_complete(output_type, texts[row])]
    if rows:
        raise IncompleteOutputError(
            f"{backend}: max_new_tokens={max_new_tokens} ran out before the output of row(s) {rows} was "
            "complete (the server stopped on its token limit); raise max_new_tokens (the partial outputs "
            "are in the exception's .outputs)",
            texts,
            rows,
        )


class BlackBoxModel:
    """A model behind a client library (synchronous client)."""

    is_blackbox = True
    is_async = False
    backend = "black-box server"
    #: How many requests ``generate_batch`` has in flight at once (servers batch concurrent requests).
    max_concurrency = 8

    def __init__(self, client, model_name: str) -> None:
        if not isinstance(model_name, str) or not model_name:
            raise ValueError(f"{self.backend}: model_name must be a non-empty str, got {model_name!r}")
        self.client = client
        self.model_name = model_name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_name!r})"

    # -- what subclasses provide --
    def native_format(self, output_type) -> dict:
        """The request parameters carrying ``output_type``, or ``UnsupportedTypeError``."""
        raise NotImplementedError

    def request(self, prompt, output_type=None, **sampling) -> dict:
        """The client call's keyword arguments for one prompt (checks the prompt and the arguments)."""
        raise NotImplementedError

    def _send(self, request: dict) -> tuple[str, bool]:
        """One request: (text, whether the server stopped on its token limit)."""
        raise NotImplementedError

    def _send_stream(self, request: dict):
        """One streamed request: yields (piece, whether the server stopped on its token limit)."""
        raise NotImplementedError

    # -- what Generator calls. Requests are built eagerly, so a bad argument fails at the call, before any
    # network traffic, even for a stream. --
    def generate(self, prompt, output_type=None, **sampling) -> str:
        text, cut = self._send(self.request(prompt, output_type, **sampling))
        _check_complete(self.backend, output_type, [text], [cut], sampling.get("max_new_tokens"))
        return text

    def generate_batch(self, prompts, output_type=None, **sampling) -> list[str]:
        """One request per prompt, up to ``max_concurrency`` in flight; outputs in the prompts' order."""
        requests = [self.request(prompt, output_type, **sampling) for prompt in prompts]
        with ThreadPoolExecutor(max_workers=max(1, min(self.max_concurrency, len(requests)))) as pool:
            results = list(pool.map(self._send, requests))
        texts = [text for text, _ in results]
        _check_complete(self.backend, output_type, texts, [cut for _, cut in results], sampling.get("max_new_tokens"))
        return texts

    def generate_stream(self, prompt, output_type=None, **sampling):
        request = self.request(prompt, output_type, **sampling)
        return self._pieces(request, output_type, sampling.get("max_new_tokens"))

    def _pieces(self, request, output_type, max_new_tokens):
        pieces, cut = [], False
        for piece, hit_limit in self._send_stream(request):
            cut = cut or hit_limit
            if piece:
                pieces.append(piece)
                yield piece
        _check_complete(self.backend, output_type, ["".join(pieces)], [cut], max_new_tokens)


class AsyncBlackBoxModel(BlackBoxModel):
    """A model behind an async client: ``generate`` / ``generate_batch`` are coroutines, ``generate_stream``
    returns an async iterator. Subclasses provide ``_asend`` / ``_asend_stream``."""

    is_async = True

    async def _asend(self, request: dict) -> tuple[str, bool]:
        raise NotImplementedError

    def _asend_stream(self, request: dict):
        raise NotImplementedError

    async def generate(self, prompt, output_type=None, **sampling) -> str:
        text, cut = await self._asend(self.request(prompt, output_type, **sampling))
        _check_complete(self.backend, output_type, [text], [cut], sampling.get("max_new_tokens"))
        return text

    async def generate_batch(self, prompts, output_type=None, **sampling) -> list[str]:
        import asyncio

        requests = [self.request(prompt, output_type, **sampling) for prompt in prompts]
        limit = asyncio.Semaphore(self.max_concurrency)

        async def one(request):
            async with limit:
                return await self._asend(request)

        results = await asyncio.gather(*(one(request) for request in requests))
        texts = [text for text, _ in results]
        _check_complete(self.backend, output_type, texts, [cut for _, cut in results], sampling.get("max_new_tokens"))
        return texts

    def generate_stream(self, prompt, output_type=None, **sampling):
        request = self.request(prompt, output_type, **sampling)
        return self._apieces(request, output_type, sampling.get("max_new_tokens"))

    async def _apieces(self, request, output_type, max_new_tokens):
        pieces, cut = [], False
        async for piece, hit_limit in self._asend_stream(request):
            cut = cut or hit_limit
            if piece:
                pieces.append(piece)
                yield piece
        _check_complete(self.backend, output_type, ["".join(pieces)], [cut], max_new_tokens)
