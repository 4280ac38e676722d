"""ChatOutlines with the real langchain-core classes on SmolLM2-135M-Instruct: every constraint attribute
holds, the Runnable interface (sync, async, stream, batch, generate) works, structured output and tool calls
validate, a prompt-template chain runs, and the examples of docs/langchain.md run as written."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import lark
import pytest
from pydantic import BaseModel, Field, ValidationError

langchain_core = pytest.importorskip("langchain_core", reason="langchain-core is part of the test install")

from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage, ToolMessage  # noqa: E402
from langchain_core.output_parsers import StrOutputParser  # noqa: E402
from langchain_core.prompts import ChatPromptTemplate  # noqa: E402

import backends.langchain as langchain_backend  # noqa: E402
from backends.langchain import ChatOutlines  # noqa: E402
from outlines_core.grammars import load_example  # noqa: E402
from conftest import Character  # noqa: E402

pytestmark = pytest.mark.e2e

DOCS = Path(__file__).resolve().parents[2] / "docs" / "langchain.md"


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


def test_unknown_constructor_arguments_are_refused():
    with pytest.raises(TypeError, match=r"unknown argument\(s\) \['max_tokns'\]"):
        ChatOutlines(max_tokns=3)  # a typo: the default 256 must not silently stay
    assert ChatOutlines(max_tokens=3, tags=["t"]).max_tokens == 3  # LangChain's own fields are known


def test_two_constraints_are_refused(smollm2):
    with pytest.raises(ValidationError, match="at most one constraint"):
        ChatOutlines(model=smollm2, regex="a+", grammar=load_example("sexpr"))
    model = ChatOutlines(model=smollm2, regex="a+")
    with pytest.raises(ValueError, match="at most one constraint"):
        model.json_schema = {"type": "integer"}
    assert model.json_schema is None and model.regex == "a+"  # the refused assignment left nothing behind
    model.regex = None
    model.json_schema = {"type": "integer"}  # one at a time is fine
    model.json_schema, model.regex = None, "a+"
    # bind / bind_tools / with_structured_output refuse a second constraint when called, not at the first use.
    with pytest.raises(ValueError, match=r"at most one constraint.*\['regex', 'json_schema'\]"):
        model.bind(json_schema={"type": "integer"})
    with pytest.raises(ValueError, match="tools are bound and regex is set"):
        model.bind_tools([Character])
    with pytest.raises(ValueError, match="already has regex set"):
        model.with_structured_output(Character)


def test_a_bound_constraint_applies_per_call(chat):
    # The same slot may be replaced per call; the model's own attributes are untouched.
    assert re.fullmatch(r"(yes|no)", chat.bind(regex=r"(yes|no)").invoke("Is the sky blue?").content)
    assert re.fullmatch(r"[0-9]+", chat.invoke("How many legs does a spider have?", type_constraints=int).content)
    assert chat.regex is None and chat.type_constraints is None
    with pytest.raises(TypeError, match="unknown argument"):
        chat.invoke("Hi", max_new_tokens=3)


def test_stream_concatenates_to_invoke(chat):
    from langchain_core.callbacks import BaseCallbackHandler

    class Tokens(BaseCallbackHandler):
        def __init__(self):
            self.tokens = []

        def on_llm_new_token(self, token, **kwargs):
            self.tokens.append(token)

    messages = [SystemMessage("You are terse."), HumanMessage("Name three colors.")]
    handler = Tokens()
    chunks = list(chat.stream(messages, config={"callbacks": [handler]}))
    assert len([c for c in chunks if c.content]) > 1
    invoked = chat.invoke(messages)
    assert "".join(c.content for c in chunks) == invoked.content
    assert [t for t in handler.tokens if t] == [c.content for c in chunks if c.content]  # callbacks see each token
    # The last chunk carries the usage and the finish reason: the merged chunk reports what invoke does.
    merged = sum(chunks[1:], chunks[0])
    assert merged.usage_metadata == invoked.usage_metadata
    assert merged.response_metadata["finish_reason"] == invoked.response_metadata["finish_reason"]


def test_stream_under_a_constraint(chat):
    pattern = r"\d{3}-\d{4}"
    pieces = [c.content for c in chat.stream("A phone number?", regex=pattern)]
    assert re.fullmatch(pattern, "".join(pieces)) and len([p for p in pieces if p]) > 1


def test_batch_and_async(chat):
    prompts = ["What is the capital of France?", "What is 2 + 2?"]
    batch = chat.batch(prompts)
    assert [m.content for m in batch] == [chat.invoke(p).content for p in prompts]

    async def main():
        single = await chat.ainvoke(prompts[0])
        pieces = [chunk.content async for chunk in chat.astream(prompts[0])]
        several = await chat.abatch(prompts)
        both = await asyncio.gather(chat.ainvoke(prompts[0]), chat.ainvoke(prompts[1]))  # serialized per model
        return single, pieces, several, both

    single, pieces, several, both = asyncio.run(main())
    assert single.content == batch[0].content == "".join(pieces)
    assert [m.content for m in several] == [m.content for m in batch] == [m.content for m in both]


def test_generate_reports_usage_and_finish_reason(chat, smollm2):
    result = chat.generate([[HumanMessage("Hello!")], [HumanMessage("Tell me a very long story.")]], max_tokens=12)
    infos = [generations[0].generation_info for generations in result.generations]
    assert infos[1]["finish_reason"] == "length"
    messages = [generations[0].message for generations in result.generations]
    assert messages[1].usage_metadata["output_tokens"] == 12
    # Prompt tokens are the chat-templated prompt's; the totals add up over the calls.
    for message, text in zip(messages, ["Hello!", "Tell me a very long story."]):
        assert message.usage_metadata["input_tokens"] == len(smollm2.encode([{"role": "user", "content": text}]))
        assert message.usage_metadata["total_tokens"] == message.usage_metadata["input_tokens"] + message.usage_metadata["output_tokens"]
    usage = result.llm_output["token_usage"]
    assert usage["prompt_tokens"] == sum(m.usage_metadata["input_tokens"] for m in messages)
    assert usage["completion_tokens"] == sum(m.usage_metadata["output_tokens"] for m in messages)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert result.llm_output["model_name"]
    # A short answer ends before the limit: fewer tokens, "stop".
    done = chat.generate([[HumanMessage("Is the sky blue?")]], regex=r"(yes|no)", max_tokens=10)
    assert done.generations[0][0].generation_info["finish_reason"] == "stop"
    assert 1 <= done.llm_output["token_usage"]["completion_tokens"] < 10


def test_finish_reason_at_the_limit(chat):
    # A constraint completed by the very last allowed token ended by itself ("stop"); one that could
    # still go on ran out ("length").
    one = chat.invoke("Is the sky blue?", regex=r"(yes|no)", max_tokens=1)
    assert one.content in ("yes", "no") and one.usage_metadata["output_tokens"] == 1
    assert one.response_metadata["finish_reason"] == "stop"
    digits = chat.invoke("Write a long number.", regex=r"[0-9]+", max_tokens=2)
    expected = "length" if digits.usage_metadata["output_tokens"] == 2 else "stop"
    assert digits.response_metadata["finish_reason"] == expected


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
    assert forced.tool_calls[0]["name"] == "multiply" and forced.response_metadata["finish_reason"] == "tool_calls"
    openai_style = {"type": "function", "function": {"name": "GetWeather"}}
    GetWeather.model_validate(chat.bind_tools([GetWeather, multiply], tool_choice=openai_style).invoke("Hi").tool_calls[0]["args"])
    assert not chat.bind_tools([multiply], tool_choice="none").invoke("Hi", max_tokens=5).tool_calls
    with pytest.raises(ValueError, match="names none"):
        chat.bind_tools([multiply], tool_choice="divide")
    # The conversation goes on with the tool's result: the call and the result are rendered for the model.
    result = ToolMessage(str(multiply(**forced.tool_calls[0]["args"])), tool_call_id=forced.tool_calls[0]["id"])
    answer = chat.invoke([HumanMessage("What is 6 times 7?"), forced, result], max_tokens=10)
    assert isinstance(answer.content, str) and answer.content
    # Streaming a tool call gives the whole call in one chunk; its args parse back to the same dict.
    streamed = sum(chat.bind_tools([multiply]).stream("What is 6 times 7?"), AIMessageChunk(content=""))
    assert streamed.tool_calls[0]["name"] == "multiply" and set(streamed.tool_calls[0]["args"]) == {"a", "b"}


def test_chain_with_a_prompt_template(chat):
    prompt = ChatPromptTemplate.from_messages([("system", "Translate to {language}."), ("human", "{text}")])
    output = (prompt | chat | StrOutputParser()).invoke({"language": "French", "text": "Good morning"})
    assert isinstance(output, str) and output


def test_docs_examples_run(smollm2, monkeypatch):
    # The page's ChatOutlines() loads the default model: give it the session's copy (the same SmolLM2).
    monkeypatch.setitem(langchain_backend._DEFAULT_MODELS, "transformers", smollm2)
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 8
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
    # batch runs its calls in threads: the per-model lock keeps one llama.cpp decode at a time.
    free = ChatOutlines(model=model.steerable, max_tokens=12)
    prompts = ["What is the capital of France?", "Name a color.", "What is 2 + 2?"]
    assert [m.content for m in free.batch(prompts)] == [free.invoke(p).content for p in prompts]
    assert "".join(c.content for c in free.stream(prompts[0])) == free.invoke(prompts[0]).content
    with pytest.raises(ValidationError, match="backend"):
        ChatOutlines(backend="onnx")
