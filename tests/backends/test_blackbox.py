"""Black-box backends (``from_openai``, ``from_ollama``, ``from_vllm_server``) with the real client libraries.

Two kinds of tests:
- what the real clients put on the wire: a small recording HTTP endpoint on loopback (``http.server``)
  answers in the OpenAI / Ollama wire formats and keeps every request body, so the tests check the exact
  ``response_format`` / ``format`` / ``structured_outputs`` / sampling fields the clients send, and how the
  adapters read answers, streams, token-limit cuts and refusals (no model needed);
- end to end (``e2e``): our own server (``python -m outlines_core.serve`` on SmolLM2, the ``server``
  fixture) enforces the constraint, and the answers validate against the schema.
Output types a backend cannot carry are refused when the ``Generator`` is built, before any request.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import re
import threading
import typing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema
import lark
import pytest

from conftest import Character
from backends.blackbox import RefusalError
from backends.ollama import AsyncOllamaModel, OllamaModel, from_ollama
from backends.openai import AsyncOpenAIModel, OpenAIModel, from_openai, strict_schema
from backends.vllm_server import from_vllm_server, structured_outputs
from outlines_core import Generator
from outlines_core.errors import IncompleteOutputError, UnsupportedTypeError
from outlines_core.grammars import load_example
from outlines_core.types import CFG, Choice, JsonSchema, Regex, to_regex

openai = pytest.importorskip("openai")
ollama = pytest.importorskip("ollama")


# ---------------------------------------------------------------------------------------------------------
# A recording endpoint speaking the two wire formats.
# ---------------------------------------------------------------------------------------------------------


class Recorder:
    """Answers ``/v1/chat/completions`` (JSON or SSE), ``/v1/models`` and ``/api/chat`` (JSON or NDJSON).

    The answer text is ``answer`` if set, else the JSON string of the last message's content (so a batch's
    outputs show which prompt each came from); ``finish`` is the finish / done reason; ``refusal`` makes
    the OpenAI answer a refusal."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict]] = []
        self.answer: str | None = None
        self.finish = "stop"
        self.refusal: str | None = None
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                if self.path.endswith("/v1/models"):
                    self._send("application/json", json.dumps({"object": "list", "data": [
                        {"id": "served-model", "object": "model", "created": 0, "owned_by": "test"}]}).encode())
                else:
                    self._send("application/json", b'{"error": "not found"}', 404)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                recorder.requests.append((self.path, body))
                text = recorder.answer if recorder.answer is not None else json.dumps(body["messages"][-1]["content"])
                pieces = [text[i : i + 3] for i in range(0, len(text), 3)]
                if self.path.endswith("/chat/completions"):
                    self._openai(body, text, pieces)
                elif self.path == "/api/chat":
                    self._ollama(body, text, pieces)
                else:
                    self._send("application/json", b'{"error": "not found"}', 404)

            def _openai(self, body, text, pieces):
                base = {"id": "c1", "created": 0, "model": body["model"]}
                if not body.get("stream"):
                    message = {"role": "assistant", "content": None if recorder.refusal else text, "refusal": recorder.refusal}
                    answer = {**base, "object": "chat.completion", "choices": [
                        {"index": 0, "message": message, "finish_reason": recorder.finish}]}
                    return self._send("application/json", json.dumps(answer).encode())
                events = []
                for piece in pieces:
                    delta = {"refusal": piece} if recorder.refusal else {"content": piece}
                    events.append({**base, "object": "chat.completion.chunk", "choices": [
                        {"index": 0, "delta": delta, "finish_reason": None}]})
                events.append({**base, "object": "chat.completion.chunk", "choices": [
                    {"index": 0, "delta": {}, "finish_reason": recorder.finish}]})
                stream = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
                self._send("text/event-stream", stream.encode())

            def _ollama(self, body, text, pieces):
                base = {"model": body["model"], "created_at": "2026-01-01T00:00:00Z"}
                last = {**base, "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": recorder.finish}
                if body.get("stream") is False:
                    last["message"]["content"] = text
                    return self._send("application/json", json.dumps(last).encode())
                lines = [{**base, "message": {"role": "assistant", "content": p}, "done": False} for p in pieces] + [last]
                self._send("application/x-ndjson", "".join(json.dumps(line) + "\n" for line in lines).encode())

            def _send(self, content_type, data, status=200):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def last(self) -> dict:
        return self.requests[-1][1]


