"""LangChain chat model: constrained generation inside LangChain chains.

``ChatOutlines`` is a ``langchain_core`` ``BaseChatModel`` running a steerable model (transformers or
llama.cpp) under our engine. Set at most one constraint: ``regex``, ``type_constraints`` (a Python type),
``json_schema`` (a Pydantic model, a dict or a JSON string) or ``grammar`` (Lark text); the output then
satisfies it, by construction, not by prompting. ``with_structured_output`` and ``bind_tools`` use the
same machinery: the JSON Schema of the requested object (or of a call to one of the tools) constrains the
output. See docs/langchain.md.
"""

from __future__ import annotations

import functools
import json
import uuid
from typing import Any, Iterator, Optional, Sequence

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ChatMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableLambda, RunnableMap
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, PrivateAttr, model_validator

__all__ = ["ChatOutlines"]

_CONSTRAINTS = ("regex", "type_constraints", "json_schema", "grammar")


class ChatOutlines(BaseChatModel):
    """A chat model whose output is guaranteed to have the requested shape.

    ``model``: ``None`` (SmolLM2-135M-Instruct), a transformers folder or hub name (``backend=
    "transformers"``), a ``.gguf`` path (``backend="llamacpp"``), or an already loaded steerable model
    (``backends.transformers.from_transformers(...)``, ``backends.llamacpp.from_llamacpp(...)``).
    """

    model: Any = None
    backend: str = "transformers"
    regex: Optional[str] = None
    type_constraints: Any = None
    json_schema: Any = None
    grammar: Optional[str] = None
    max_tokens: int = 256
    temperature: Optional[float] = None
    top_p: Optional[float] = None
    top_k: Optional[int] = None
    seed: Optional[int] = None
    stop: Optional[list[str]] = None

    model_config = ConfigDict(arbitrary_types_allowed=True, validate_assignment=True)
    _steerable: Any = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _one_constraint(self):
        chosen = [name for name in _CONSTRAINTS if getattr(self, name) is not None]
        if len(chosen) > 1:
            raise ValueError(f"set at most one constraint (regex, type_constraints, json_schema, grammar); got {chosen}")
        if self.backend not in ("transformers", "llamacpp"):
            raise ValueError(f"backend must be 'transformers' or 'llamacpp', got {self.backend!r}")
        return self

    # -- LangChain plumbing --------------------------------------------------------------------------
    @property
    def _llm_type(self) -> str:
        return "outlines-core"

    @property
    def model_name(self) -> str:
        if self.model is None:
            return "SmolLM2-135M-Instruct"
        return self.model if isinstance(self.model, str) else type(self.model).__name__

    @property
    def _identifying_params(self) -> dict:
        return {"model": self.model_name, "backend": self.backend, **{n: repr(getattr(self, n)) for n in _CONSTRAINTS if getattr(self, n) is not None}}

    def _combine_llm_outputs(self, llm_outputs: list[Optional[dict]]) -> dict:
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        for output in llm_outputs:
            for key in usage:
                usage[key] += ((output or {}).get("token_usage") or {}).get(key, 0)
        return {"token_usage": usage, "model_name": self.model_name}

    # -- the model and the constraint ----------------------------------------------------------------
    @property
    def steerable(self):
        """The loaded steerable model (loaded on first use)."""
        if self._steerable is None:
            self._steerable = _load(self.model, self.backend)
        return self._steerable

    def _output_type(self, tools: Optional[list] = None):
        from outlines_core.types import CFG, JsonSchema, Regex

        if tools:
            return JsonSchema(_tool_call_schema(tools))
        if self.regex is not None:
            return Regex(self.regex)
        if self.type_constraints is not None:
            return self.type_constraints
        if self.json_schema is not None:
            return JsonSchema(self.json_schema)
        if self.grammar is not None:
            return CFG(self.grammar)
        return None

    def _sampling(self, stop: Optional[list[str]], kwargs: dict) -> dict:
        sampling = {k: kwargs.get(k, getattr(self, k)) for k in ("temperature", "top_p", "top_k", "seed")}
        sampling = {k: v for k, v in sampling.items() if v is not None}
        stops = list(stop or []) + list(self.stop or [])
        if stops:
            sampling["stop"] = stops
        return sampling

    # -- generation ----------------------------------------------------------------------------------
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: Optional[list[str]] = None,
        run_manager: Optional[CallbackManagerForLLMRun] = None,
        **kwargs: Any,
    ) -> ChatResult:
        from outlines_core.generator import index_for

        tools = kwargs.get("tools")
        model = self.steerable
        index = index_for(self._output_type(tools), model.vocabulary)
        prompt = _to_chat(messages)
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        text, prompt_tokens, completion_tokens, finish_reason = _run(model, prompt, index, max_tokens, self._sampling(stop, kwargs))
        usage = {"input_tokens": prompt_tokens, "output_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}
        if tools:
            call = json.loads(text)
            message = AIMessage(
                content="",
                tool_calls=[{"name": call["name"], "args": call["arguments"], "id": f"call_{uuid.uuid4().hex[:12]}", "type": "tool_call"}],
                usage_metadata=usage,
            )
        else:
            message = AIMessage(content=text, usage_metadata=usage)
        token_usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}
        return ChatResult(
            generations=[ChatGeneration(message=message, generation_info={"finish_reason": finish_reason})],
            llm_output={"token_usage": token_usage, "model_name": self.model_name},
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: Optional[list[str]] = None,
        run_manager: Optional[CallbackManagerForLLMRun] = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        from outlines_core import Generator

        if kwargs.get("tools"):
            # A tool call is only meaningful whole: generate it, then emit it as one chunk.
            result = self._generate(messages, stop, run_manager, **kwargs).generations[0]
            yield ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[
                {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": 0} for c in result.message.tool_calls
            ]), generation_info=result.generation_info)
            return
        generator = Generator(self.steerable, self._output_type())
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        for piece in generator.stream(_to_chat(messages), max_new_tokens=max_tokens, **self._sampling(stop, kwargs)):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager is not None:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk

    # -- structured output and tools -----------------------------------------------------------------
    def bind_tools(self, tools: Sequence[Any], *, tool_choice: Optional[str] = None, **kwargs: Any):
        """Bind tools (Pydantic models, functions, LangChain tools, OpenAI tool dicts). Every answer is then a
        call to one of them (``tool_choice`` may name the one to call) with arguments that satisfy its
        schema, returned as ``AIMessage.tool_calls``."""
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        if not formatted:
            raise ValueError("bind_tools needs at least one tool")
        if tool_choice not in (None, "auto", "any", "required"):
            name = tool_choice if isinstance(tool_choice, str) else (tool_choice or {}).get("function", {}).get("name")
            formatted = [tool for tool in formatted if tool["function"]["name"] == name]
            if not formatted:
                raise ValueError(f"tool_choice {tool_choice!r} names none of the bound tools")
        return self.bind(tools=formatted, **kwargs)

    def with_structured_output(self, schema, *, include_raw: bool = False, **kwargs: Any):
        """Answers parsed into ``schema`` (a Pydantic model: instances; a JSON Schema dict: dicts), enforced
        by the engine's JSON Schema constraint. ``include_raw=True`` returns {"raw", "parsed",
        "parsing_error"}."""
        if kwargs:
            raise TypeError(f"unsupported with_structured_output arguments {sorted(kwargs)}")
        constrained = self.model_copy(update={name: None for name in _CONSTRAINTS})
        constrained.json_schema = schema
        constrained._steerable = self.steerable  # loaded once, shared
        is_model = isinstance(schema, type) and hasattr(schema, "model_validate_json")

        def parse(message: AIMessage):
            return schema.model_validate_json(message.content) if is_model else json.loads(message.content)

        parser = RunnableLambda(parse)
        if not include_raw:
            return constrained | parser

        def parse_safely(payload: dict):
            try:
                return {"raw": payload["raw"], "parsed": parse(payload["raw"]), "parsing_error": None}
            except Exception as error:  # the constraint makes this unreachable unless the limit cut the output
                return {"raw": payload["raw"], "parsed": None, "parsing_error": error}

        return RunnableMap(raw=constrained) | RunnableLambda(parse_safely)


