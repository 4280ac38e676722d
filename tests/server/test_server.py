"""Our HTTP server, driven the way users drive it: raw HTTP (the seed's curl examples), the real ``openai``
client and the real ``ollama`` client, concurrently, streaming, with bad input and disconnecting clients."""

from __future__ import annotations

import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import jsonschema
import pytest

from conftest import Character

pytestmark = pytest.mark.e2e

NUMBER = r"(-)?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-][0-9]+)?"


def test_generate_with_a_schema(server):
    # curl http://127.0.0.1:8000/generate -d '{"prompt": "What is the capital of France?", "schema": {...}}'
    response = httpx.post(
        f"{server.url}/generate",
        json={"prompt": "What is the capital of France?", "schema": {"type": "string", "maxLength": 5}},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    value = json.loads(response.json()["text"])
    assert isinstance(value, str) and len(value) <= 5


def test_generate_with_a_regex(server):
    response = httpx.post(
        f"{server.url}/generate",
        json={"prompt": "What is Pi? Give me the first 15 digits: ", "regex": NUMBER, "max_tokens": 30},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert re.fullmatch(NUMBER, body["text"]), body
    assert body["usage"]["completion_tokens"] >= 1


def test_schema_wins_over_regex(server):
    response = httpx.post(
        f"{server.url}/generate",
        json={"prompt": "Yes or no?", "schema": {"type": "boolean"}, "regex": "[0-9]+"},
        timeout=120,
    )
    assert response.json()["text"] in ("true", "false")


@pytest.mark.parametrize(
    "path, body, fragment",
    [
        ("/generate", {"prompt": "x", "regex": "(unclosed"}, "regex"),
        ("/generate", {"prompt": "x", "schema": {"type": "string", "pattern": "(?<=a)b"}}, "Error"),
        ("/generate", {"regex": "a"}, "prompt"),
        ("/v1/chat/completions", {"model": "smollm2", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}}}}, "nonsense"),
        ("/v1/chat/completions", {"model": "smollm2", "messages": []}, "messages"),
        ("/api/generate", {"model": "smollm2", "prompt": "x", "format": "yaml"}, "format"),
        ("/generate", {"prompt": "x", "seed": "abc"}, "seed"),
        ("/v1/completions", {"model": "smollm2", "prompt": "x", "top_k": 2.5}, "top_k"),
        ("/api/generate", {"model": "smollm2", "prompt": "x", "options": {"seed": 1e23}}, "seed"),
        ("/api/generate", {"model": "smollm2", "prompt": "", "raw": True}, "no tokens"),
    ],
)
def test_bad_requests_get_400_with_the_reason(server, path, body, fragment):
    response = httpx.post(f"{server.url}{path}", json=body, timeout=60)
    assert response.status_code == 400, response.text
    assert fragment.lower() in response.text.lower()


def test_openai_client_structured_output(server):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    completion = client.chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": "Create a fantasy character."}],
        response_format={"type": "json_schema", "json_schema": {"name": "Character", "schema": Character.model_json_schema(), "strict": True}},
        max_tokens=80,
    )
    text = completion.choices[0].message.content
    Character.model_validate_json(text)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens > 0
    # The client's own parse helper works on our answer too.
    parsed = client.chat.completions.parse(
        model="smollm2", messages=[{"role": "user", "content": "Create a fantasy character."}], response_format=Character, max_tokens=80
    )
    assert isinstance(parsed.choices[0].message.parsed, Character)


def test_openai_streaming_equals_non_streaming(server):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    request = dict(model="smollm2", messages=[{"role": "user", "content": "Name three colors."}], max_tokens=24, seed=0)
    whole = client.chat.completions.create(**request).choices[0].message.content
    chunks = [c.choices[0].delta.content or "" for c in client.chat.completions.create(stream=True, **request) if c.choices]
    assert len([c for c in chunks if c]) > 1
    assert "".join(chunks) == whole