@pytest.fixture(scope="module")
def endpoint():
    recorder = Recorder()
    yield recorder
    recorder.httpd.shutdown()


@pytest.fixture
def recorder(endpoint):
    endpoint.requests.clear()
    endpoint.answer, endpoint.finish, endpoint.refusal = None, "stop", None
    return endpoint


def openai_model(recorder, asynchronous=False, **kw):
    client = (openai.AsyncOpenAI if asynchronous else openai.OpenAI)(base_url=f"{recorder.url}/v1", api_key="k", max_retries=0)
    return from_openai(client, "gpt-test", **kw)


def ollama_model(recorder, asynchronous=False):
    return from_ollama((ollama.AsyncClient if asynchronous else ollama.Client)(host=recorder.url), "llama-test")


# ---------------------------------------------------------------------------------------------------------
# OpenAI: what the client sends, and how answers are read.
# ---------------------------------------------------------------------------------------------------------


def test_openai_sends_a_strict_json_schema_and_the_sampling_arguments(recorder):
    model = openai_model(recorder)
    assert isinstance(model, OpenAIModel) and not model.is_async
    text = Generator(model, Character)("Create a character.", max_new_tokens=50, temperature=0.5, top_p=0.9, seed=3, stop="\n")
    assert text == '"Create a character."'
    path, body = recorder.requests[-1]
    assert path == "/v1/chat/completions"
    assert body["model"] == "gpt-test"
    assert body["messages"] == [{"role": "user", "content": "Create a character."}]
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["seed"], body["stop"]) == (50, 0.5, 0.9, 3, ["\n"])
    assert not body.get("stream")
    spec = body["response_format"]["json_schema"]
    assert body["response_format"]["type"] == "json_schema"
    assert spec["name"] == "Character" and spec["strict"] is True
    # Strict mode needs closed objects; Pydantic does not write that, so the adapter adds it.
    expected = Character.model_json_schema()
    assert "additionalProperties" not in expected
    assert spec["schema"] == {**expected, "additionalProperties": False}
    # Closing only narrows: a valid character still validates, an extra key no longer does.
    character = {"name": "Ayla", "age": 30, "armor": "plate", "strength": 7}
    jsonschema.validate(character, spec["schema"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**character, "extra": 1}, spec["schema"])


def test_strict_schema_closes_nested_objects_only_where_unset():
    schema = {
        "type": "object",
        "properties": {"a": {"type": "object", "properties": {"b": {"type": "integer"}}}, "m": {"type": "object", "additionalProperties": {"type": "integer"}}},
        "$defs": {"D": {"properties": {"x": {"type": "string"}}}},
    }
    closed = strict_schema(schema)
    assert closed["additionalProperties"] is False
    assert closed["properties"]["a"]["additionalProperties"] is False
    assert closed["properties"]["m"]["additionalProperties"] == {"type": "integer"}  # set by the user: kept
    assert closed["$defs"]["D"]["additionalProperties"] is False
    assert "additionalProperties" not in schema  # the caller's schema is not modified


@pytest.mark.parametrize(
    "output_type, response_format",
    [
        (None, None),
        (dict, {"type": "json_object"}),
        (int, {"type": "json_schema", "json_schema": {"name": "int", "schema": {"type": "integer"}, "strict": True}}),
        ({"type": "array", "items": {"type": "string"}}, {"type": "json_schema", "json_schema": {"name": "output", "schema": {"type": "array", "items": {"type": "string"}}, "strict": True}}),
        (JsonSchema('{"title": "Point", "type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}'),
         {"type": "json_schema", "json_schema": {"name": "Point", "schema": {"title": "Point", "type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"], "additionalProperties": False}, "strict": True}}),
    ],
)
def test_openai_response_format_per_output_type(recorder, output_type, response_format):
    Generator(openai_model(recorder), output_type)("hi", max_new_tokens=5)
    assert recorder.last().get("response_format") == response_format