# -- helpers -------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _default_model(backend: str):
    # Every ChatOutlines() without a model shares one loaded default model.
    if backend == "llamacpp":
        from backends import llamacpp

        return llamacpp.load_default_model()
    from backends.transformers import load_default_model

    return load_default_model()


def _load(model, backend: str):
    if model is None:
        return _default_model(backend)
    if not isinstance(model, str):
        for attribute in ("vocabulary", "encode", "start"):
            if not hasattr(model, attribute):
                raise TypeError(f"model must be a path, a name or a steerable model; {type(model).__name__} has no {attribute!r}")
        return model
    if backend == "llamacpp":
        try:
            from backends import llamacpp
        except ImportError as error:  # pragma: no cover - llama-cpp-python missing
            raise ImportError(f"backend='llamacpp' needs llama-cpp-python: {error}") from error
        import llama_cpp

        return llamacpp.from_llamacpp(llama_cpp.Llama(model_path=model, n_ctx=4096, verbose=False))
    from backends.transformers import from_transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return from_transformers(AutoModelForCausalLM.from_pretrained(model), AutoTokenizer.from_pretrained(model))


def _to_chat(messages: list[BaseMessage]) -> list[dict]:
    chat = []
    for message in messages:
        content = message.content if isinstance(message.content, str) else "".join(
            part.get("text", "") if isinstance(part, dict) else str(part) for part in message.content
        )
        if isinstance(message, SystemMessage):
            role = "system"
        elif isinstance(message, HumanMessage):
            role = "user"
        elif isinstance(message, AIMessage):
            role = "assistant"
            if message.tool_calls and not content:
                content = json.dumps({"name": message.tool_calls[0]["name"], "arguments": message.tool_calls[0]["args"]})
        elif isinstance(message, ToolMessage):
            role, content = "user", f"Result of the tool call: {content}"  # chat templates rarely know a tool role
        elif isinstance(message, ChatMessage):
            role = message.role
        else:
            raise ValueError(f"unsupported message type {type(message).__name__}")
        chat.append({"role": role, "content": content})
    if not chat:
        raise ValueError("no messages to answer")
    return chat