def test_openai_completions_and_json_object(server):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    text = client.completions.create(model="smollm2", prompt="The capital of France is", max_tokens=5).choices[0].text
    assert text
    content = client.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "A JSON object about a dog."}], response_format={"type": "json_object"}, max_tokens=60
    ).choices[0].message.content
    assert isinstance(json.loads(content), dict)
    assert [m.id for m in client.models.list().data] == ["smollm2"]


def test_ollama_client_structured_output_and_stream(server):
    ollama = pytest.importorskip("ollama")
    client = ollama.Client(host=server.url)
    response = client.chat(
        model="smollm2",
        messages=[{"role": "user", "content": "Create a fantasy character."}],
        format=Character.model_json_schema(),
        options={"temperature": 0, "num_predict": 80},
        stream=False,
    )
    Character.model_validate_json(response.message.content)
    generated = client.generate(model="smollm2", prompt="Give me a number.", format={"type": "integer"}, stream=False, options={"num_predict": 10})
    int(generated.response)
    pieces = [part.response for part in client.generate(model="smollm2", prompt="Count to five.", stream=True, options={"num_predict": 16})]
    assert len(pieces) > 2
    whole = client.generate(model="smollm2", prompt="Count to five.", stream=False, options={"num_predict": 16}).response
    assert "".join(pieces) == whole


SCHEMAS = [
    {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}}, "required": ["city"]},
    {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 3},
    {"type": "integer", "minimum": 0, "maximum": 99},
    {"type": "boolean"},
    {"type": "string", "enum": ["red", "green", "blue"]},
    {"type": "object", "properties": {"ok": {"type": "boolean"}, "n": {"type": "number"}}, "required": ["ok", "n"]},
    {"type": "string", "format": "date"},
    {"type": "null"},
]


def test_concurrent_requests_each_get_their_own_constraint(server):
    def ask(schema):
        response = httpx.post(
            f"{server.url}/generate", json={"prompt": f"Answer with JSON ({json.dumps(schema)}):", "schema": schema, "max_tokens": 40}, timeout=300
        )
        return schema, response

    engine = server.app.state.engine
    batches_before = engine.batches_run
    with ThreadPoolExecutor(len(SCHEMAS)) as pool:
        results = list(pool.map(ask, SCHEMAS))
    for schema, response in results:
        assert response.status_code == 200, response.text
        body = response.json()
        if body["finish_reason"] == "stop":
            jsonschema.validate(json.loads(body["text"]), schema)
    assert sum(r.json()["finish_reason"] == "stop" for _, r in results) >= len(SCHEMAS) - 1
    assert engine.batches_run - batches_before < len(SCHEMAS)  # they were batched together
    assert engine.largest_batch > 1


def test_a_client_that_disconnects_frees_its_row(server):
    engine = server.app.state.engine
    cancelled_before = engine.cancelled
    with httpx.Client(timeout=60) as client:
        with client.stream(
            "POST", f"{server.url}/v1/completions", json={"model": "smollm2", "prompt": "Once upon a time", "max_tokens": 2000, "stream": True}
        ) as response:
            for _, line in zip(range(3), response.iter_lines()):
                pass
    # The abandoned 2000-token request is cancelled and leaves the batch; the server keeps answering.
    response = httpx.post(f"{server.url}/generate", json={"prompt": "Yes?", "schema": {"type": "boolean"}}, timeout=60)
    assert response.status_code == 200 and response.json()["text"] in ("true", "false")
    deadline = time.monotonic() + 30
    while engine.cancelled == cancelled_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.cancelled > cancelled_before
    assert engine.alive


