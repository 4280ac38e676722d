"""The HTTP API: our ``/generate``, OpenAI-compatible ``/v1/*`` and Ollama-compatible ``/api/*`` endpoints.

Every endpoint turns its request into a prompt (token ids) and an output type, compiles the constraint in a
worker thread (a bad schema or regex is a 400 with the reason, before anything is queued), and hands a
``Request`` to the shared ``BatchingEngine``. Streaming answers are server-sent events (OpenAI) or
NDJSON lines (Ollama); when a client disconnects, its request is cancelled and its batch row freed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request as HttpRequest
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse

from ..errors import OutlinesCoreError
from ..generator import SamplingParams, index_for
from .scheduler import BatchingEngine, Request

#: Default token limit when a request gives none.
DEFAULT_MAX_TOKENS = 256


class BadRequest(Exception):
    """A client error: answered with HTTP 400 and this message."""


class EngineFailure(Exception):
    """The engine failed a generation it had accepted: answered with HTTP 500 and this message."""


def create_app(
    model, model_name: str = "SmolLM2-135M-Instruct", max_batch: int = 16, window_ms: float = 5.0, continuous: bool = True
) -> FastAPI:
    """A FastAPI app serving ``model`` (a steerable model, e.g. ``backends.transformers.load_default_model()``).
    ``max_batch`` rows decode together at most; an idle engine waits ``window_ms`` for more requests before
    starting a batch; ``continuous`` lets requests join a running batch (see ``scheduler``)."""
    engine = BatchingEngine(model, max_batch=max_batch, window_ms=window_ms, continuous=continuous)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        engine.close()

    app = FastAPI(title="outlines-core server", lifespan=lifespan)
    app.state.engine = engine
    app.state.model_name = model_name

    def error_response(request: HttpRequest, message: str, status: int, openai_type: str) -> JSONResponse:
        if request.url.path.startswith("/v1/"):
            body = {"error": {"message": message, "type": openai_type, "param": None, "code": None}}
        else:
            body = {"error": message}
        return JSONResponse(status_code=status, content=body)

    @app.exception_handler(EngineFailure)
    async def _engine_failure(request: HttpRequest, error: EngineFailure):
        return error_response(request, str(error), 500, "server_error")

    @app.exception_handler(BadRequest)
    async def _bad_request(request: HttpRequest, error: BadRequest):
        return error_response(request, str(error), 400, "invalid_request_error")

    async def body_of(request: HttpRequest) -> dict:
        try:
            body = json.loads(await request.body() or b"{}")
        except json.JSONDecodeError as error:
            raise BadRequest(f"the request body is not JSON: {error}") from None
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        return body

    async def prepare(prompt, output_type, max_tokens, sampling: dict, stop) -> Request:
        try:
            params = SamplingParams(**{k: v for k, v in sampling.items() if v is not None})
        except (TypeError, ValueError) as error:
            raise BadRequest(str(error)) from None
        if max_tokens is None:
            max_tokens = DEFAULT_MAX_TOKENS
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise BadRequest(f"max_tokens must be a positive integer, got {max_tokens!r}")
        if isinstance(stop, str):
            stop = [stop]
        if stop is not None and not (isinstance(stop, list) and all(isinstance(s, str) and s for s in stop)):
            raise BadRequest("stop must be a non-empty string or a list of them")

        def compile_and_encode():
            index = index_for(output_type, model.vocabulary)
            return index, model.encode(prompt)

        try:
            index, prompt_ids = await run_in_threadpool(compile_and_encode)
        except (OutlinesCoreError, ValueError, TypeError) as error:
            raise BadRequest(f"{type(error).__name__}: {error}") from None
        if not prompt_ids:
            raise BadRequest("the prompt encodes to no tokens: the model needs at least one")
        return Request(prompt_ids=prompt_ids, index=index, max_tokens=max_tokens, params=params, stop=tuple(stop or ()))

    async def run(request: Request) -> AsyncIterator[tuple[str, Any]]:
        """Submit ``request`` and yield ("piece", text) events then ("done", (text, reason, tokens))."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        request.on_piece = lambda piece: loop.call_soon_threadsafe(events.put_nowait, ("piece", piece))
        request.on_done = lambda text, reason, tokens: loop.call_soon_threadsafe(
            events.put_nowait, ("done", (text, reason, tokens))
        )
        engine.submit(request)
        try:
            while True:
                kind, value = await events.get()
                yield kind, value
                if kind == "done":
                    return
        finally:
            request.cancel()  # no-op when finished; frees the row when the client went away

    async def complete(request: Request) -> tuple[str, str, int]:
        """The whole generation; ``EngineFailure`` (HTTP 500 with the message) when the engine failed it."""
        async for kind, value in run(request):
            if kind == "done":
                if value[1].startswith("error"):
                    raise EngineFailure(value[1][len("error: ") :])
                return value
        raise RuntimeError("generation ended without a result")  # pragma: no cover

    # -- /generate (as in the vLLM example server) ------------------------------------------------------
    @app.post("/generate")
    async def generate(http: HttpRequest):
        body = await body_of(http)
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise BadRequest("'prompt' (a non-empty string) is required")
        output_type = _output_type(schema=body.get("schema"), regex=body.get("regex"))
        request = await prepare(
            prompt,
            output_type,
            body.get("max_tokens"),
            {"temperature": body.get("temperature"), "top_p": body.get("top_p"), "top_k": body.get("top_k"), "seed": body.get("seed")},
            body.get("stop"),
        )
        text, reason, tokens = await complete(request)
        return {"text": text, "finish_reason": reason, "usage": _usage(request, tokens)}

    # -- OpenAI-compatible ---------------------------------------------------------------------------
    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": model_name, "object": "model", "created": 0, "owned_by": "outlines-core"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(http: HttpRequest):
        body = await body_of(http)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("'messages' (a non-empty list) is required")
        return await _openai(body, _chat_messages(messages), chat=True)

    @app.post("/v1/completions")
    async def completions(http: HttpRequest):
        body = await body_of(http)
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str) or not prompt:
            raise BadRequest("'prompt' (a non-empty string) is required")
        return await _openai(body, prompt, chat=False)

    async def _openai(body: dict, prompt, chat: bool):
        if body.get("n", 1) != 1:
            raise BadRequest("only n=1 is supported")
        output_type = _vllm_output_type(body)
        if output_type is None:
            output_type = _openai_output_type(body.get("response_format"))
        request = await prepare(
            prompt,
            output_type,
            body.get("max_completion_tokens", body.get("max_tokens")),
            {k: body.get(k) for k in ("temperature", "top_p", "top_k", "seed")},
            body.get("stop"),
        )
        ident = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        created = int(time.time())
        kind = "chat.completion" if chat else "text_completion"
        if not body.get("stream"):
            text, reason, tokens = await complete(request)
            choice = {"index": 0, "finish_reason": _openai_reason(reason), "logprobs": None}
            if chat:
                choice["message"] = {"role": "assistant", "content": text, "refusal": None}
            else:
                choice["text"] = text
            return {"id": ident, "object": kind, "created": created, "model": model_name, "choices": [choice], "usage": _usage(request, tokens)}

        async def events():
            chunk_kind = "chat.completion.chunk" if chat else "text_completion"

            def chunk(delta_text: str | None, reason: str | None, first: bool = False, usage=None) -> str:
                if chat:
                    delta = {"role": "assistant", "content": ""} if first else ({} if delta_text is None else {"content": delta_text})
                    choice = {"index": 0, "delta": delta, "finish_reason": reason, "logprobs": None}
                else:
                    choice = {"index": 0, "text": delta_text or "", "finish_reason": reason, "logprobs": None}
                payload = {"id": ident, "object": chunk_kind, "created": created, "model": model_name, "choices": [choice]}
                if usage is not None:
                    payload["usage"] = usage
                return f"data: {json.dumps(payload)}\n\n"

            if chat:
                yield chunk(None, None, first=True)
            async for event, value in run(request):
                if event == "piece":
                    yield chunk(value, None)
                elif value[1].startswith("error"):  # headers are sent: the failure goes as an error event
                    error = {"message": value[1][len("error: ") :], "type": "server_error", "param": None, "code": None}
                    yield f"data: {json.dumps({'error': error})}\n\n"
                else:
                    _, reason, tokens = value
                    yield chunk(None, _openai_reason(reason), usage=_usage(request, tokens))
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    # -- Ollama-compatible ---------------------------------------------------------------------------
    @app.get("/api/version")
    async def version():
        return {"version": "0.6.0"}

    @app.get("/api/tags")
    async def tags():
        return {"models": [{"name": model_name, "model": model_name, "modified_at": "2026-01-01T00:00:00Z", "size": 0, "digest": "", "details": {}}]}

    @app.post("/api/generate")
    async def ollama_generate(http: HttpRequest):
        body = await body_of(http)
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            raise BadRequest("'prompt' (a string) is required")
        if body.get("raw"):
            rendered = prompt
        else:
            rendered = ([{"role": "system", "content": body["system"]}] if body.get("system") else []) + [
                {"role": "user", "content": prompt}
            ]
        return await _ollama(body, rendered, chat=False)

    @app.post("/api/chat")
    async def ollama_chat(http: HttpRequest):
        body = await body_of(http)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("'messages' (a non-empty list) is required")
        return await _ollama(body, _chat_messages(messages), chat=True)

    async def _ollama(body: dict, prompt, chat: bool):
        options = body.get("options") or {}
        if not isinstance(options, dict):
            raise BadRequest("'options' must be an object")
        output_type = _ollama_output_type(body.get("format"))
        request = await prepare(
            prompt,
            output_type,
            options.get("num_predict"),
            {k: options.get(k) for k in ("temperature", "top_p", "top_k", "seed")},
            options.get("stop"),
        )
        started = time.perf_counter_ns()

        def message(text: str, done: bool, reason: str | None = None, tokens: int = 0) -> dict:
            payload: dict[str, Any] = {"model": body.get("model") or model_name, "created_at": _now(), "done": done}
            if chat:
                payload["message"] = {"role": "assistant", "content": text}
            else:
                payload["response"] = text
            if done:
                payload.update(
                    done_reason=_ollama_reason(reason or "stop"),
                    total_duration=time.perf_counter_ns() - started,
                    prompt_eval_count=len(request.prompt_ids),
                    eval_count=tokens,
                )
            return payload

        if body.get("stream", True) is False:
            text, reason, tokens = await complete(request)
            return message(text, True, reason, tokens)

        async def lines():
            async for event, value in run(request):
                if event == "piece":
                    yield json.dumps(message(value, False)) + "\n"
                elif value[1].startswith("error"):  # as Ollama reports a failure mid-stream
                    yield json.dumps({"error": value[1][len("error: ") :]}) + "\n"
                else:
                    _, reason, tokens = value
                    yield json.dumps(message("", True, reason, tokens)) + "\n"

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    return app