def _tool_call_schema(tools: list[dict]) -> dict:
    """{"name": <a tool>, "arguments": <that tool's parameters>}, one alternative per tool."""
    options = []
    for tool in tools:
        function = tool["function"]
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        options.append(
            {
                "type": "object",
                "properties": {"name": {"const": function["name"]}, "arguments": parameters},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    return options[0] if len(options) == 1 else {"anyOf": options}


def _run(model, prompt, index, max_tokens: int, sampling: dict):
    """One generation with token accounting: (text, prompt tokens, completion tokens, finish reason)."""
    from outlines_core.generator import SamplingParams, _cut_at_stop, _decode, _incomplete, _split_stop

    stop, sampling = _split_stop(sampling, [index])
    params = SamplingParams.from_kwargs(sampling)
    box: list = []
    tokens: list[int] = []
    for step in _decode(model, [prompt], [index], max_tokens, params, box, stop):
        tokens.extend(step[0])
    guide = box[0].guides[0]
    vocabulary = model.vocabulary
    text = vocabulary.decode(tokens).decode("utf-8", errors="strict" if guide is not None else "replace")
    if guide is not None and not guide.is_accepting():
        raise _incomplete([text], [0], max_tokens)
    stopped = False
    if stop:
        text, stopped = _cut_at_stop(text, stop)
    ended = stopped or len(tokens) < max_tokens or (guide is not None and guide.is_finished())
    return text, len(model.encode(prompt)), len(tokens), "stop" if ended else "length"