def test_openai_non_strict_and_chat_messages(recorder):
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name?"}]
    Generator(openai_model(recorder, strict=False), Character)(messages, max_new_tokens=5)
    body = recorder.last()
    assert body["messages"] == messages
    assert body["response_format"]["json_schema"]["strict"] is False
    assert body["response_format"]["json_schema"]["schema"] == Character.model_json_schema()  # sent as is


def test_openai_stream_and_batch(recorder):
    generator = Generator(openai_model(recorder), Character)
    pieces = list(generator.stream("Tell me", max_new_tokens=40))
    assert len(pieces) > 1 and "".join(pieces) == '"Tell me"'
    assert recorder.last()["stream"] is True and recorder.last()["max_tokens"] == 40
    prompts = [f"prompt {i}" for i in range(5)]
    assert generator.batch(prompts, max_new_tokens=9) == [json.dumps(p) for p in prompts]  # in order
    assert generator(prompts[:2], max_new_tokens=9) == [json.dumps(p) for p in prompts[:2]]


def test_openai_async_client(recorder):
    model = openai_model(recorder, asynchronous=True)
    assert isinstance(model, AsyncOpenAIModel) and model.is_async
    generator = Generator(model, Character)

    async def main():
        single = await generator("one", max_new_tokens=20, seed=1)
        batch = await generator.batch(["a", "b", "c"], max_new_tokens=20)
        pieces = [piece async for piece in generator.stream("streamed", max_new_tokens=20)]
        also = await generator.acall("two")
        apieces = [piece async for piece in generator.astream("three")]
        return single, batch, pieces, also, apieces

    single, batch, pieces, also, apieces = asyncio.run(main())
    assert single == '"one"' and batch == ['"a"', '"b"', '"c"'] and "".join(pieces) == '"streamed"'
    assert also == '"two"' and "".join(apieces) == '"three"'
    bodies = [body for _, body in recorder.requests]
    assert bodies[0]["seed"] == 1 and bodies[0]["response_format"]["json_schema"]["name"] == "Character"
    assert any(body.get("stream") for body in bodies)


def test_openai_token_limit_cut_and_refusal(recorder):
    recorder.answer, recorder.finish = '{"name": "Ay', "length"
    with pytest.raises(IncompleteOutputError, match="max_new_tokens=4") as caught:
        Generator(openai_model(recorder), Character)("hi", max_new_tokens=4)
    assert caught.value.outputs == ['{"name": "Ay'] and caught.value.incomplete_rows == [0]
    with pytest.raises(IncompleteOutputError):
        list(Generator(openai_model(recorder), Character).stream("hi", max_new_tokens=4))
    with pytest.raises(IncompleteOutputError) as caught:
        Generator(openai_model(recorder), Character).batch(["a", "b"], max_new_tokens=4)
    assert caught.value.incomplete_rows == [0, 1]
    # Unconstrained text cut by the limit is just shorter text.
    assert Generator(openai_model(recorder))("hi", max_new_tokens=4) == '{"name": "Ay'
    # An output the limit stopped but that is complete (an integer can always take one more digit) is
    # returned, as a steerable model's accepting guide would allow.
    recorder.answer = "12345678"
    assert Generator(openai_model(recorder), int)("hi", max_new_tokens=8) == "12345678"
    vllm = from_vllm_server(f"{recorder.url}/v1", "m")
    assert Generator(vllm, Regex(r"[0-9]+"))("hi", max_new_tokens=8) == "12345678"
    with pytest.raises(IncompleteOutputError, match="vLLM server"):
        Generator(vllm, Regex(r"[0-9]+-[0-9]+"))("hi", max_new_tokens=8)
    assert Generator(vllm, CFG(load_example("arithmetic")))("hi", max_new_tokens=8) == "12345678"  # a sentence
    recorder.answer = "(1+"
    with pytest.raises(IncompleteOutputError):
        Generator(vllm, CFG(load_example("arithmetic")))("hi", max_new_tokens=3)
    with pytest.raises(IncompleteOutputError):
        Generator(vllm, Choice(["(1+2)", "no"]))("hi", max_new_tokens=3)
    recorder.answer, recorder.finish, recorder.refusal = None, "stop", "I can't help with that."
    with pytest.raises(RefusalError, match="can't help"):
        Generator(openai_model(recorder), Character)("hi")
    with pytest.raises(RefusalError):
        list(Generator(openai_model(recorder), Character).stream("hi"))