# -- request mapping -------------------------------------------------------------------------------------
def _output_type(schema=None, regex=None):
    from ..types import JsonSchema, Regex

    if schema is not None:  # schema wins when both are given
        if not isinstance(schema, (dict, bool, str)):
            raise BadRequest("'schema' must be a JSON Schema (an object)")
        return JsonSchema(schema)
    if regex is not None:
        if not isinstance(regex, str):
            raise BadRequest("'regex' must be a string")
        return Regex(regex)
    return None


def _openai_output_type(response_format):
    if response_format is None:
        return None
    if not isinstance(response_format, dict) or "type" not in response_format:
        raise BadRequest("response_format must be an object with a 'type'")
    kind = response_format["type"]
    if kind == "text":
        return None
    if kind == "json_object":
        return _output_type(schema={"type": "object"})
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise BadRequest("response_format json_schema needs {'name': ..., 'schema': {...}}")
        return _output_type(schema=spec["schema"])
    raise BadRequest(f"response_format type {kind!r} is not supported (text, json_object, json_schema)")


def _vllm_output_type(body: dict):
    """vLLM's structured-outputs parameters (``structured_outputs`` or the older ``guided_*``), which this
    server accepts too, so ``backends.vllm_server`` clients work against it."""
    from ..grammars import CFG
    from ..types import Choice, Regex

    spec = body.get("structured_outputs")
    if spec is None:
        spec = {key[len("guided_"):]: body[key] for key in ("guided_regex", "guided_json", "guided_grammar", "guided_choice") if key in body}
    if not spec:
        return None
    if not isinstance(spec, dict) or len(spec) != 1:
        raise BadRequest("structured_outputs takes exactly one of regex, json, grammar, choice")
    (kind, value), = spec.items()
    try:
        if kind == "regex" and isinstance(value, str):
            return Regex(value)
        if kind == "json":
            return _output_type(schema=value)
        if kind == "grammar" and isinstance(value, str):
            return CFG(value)
        if kind == "choice" and isinstance(value, list):
            return Choice(value)
    except (TypeError, ValueError, OutlinesCoreError) as error:
        raise BadRequest(f"structured_outputs {kind}: {error}") from None
    raise BadRequest(f"structured_outputs {kind!r} with a {type(value).__name__} is not supported (regex, json, grammar, choice)")


def _ollama_output_type(format_):
    if format_ in (None, ""):
        return None
    if format_ == "json":
        return _output_type(schema={"type": "object"})
    if isinstance(format_, dict):
        return _output_type(schema=format_)
    raise BadRequest(f"format must be 'json' or a JSON Schema object, got {format_!r}")


def _chat_messages(messages: list) -> list[dict]:
    rendered = []
    for position, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message:
            raise BadRequest(f"message {position} needs a 'role'")
        content = message.get("content") or ""
        if isinstance(content, list):  # OpenAI content parts: keep the text ones
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        if not isinstance(content, str):
            raise BadRequest(f"message {position}: content must be a string")
        rendered.append({"role": message["role"], "content": content})
    return rendered


def _usage(request: Request, tokens: int) -> dict:
    prompt_tokens = len(request.prompt_ids)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": tokens, "total_tokens": prompt_tokens + tokens}


def _openai_reason(reason: str) -> str:
    return "stop" if reason == "stop" else "length"


def _ollama_reason(reason: str) -> str:
    return "stop" if reason == "stop" else "length"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
