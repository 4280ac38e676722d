"""ChatOutlines with the real langchain-core classes on SmolLM2-135M-Instruct: every constraint attribute
holds, the Runnable interface (sync, async, stream, batch, generate) works, structured output and tool calls
validate, a prompt-template chain runs, and the examples of docs/langchain.md run as written."""

from __future__ import annotations

import asyncio
import json
import re
from enum import Enum
from pathlib import Path

import lark
import pytest
from pydantic import BaseModel, Field, ValidationError

langchain_core = pytest.importorskip("langchain_core", reason="langchain-core is part of the test install")

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage  # noqa: E402
from langchain_core.output_parsers import StrOutputParser  # noqa: E402
from langchain_core.prompts import ChatPromptTemplate  # noqa: E402

from backends.langchain import ChatOutlines  # noqa: E402
from outlines_core.grammars import load_example  # noqa: E402

pytestmark = pytest.mark.e2e

DOCS = Path(__file__).resolve().parents[2] / "docs" / "langchain.md"


class Armor(str, Enum):
    leather = "leather"
    chainmail = "chainmail"
    plate = "plate"


class Character(BaseModel):
    name: str = Field(max_length=10)
    age: int
    armor: Armor
    strength: int


@pytest.fixture(scope="module")
def chat(smollm2):
    return ChatOutlines(model=smollm2, max_tokens=40)


def test_each_constraint_attribute_holds(chat, smollm2):
    assert re.fullmatch(r"\d{3}-\d{4}", ChatOutlines(model=smollm2, regex=r"\d{3}-\d{4}").invoke("A phone number?").content)
    int(ChatOutlines(model=smollm2, type_constraints=int, max_tokens=8).invoke("How many legs does a spider have?").content)
    for schema in (Character, Character.model_json_schema(), json.dumps(Character.model_json_schema())):
        text = ChatOutlines(model=smollm2, json_schema=schema, max_tokens=80).invoke("Create a fantasy character.").content
        Character.model_validate_json(text)
    grammar = load_example("arithmetic")
    expression = ChatOutlines(model=smollm2, grammar=grammar, max_tokens=30).invoke("Write the expression for the sum of 3 and 4.").content
    lark.Lark(grammar, parser="lalr").parse(expression)


def test_two_constraints_are_refused(smollm2):
    with pytest.raises(ValidationError, match="at most one constraint"):
        ChatOutlines(model=smollm2, regex="a+", grammar=load_example("sexpr"))
    model = ChatOutlines(model=smollm2, regex="a+")
    with pytest.raises(ValidationError, match="at most one constraint"):
        model.json_schema = {"type": "integer"}


def test_stream_concatenates_to_invoke(chat):
    messages = [SystemMessage("You are terse."), HumanMessage("Name three colors.")]
    chunks = list(chat.stream(messages))
    assert len([c for c in chunks if c.content]) > 1
    assert "".join(c.content for c in chunks) == chat.invoke(messages).content


def test_batch_and_async(chat):
    prompts = ["What is the capital of France?", "What is 2 + 2?"]
    batch = chat.batch(prompts)
    assert [m.content for m in batch] == [chat.invoke(p).content for p in prompts]

    async def main():
        single = await chat.ainvoke(prompts[0])
        pieces = [chunk.content async for chunk in chat.astream(prompts[0])]
        several = await chat.abatch(prompts)
        return single, pieces, several

    single, pieces, several = asyncio.run(main())
    assert single.content == batch[0].content == "".join(pieces)
    assert [m.content for m in several] == [m.content for m in batch]


def test_generate_reports_usage_and_finish_reason(chat):
    result = chat.generate([[HumanMessage("Hello!")], [HumanMessage("Tell me a very long story.")]], max_tokens=12)
    infos = [generations[0].generation_info for generations in result.generations]
    assert {info["finish_reason"] for info in infos} <= {"stop", "length"}
    assert infos[1]["finish_reason"] == "length"
    usage = result.llm_output["token_usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert result.llm_output["model_name"]
    message = result.generations[1][0].message
    assert message.usage_metadata["output_tokens"] == 12


def test_with_structured_output(chat):
    character = chat.with_structured_output(Character).invoke("Create a fantasy character.")
    assert isinstance(character, Character)
    raw = chat.with_structured_output(Character.model_json_schema(), include_raw=True).invoke("Create a fantasy character.")
    assert isinstance(raw["raw"], AIMessage) and raw["parsing_error"] is None
    Character.model_validate(raw["parsed"])


def test_bind_tools_returns_validating_tool_calls(chat):
    class GetWeather(BaseModel):
        """Get the weather in a city."""

        city: str = Field(max_length=20)
        unit: str = Field(pattern="^(celsius|fahrenheit)$")

    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        return a * b

    message = chat.bind_tools([GetWeather, multiply]).invoke("What's the weather in Paris?")
    (call,) = message.tool_calls
    if call["name"] == "GetWeather":
        GetWeather.model_validate(call["args"])
    else:
        assert call["name"] == "multiply" and all(isinstance(call["args"][k], int) for k in ("a", "b"))
    forced = chat.bind_tools([GetWeather, multiply], tool_choice="multiply").invoke("What is 6 times 7?")
    assert forced.tool_calls[0]["name"] == "multiply"
    with pytest.raises(ValueError, match="names none"):
        chat.bind_tools([multiply], tool_choice="divide")


def test_chain_with_a_prompt_template(chat):
    prompt = ChatPromptTemplate.from_messages([("system", "Translate to {language}."), ("human", "{text}")])
    output = (prompt | chat | StrOutputParser()).invoke({"language": "French", "text": "Good morning"})
    assert isinstance(output, str) and output


def test_docs_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 6
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(DOCS), "exec", dont_inherit=True), namespace)  # noqa: S102 - the page's own examples
    assert isinstance(namespace["character"], namespace["Character"])
    assert isinstance(namespace["legs"], int)
    lark.Lark(namespace["arithmetic"], parser="lalr").parse(namespace["expression"])


def test_llamacpp_backend():
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is part of the CI install")
    model = ChatOutlines(backend="llamacpp", regex=r"(yes|no)", max_tokens=5)
    assert model.invoke("Is Paris in France? Answer yes or no.").content in ("yes", "no")
    assert type(model.steerable).__name__ == "LlamaCppModel"
    with pytest.raises(ValidationError, match="backend"):
        ChatOutlines(backend="onnx")