def test_openai_refuses_arguments_it_cannot_send(recorder):
    generator = Generator(openai_model(recorder))
    with pytest.raises(TypeError, match=r"OpenAI does not take \['top_k'\]"):
        generator("hi", top_k=3)
    with pytest.raises(ValueError, match="stop must be"):
        generator("hi", stop=[""])
    with pytest.raises(TypeError, match="top_k"):
        generator.stream("hi", top_k=3)  # at the call, not at the first piece
    with pytest.raises(TypeError, match="Ollama does not take \\['do_sample'\\]"):
        Generator(ollama_model(recorder, asynchronous=True)).stream("hi", do_sample=True)
    assert recorder.requests == []


# ---------------------------------------------------------------------------------------------------------
# Ollama
# ---------------------------------------------------------------------------------------------------------


def test_ollama_sends_format_and_options(recorder):
    model = ollama_model(recorder)
    assert isinstance(model, OllamaModel)
    text = Generator(model, Character)("Create a character.", max_new_tokens=60, temperature=0.2, top_p=0.8, top_k=20, seed=5, stop=["}"])
    assert text == '"Create a character."'
    path, body = recorder.requests[-1]
    assert path == "/api/chat" and body["model"] == "llama-test" and body["stream"] is False
    assert body["messages"] == [{"role": "user", "content": "Create a character."}]
    assert body["format"] == Character.model_json_schema()
    assert body["options"] == {"num_predict": 60, "temperature": 0.2, "top_p": 0.8, "top_k": 20, "seed": 5, "stop": ["}"]}
    Generator(model, dict)("hi", max_new_tokens=5)
    assert recorder.last()["format"] == "json"
    Generator(model)("hi", max_new_tokens=5)
    assert "format" not in recorder.last()


def test_ollama_stream_batch_and_async(recorder):
    generator = Generator(ollama_model(recorder), {"type": "integer"})
    assert "".join(generator.stream("count", max_new_tokens=8)) == '"count"'
    assert recorder.last()["stream"] is True and recorder.last()["format"] == {"type": "integer"}
    assert generator.batch(["x", "y"], max_new_tokens=8) == ['"x"', '"y"']
    model = ollama_model(recorder, asynchronous=True)
    assert isinstance(model, AsyncOllamaModel) and model.is_async
    agenerator = Generator(model, Character)

    async def main():
        outputs = (
            await agenerator("a", max_new_tokens=8),
            await agenerator(["b", "c"], max_new_tokens=8),
            [piece async for piece in agenerator.stream("d", max_new_tokens=8)],
        )
        recorder.answer, recorder.finish = "{", "length"
        with pytest.raises(IncompleteOutputError, match="Ollama"):
            [piece async for piece in agenerator.stream("a", max_new_tokens=1)]
        return outputs

    # One event loop for the async client: its connection pool belongs to the loop that opened it.
    single, batch, pieces = asyncio.run(main())
    assert (single, batch, "".join(pieces)) == ('"a"', ['"b"', '"c"'], '"d"')
    with pytest.raises(IncompleteOutputError, match="Ollama"):
        Generator(ollama_model(recorder), Character)("a", max_new_tokens=1)