def _generate(server, body, timeout=300):
    response = httpx.post(f"{server.url}/generate", json=body, timeout=timeout)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_request_joins_a_running_batch_and_gets_the_same_answer(server):
    engine = server.app.state.engine
    short = {"prompt": "Name a city:", "schema": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}}, "required": ["city"]}}
    alone = _generate(server, short)
    joined_before = engine.joined
    finished = {}
    # A long request that cannot stop early (its constraint is longer than its token limit), streamed so
    # the short one is sent while it is certainly decoding.
    long_request = {"model": "smollm2", "prompt": "A story:", "max_tokens": 120, "stream": True, "structured_outputs": {"regex": "[a-z ]{400}"}}
    started = threading.Event()

    def run_long():
        pieces = []
        with httpx.stream("POST", f"{server.url}/v1/completions", json=long_request, timeout=300) as response:
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    pieces.append(json.loads(line[len("data: "):])["choices"][0]["text"])
                    if len(pieces) == 2:
                        started.set()
        finished["long"] = "".join(pieces)
        finished["long_at"] = time.monotonic()

    thread = threading.Thread(target=run_long)
    thread.start()
    assert started.wait(120)
    while_running = _generate(server, short)
    finished["short_at"] = time.monotonic()
    thread.join()
    # Continuous batching: the short request did not wait for the long one, and being batched with it
    # (left-padded into its KV cache) does not change a greedy answer.
    assert engine.joined > joined_before
    assert finished["short_at"] < finished["long_at"]
    assert while_running["text"] == alone["text"]
    json.loads(while_running["text"])
    assert re.fullmatch("[a-z ]+", finished["long"]) and len(finished["long"]) >= 120


def test_each_row_keeps_its_own_sampling_and_stop(server):
    sampled = {"prompt": "Tell me about cats.", "max_tokens": 20, "temperature": 0.9, "seed": 7}
    stopped = {"prompt": "Count from one to ten, in words, separated by commas.", "max_tokens": 40, "stop": [","]}
    greedy = {"prompt": "Tell me about cats.", "max_tokens": 20}
    alone = [_generate(server, body) for body in (sampled, stopped, greedy)]
    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(lambda body: _generate(server, body), (sampled, stopped, greedy)))
    assert [r["text"] for r in together] == [r["text"] for r in alone]
    assert "," not in together[1]["text"] and together[1]["finish_reason"] == "stop"
    assert together[0]["text"] != together[2]["text"]  # the seeded sample is not the greedy answer


def test_openai_top_k_is_honoured(server):
    # top_k=1 leaves one token to sample from: whatever the temperature and seed, the greedy answer.
    body = {"model": "smollm2", "prompt": "The capital of France is", "max_tokens": 8}
    greedy = httpx.post(f"{server.url}/v1/completions", json=body, timeout=300).json()["choices"][0]["text"]
    for seed in (1, 2):
        sampled = {**body, "top_k": 1, "temperature": 5.0, "seed": seed}
        response = httpx.post(f"{server.url}/v1/completions", json=sampled, timeout=300)
        assert response.json()["choices"][0]["text"] == greedy


def test_a_joiner_that_fails_to_start_leaves_the_running_batch_alone(smollm2):
    """A request whose prefill fails while another decodes gets its error; the running one goes on."""
    from outlines_core.generator import SamplingParams, index_for
    from outlines_core.serve.scheduler import BatchingEngine, Request
    from outlines_core.types import Regex

    class FailingStart:
        def __init__(self, model):
            self._model = model

        def __getattr__(self, name):
            return getattr(self._model, name)

        def start(self, prompts_ids):
            if any(ids == [13] for ids in prompts_ids):
                raise RuntimeError("prefill failed")
            return self._model.start(prompts_ids)

    engine = BatchingEngine(FailingStart(smollm2), window_ms=0)
    try:
        done = {}
        events = {name: threading.Event() for name in ("long", "bad")}

        def finish(name):
            def on_done(text, reason, tokens):
                done[name] = (text, reason, tokens)
                events[name].set()
            return on_done

        pieces = []
        unending = index_for(Regex("[a-z ]{400}"), smollm2.vocabulary)  # cannot finish within 40 tokens
        long_request = Request(prompt_ids=smollm2.encode("A story:"), index=unending, max_tokens=40,
                               params=SamplingParams(), on_piece=pieces.append, on_done=finish("long"))
        engine.submit(long_request)
        deadline = time.monotonic() + 120
        while len(pieces) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        engine.submit(Request(prompt_ids=[13], index=None, max_tokens=5, on_done=finish("bad")))
        assert events["bad"].wait(120) and events["long"].wait(300)
        assert done["bad"][1].startswith("error") and "prefill failed" in done["bad"][1]
        assert done["long"][1] == "length" and done["long"][2] == 40
    finally:
        engine.close()
