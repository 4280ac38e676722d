"""Black-box backends (``from_openai``, ``from_ollama``, ``from_vllm_server``) with the real client libraries
against our own server, sync and async; output types a backend cannot carry are refused up front."""

from __future__ import annotations

import asyncio
import json
import re

import lark
import pytest

from backends.ollama import from_ollama
from backends.openai import from_openai
from backends.vllm_server import from_vllm_server, structured_outputs
from outlines_core import Generator
from outlines_core.errors import UnsupportedTypeError
from outlines_core.grammars import load_example
from outlines_core.types import CFG, Choice, Regex

from test_server import Character  # noqa: E402  (tests/server is on sys.path)

openai = pytest.importorskip("openai")
ollama = pytest.importorskip("ollama")

PROMPT = [{"role": "user", "content": "Create a fantasy character."}]


@pytest.mark.e2e
def test_from_openai_character(server):
    model = from_openai(openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused"), "smollm2")
    text = Generator(model, Character)(PROMPT, max_new_tokens=80)
    Character.model_validate_json(text)
    pieces = list(Generator(model, Character).stream(PROMPT, max_new_tokens=80))
    assert "".join(pieces) == text


@pytest.mark.e2e
def test_from_openai_async(server):
    model = from_openai(openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="unused"), "smollm2")
    generator = Generator(model, {"type": "integer"})

    async def main():
        single = await generator("Pick a number.", max_new_tokens=8)
        batch = await generator(["A number?", "Another number?"], max_new_tokens=8)
        pieces = [piece async for piece in generator.stream("Pick a number.", max_new_tokens=8)]
        return single, batch, pieces

    single, batch, pieces = asyncio.run(main())
    int(single)
    assert [int(b) for b in batch] and len(batch) == 2
    assert "".join(pieces) == single


@pytest.mark.e2e
def test_from_ollama_sync_and_async(server):
    model = from_ollama(ollama.Client(host=server.url), "smollm2")
    Character.model_validate_json(Generator(model, Character)(PROMPT, max_new_tokens=80, temperature=0))
    async_model = from_ollama(ollama.AsyncClient(host=server.url), "smollm2")
    generator = Generator(async_model, Character)

    async def main():
        text = await generator(PROMPT, max_new_tokens=80)
        pieces = [piece async for piece in generator.stream(PROMPT, max_new_tokens=80)]
        return text, pieces

    text, pieces = asyncio.run(main())
    Character.model_validate_json(text)
    assert "".join(pieces) == text


@pytest.mark.e2e
def test_from_vllm_server_sends_regex_grammar_choice_and_json(server):
    model = from_vllm_server(f"{server.url}/v1")  # model name read from /v1/models
    assert model.model_name == "smollm2"
    ip = r"(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}"
    assert re.fullmatch(ip, Generator(model, Regex(ip))("An IP address?", max_new_tokens=20))
    assert Generator(model, Choice(["yes", "no"]))("Is the sky blue?", max_new_tokens=5) in ("yes", "no")
    expression = Generator(model, CFG(load_example("arithmetic")))("Write the expression for the sum of 3 and 4.", max_new_tokens=30)
    lark.Lark(load_example("arithmetic"), parser="lalr").parse(expression)
    Character.model_validate_json(Generator(model, Character)(PROMPT, max_new_tokens=80))
    legacy = from_vllm_server(f"{server.url}/v1", "smollm2", legacy_guided=True)
    assert Generator(legacy, Choice(["yes", "no"]))("Is the sky blue?", max_new_tokens=5) in ("yes", "no")


def test_structured_outputs_parameters():
    assert structured_outputs(Regex("a+")) == {"structured_outputs": {"regex": "a+"}}
    assert structured_outputs(Choice(["x", "y"]), legacy_guided=True) == {"guided_choice": ["x", "y"]}
    assert structured_outputs(CFG("start: A\nA: \"a\"\n")) == {"structured_outputs": {"grammar": 'start: A\nA: "a"\n'}}
    assert structured_outputs(Character)["structured_outputs"]["json"]["title"] == "Character"
    assert structured_outputs(None) == {}


@pytest.mark.parametrize("output_type, kind", [(Regex(r"\d+"), "a regex"), (CFG(load_example("json")), "a context-free grammar"), (Choice(["a", "b"]), "a Choice")])
@pytest.mark.parametrize("make", ["openai", "ollama"])
def test_json_only_backends_refuse_other_output_types(make, output_type, kind):
    if make == "openai":
        model = from_openai(openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="x"), "m")
    else:
        model = from_ollama(ollama.Client(host="http://127.0.0.1:9"), "m")
    with pytest.raises(UnsupportedTypeError, match=kind) as caught:
        Generator(model, output_type)
    assert "JSON Schema" in str(caught.value)


def test_unknown_sampling_arguments_are_refused():
    model = from_openai(openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="x"), "m")
    with pytest.raises(TypeError, match="top_k"):
        model._request("hi", None, {"top_k": 3})
    request = model._request("hi", {"type": "integer"}, {"max_new_tokens": 5, "temperature": 0.5})
    assert request["max_tokens"] == 5 and request["response_format"]["json_schema"]["schema"] == {"type": "integer"}
    assert json.dumps(request)