# ---------------------------------------------------------------------------------------------------------
# vLLM server: the structured-outputs extra body.
# ---------------------------------------------------------------------------------------------------------


def test_vllm_server_sends_structured_outputs(recorder):
    model = from_vllm_server(f"{recorder.url}/v1")
    assert model.model_name == "served-model"  # read from /v1/models
    arithmetic = load_example("arithmetic")
    cases = [
        (Regex(r"\d{3}"), {"regex": r"\d{3}"}),
        (Choice(["yes", "no"]), {"choice": ["yes", "no"]}),
        (CFG(arithmetic), {"grammar": arithmetic}),
        (Character, {"json": Character.model_json_schema()}),
        (int, {"json": {"type": "integer"}}),
        # Written bare, as steerable models write them (not JSON's true or "no").
        (bool, {"regex": to_regex(bool)}),
        (typing.Literal["yes", "no"], {"regex": to_regex(typing.Literal["yes", "no"])}),
    ]
    for output_type, expected in cases:
        Generator(model, output_type)("q", max_new_tokens=7, top_k=5, seed=2)
        body = recorder.last()
        assert body["structured_outputs"] == expected
        assert "response_format" not in body and "guided_regex" not in body
        assert (body["top_k"], body["seed"], body["max_tokens"]) == (5, 2, 7)
    Generator(model)("q")
    assert "structured_outputs" not in recorder.last()
    legacy = from_vllm_server(f"{recorder.url}/v1", "named", legacy_guided=True)
    for output_type, expected in cases:
        Generator(legacy, output_type)("q")
        body = recorder.last()
        assert body["model"] == "named" and "structured_outputs" not in body
        ((key, value),) = expected.items()
        assert body[f"guided_{key}"] == value


def test_vllm_server_async_and_grammar_start_rule(recorder):
    model = from_vllm_server(f"{recorder.url}/v1", "m", async_client=True)
    assert model.is_async
    text = asyncio.run(Generator(model, Regex("[ab]+"))("q", max_new_tokens=3))
    assert text == '"q"' and recorder.last()["structured_outputs"] == {"regex": "[ab]+"}
    with pytest.raises(UnsupportedTypeError, match="rename that rule to 'start'"):
        Generator(model, CFG('expr: "a"\n', start="expr"))
    assert structured_outputs(None) == {}


# ---------------------------------------------------------------------------------------------------------
# Refusals, before any request.
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "output_type, kind",
    [(Regex(r"\d+"), "a regex"), (CFG(load_example("json")), "a context-free grammar"), (Choice(["a", "b"]), "a Choice")],
)
@pytest.mark.parametrize("backend, make", [
    ("OpenAI", lambda r: openai_model(r)), ("OpenAI", lambda r: openai_model(r, asynchronous=True)),
    ("Ollama", lambda r: ollama_model(r)), ("Ollama", lambda r: ollama_model(r, asynchronous=True)),
])
def test_json_only_backends_refuse_regex_grammar_and_choice(recorder, backend, make, output_type, kind):
    with pytest.raises(UnsupportedTypeError) as caught:
        Generator(make(recorder), output_type)
    message = str(caught.value)
    assert message.startswith(backend) and kind in message and "JSON Schema" in message
    assert "from_vllm_server" in message  # says where it can go instead
    assert recorder.requests == []


@pytest.mark.parametrize("output_type", [bool, str, datetime.date, typing.Literal["yes", "no"]])
@pytest.mark.parametrize("make", [lambda r: openai_model(r), lambda r: ollama_model(r)])
def test_json_only_backends_refuse_types_steerable_models_write_bare(recorder, make, output_type):
    # A steerable model writes True / no / 2024-01-01; a JSON Schema server would answer true / "no": refused,
    # with the way to ask for JSON everywhere.
    with pytest.raises(UnsupportedTypeError, match=r"types\.JsonSchema"):
        Generator(make(recorder), output_type)
    Generator(make(recorder), JsonSchema(output_type))("hi", max_new_tokens=5)  # JSON, asked for explicitly
    assert recorder.requests


def test_wrong_clients_and_types_are_named(recorder):
    with pytest.raises(TypeError, match="openai.OpenAI or openai.AsyncOpenAI"):
        from_openai(ollama.Client(host=recorder.url), "m")
    with pytest.raises(TypeError, match="ollama.Client or ollama.AsyncClient"):
        from_ollama(openai.OpenAI(base_url=recorder.url, api_key="k"), "m")
    with pytest.raises(UnsupportedTypeError, match="JSON Schema text"):
        Generator(openai_model(recorder), r"\d+")
    with pytest.raises(TypeError, match="prompt must be"):
        Generator(openai_model(recorder))(42)


# ---------------------------------------------------------------------------------------------------------
# End to end: our server enforces the schema (SmolLM2).
# ---------------------------------------------------------------------------------------------------------

PROMPT = [{"role": "user", "content": "Create a fantasy character."}]


def _character(text: str) -> Character:
    jsonschema.validate(json.loads(text), Character.model_json_schema())
    return Character.model_validate_json(text)


@pytest.mark.e2e
def test_e2e_openai_sync_character(server):
    generator = Generator(from_openai(openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused"), "smollm2"), Character)
    text = generator(PROMPT, max_new_tokens=80)
    assert len(_character(text).name) <= 10
    assert "".join(generator.stream(PROMPT, max_new_tokens=80)) == text  # greedy: the same answer
    for answer in generator.batch([PROMPT, "Describe a knight."], max_new_tokens=80, temperature=0.8, seed=4):
        _character(answer)


@pytest.mark.e2e
def test_e2e_openai_async_character_and_json_mode(server):
    model = from_openai(openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="unused"), "smollm2")
    generator = Generator(model, Character)

    async def main():
        single = await generator(PROMPT, max_new_tokens=80)
        both = await generator([PROMPT, "Describe a thief."], max_new_tokens=80)
        pieces = [piece async for piece in generator.stream(PROMPT, max_new_tokens=80)]
        anything = await Generator(model, dict)("Reply with a JSON object describing a cat.", max_new_tokens=40)
        return single, both, pieces, anything

    single, both, pieces, anything = asyncio.run(main())
    _character(single)
    assert [_character(text) for text in both] and "".join(pieces) == single
    assert isinstance(json.loads(anything), dict)


@pytest.mark.e2e
def test_e2e_ollama_sync_and_async_character(server):
    generator = Generator(from_ollama(ollama.Client(host=server.url), "smollm2"), Character)
    text = generator(PROMPT, max_new_tokens=80, temperature=0)
    _character(text)
    assert "".join(generator.stream(PROMPT, max_new_tokens=80, temperature=0)) == text
    agenerator = Generator(from_ollama(ollama.AsyncClient(host=server.url), "smollm2"), Character)

    async def main():
        return await agenerator(PROMPT, max_new_tokens=80), [p async for p in agenerator.stream(PROMPT, max_new_tokens=80)]

    single, pieces = asyncio.run(main())
    assert single == text and "".join(pieces) == text
    with pytest.raises(IncompleteOutputError, match="Ollama"):
        generator(PROMPT, max_new_tokens=3)


@pytest.mark.e2e
def test_e2e_vllm_server_adapter_against_our_server(server):
    model = from_vllm_server(f"{server.url}/v1")
    assert model.model_name == "smollm2"
    ip = r"(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}"
    assert re.fullmatch(ip, Generator(model, Regex(ip))("An IP address?", max_new_tokens=20))
    assert Generator(model, Choice(["yes", "no"]))("Is the sky blue?", max_new_tokens=5) in ("yes", "no")
    expression = Generator(model, CFG(load_example("arithmetic")))("Write the expression for the sum of 3 and 4.", max_new_tokens=30)
    lark.Lark(load_example("arithmetic"), parser="lalr").parse(expression)
    _character(Generator(model, Character)(PROMPT, max_new_tokens=80, top_k=20, seed=1))
