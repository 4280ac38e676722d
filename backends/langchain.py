"""LangChain chat model: constrained generation inside LangChain chains.

``ChatOutlines`` is a ``langchain_core`` ``BaseChatModel`` running a steerable model (transformers or
llama.cpp) under our engine. Set at most one constraint: ``regex``, ``type_constraints`` (a Python type),
``json_schema`` (a Pydantic model, a dict or a JSON string) or ``grammar`` (Lark text); the output then
satisfies it, by construction, not by prompting. ``with_structured_output`` and ``bind_tools`` use the
same machinery: the JSON Schema of the requested object (or of a call to one of the tools) constrains the
output. See docs/langchain.md.

Generation goes through the public API of ``outlines_core.generator`` (``index_for``, ``generate``,
``Generator.stream``). Token usage is read off the model as the generator drives it: the generator's text
is ``vocabulary.decode`` of the generated tokens (its documented contract), so a per-call copy of the
vocabulary records the token ids it decodes.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import uuid
import weakref
from dataclasses import dataclass
from typing import Any, AsyncIterator, Iterator, Optional, Sequence

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableLambda, RunnableMap
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, PrivateAttr, model_validator

__all__ = ["ChatOutlines"]

_CONSTRAINTS = ("regex", "type_constraints", "json_schema", "grammar")
_SAMPLING = ("temperature", "top_p", "top_k", "seed")
_CALL_ARGUMENTS = frozenset(_CONSTRAINTS + _SAMPLING + ("max_tokens", "stop", "tools"))

#: Loaded default models per backend, shared by every ``ChatOutlines()`` without a model.
_DEFAULT_MODELS: dict[str, Any] = {}
_DEFAULT_LOCK = threading.Lock()


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

    @model_validator(mode="before")
    @classmethod
    def _known_arguments(cls, values: Any) -> Any:
        # A typo (max_tokns=3) must not leave the default silently in place.
        if isinstance(values, dict):
            known = set(cls.model_fields) | {field.alias for field in cls.model_fields.values() if field.alias}
            unknown = sorted(set(values) - known)
            if unknown:
                raise TypeError(f"ChatOutlines got unknown argument(s) {unknown}; its fields: {sorted(cls.model_fields)}")
        return values

    @model_validator(mode="after")
    def _one_constraint(self):
        if self.backend not in ("transformers", "llamacpp"):
            raise ValueError(f"backend must be 'transformers' or 'llamacpp', got {self.backend!r}")
        _chosen_constraint({name: getattr(self, name) for name in _CONSTRAINTS})
        return self

    def __setattr__(self, name: str, value: Any) -> None:
        # Checked before assigning: pydantic's after-validator would leave the second constraint set.
        if name in _CONSTRAINTS and value is not None:
            _chosen_constraint({**{n: getattr(self, n) for n in _CONSTRAINTS}, name: value})
        super().__setattr__(name, value)

    # -- LangChain plumbing --------------------------------------------------------------------------
    @property
    def _llm_type(self) -> str:
        return "outlines-core"

    @property
    def model_name(self) -> str:
        if self.model is None:
            return "SmolLM2-135M-Instruct"
        if isinstance(self.model, str):
            return self.model
        hf_model = getattr(self.model, "model", None)  # transformers: the HF model knows its checkpoint
        name = getattr(getattr(hf_model, "config", None), "name_or_path", None)
        llama = getattr(self.model, "llama", None)
        return name or getattr(llama, "model_path", None) or type(self.model).__name__

    @property
    def _identifying_params(self) -> dict:
        chosen = {n: repr(getattr(self, n)) for n in _CONSTRAINTS if getattr(self, n) is not None}
        return {"model": self.model_name, "backend": self.backend, **chosen}

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

    def _output_type(self, kwargs: dict):
        """The output type of one call: the tool-call schema, or the one constraint among the attributes
        and the call's (or ``bind``'s) keyword arguments."""
        from outlines_core.types import CFG, JsonSchema, Regex

        name, value = _chosen_constraint({n: kwargs.get(n, getattr(self, n)) for n in _CONSTRAINTS}, kwargs.get("tools"))
        if kwargs.get("tools"):
            return JsonSchema(_tool_call_schema(kwargs["tools"]))
        if name == "regex":
            return Regex(value)
        if name == "json_schema":
            return JsonSchema(value)
        if name == "grammar":
            return CFG(value)
        return value  # a Python type, or None (free text)

    def _arguments(self, stop: Optional[list[str]], kwargs: dict) -> tuple[int, dict]:
        unknown = sorted(set(kwargs) - _CALL_ARGUMENTS)
        if unknown:
            raise TypeError(f"ChatOutlines got unknown argument(s) {unknown}; expected some of {sorted(_CALL_ARGUMENTS)}")
        sampling = {k: kwargs.get(k, getattr(self, k)) for k in _SAMPLING}
        sampling = {k: v for k, v in sampling.items() if v is not None}
        stops = list(stop or []) + list(kwargs.get("stop") or self.stop or [])
        if stops:
            sampling["stop"] = stops
        return kwargs.get("max_tokens", self.max_tokens), sampling

    def bind(self, **kwargs: Any):
        """``Runnable.bind``, checking at once that the bound constraint or tools do not clash with the
        model's constraint (at most one at a time)."""
        self._output_type({k: v for k, v in kwargs.items() if k in _CONSTRAINTS or k == "tools"})
        return super().bind(**kwargs)

    # -- generation ----------------------------------------------------------------------------------
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: Optional[list[str]] = None,
        run_manager: Optional[CallbackManagerForLLMRun] = None,
        **kwargs: Any,
    ) -> ChatResult:
        from outlines_core.generator import generate, index_for

        output_type = self._output_type(kwargs)
        max_tokens, sampling = self._arguments(stop, kwargs)
        model = self.steerable
        index = index_for(output_type, model.vocabulary)
        chat = _to_chat(messages, kwargs.get("tools"))
        metered = _Metered(model)
        with _lock(model):
            (text,) = generate(metered, [chat], [index], max_tokens, **sampling)
        usage = metered.usage(chat, index, max_tokens, sampling.get("stop"))
        message = _message(text, usage, kwargs.get("tools"))
        return ChatResult(
            generations=[ChatGeneration(message=message, generation_info={"finish_reason": usage.finish_reason})],
            llm_output={"token_usage": usage.token_usage, "model_name": self.model_name},
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: Optional[list[str]] = None,
        run_manager: Optional[CallbackManagerForLLMRun] = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in self._chunks(messages, stop, kwargs):
            if run_manager is not None and chunk.message.content:
                run_manager.on_llm_new_token(chunk.message.content, chunk=chunk)
            yield chunk

    def _chunks(self, messages, stop, kwargs) -> Iterator[ChatGenerationChunk]:
        """Token-level chunks (one per decoded piece), then an empty chunk with the finish reason and usage."""
        from outlines_core import Generator
        from outlines_core.generator import index_for

        tools = kwargs.get("tools")
        if tools:
            # A tool call is only meaningful whole: generate it, then emit it as one chunk.
            result = self._generate(messages, stop, None, **kwargs)
            message = result.generations[0].message
            calls = [{"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i} for i, c in enumerate(message.tool_calls)]
            yield ChatGenerationChunk(
                message=AIMessageChunk(content="", tool_call_chunks=calls, usage_metadata=message.usage_metadata),
                generation_info=result.generations[0].generation_info,
            )
            return
        output_type = self._output_type(kwargs)
        max_tokens, sampling = self._arguments(stop, kwargs)
        model = self.steerable
        index = index_for(output_type, model.vocabulary)  # compiled (and cached) with the model's own vocabulary
        chat = _to_chat(messages)
        metered = _Metered(model)
        pieces = Generator(metered, output_type).stream(chat, max_new_tokens=max_tokens, **sampling)
        metered.tokens.clear()  # count only what the decode loop turns into text
        lock = _lock(model)
        while True:
            with lock:  # one decode step at a time per model; other calls may run between our steps
                piece = next(pieces, None)
            if piece is None:
                break
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
        usage = metered.usage(chat, index, max_tokens, sampling.get("stop"))
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="", usage_metadata=usage.usage_metadata, response_metadata={"finish_reason": usage.finish_reason}
            ),
            generation_info={"finish_reason": usage.finish_reason},
        )

    # No native async decode for local models: the sync work runs in a worker thread (the event loop stays
    # free), serialized per model by the same lock as the sync calls.
    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: Optional[list[str]] = None,
        run_manager: Optional[AsyncCallbackManagerForLLMRun] = None,
        **kwargs: Any,
    ) -> ChatResult:
        return await asyncio.to_thread(self._generate, messages, stop, None, **kwargs)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: Optional[list[str]] = None,
        run_manager: Optional[AsyncCallbackManagerForLLMRun] = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        chunks = self._chunks(messages, stop, kwargs)
        while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
            if run_manager is not None and chunk.message.content:
                await run_manager.on_llm_new_token(chunk.message.content, chunk=chunk)
            yield chunk

    # -- structured output and tools -----------------------------------------------------------------
    def bind_tools(self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any):
        """Bind tools (Pydantic models, functions, LangChain tools, OpenAI tool dicts). Every answer is then a
        call to one of them with arguments that satisfy its schema, returned as ``AIMessage.tool_calls``.

        ``tool_choice``: ``None``, ``"auto"``, ``"any"``, ``"required"`` or ``True``: a call to any bound tool;
        a tool name (or ``{"type": "function", "function": {"name": ...}}``): a call to that tool;
        ``"none"`` or ``False``: plain text, tools ignored."""
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        if not formatted:
            raise ValueError("bind_tools needs at least one tool")
        if tool_choice in ("none", False):
            return self.bind(**kwargs)
        if tool_choice not in (None, "auto", "any", "required", True):
            if isinstance(tool_choice, str):
                name = tool_choice
            elif isinstance(tool_choice, dict):
                name = tool_choice.get("function", {}).get("name") or tool_choice.get("name")
            else:
                raise ValueError(f"tool_choice must be a tool name, 'auto', 'any', 'required', 'none' or a dict; got {tool_choice!r}")
            chosen = [tool for tool in formatted if tool["function"]["name"] == name]
            if not chosen:
                names = [tool["function"]["name"] for tool in formatted]
                raise ValueError(f"tool_choice {tool_choice!r} names none of the bound tools {names}")
            formatted = chosen
        return self.bind(tools=formatted, **kwargs)

    def with_structured_output(self, schema, *, include_raw: bool = False, **kwargs: Any):
        """Answers parsed into ``schema`` (a Pydantic model: instances; a JSON Schema dict: dicts), enforced
        by the engine's JSON Schema constraint. ``include_raw=True`` returns {"raw", "parsed",
        "parsing_error"}."""
        if kwargs:
            raise TypeError(f"unsupported with_structured_output arguments {sorted(kwargs)}")
        set_already = [name for name in _CONSTRAINTS if getattr(self, name) is not None]
        if set_already:
            raise ValueError(
                f"with_structured_output constrains the output to the schema, but this model already has "
                f"{set_already[0]} set (at most one constraint); use a ChatOutlines without it"
            )
        constrained = self.model_copy(update={"json_schema": schema})
        constrained._steerable = self._steerable  # a loaded model is shared, not loaded twice
        constrained._output_type({})  # compile now: a bad schema fails here, not at the first call
        is_model = isinstance(schema, type) and hasattr(schema, "model_validate_json")

        def parse(message: AIMessage):
            return schema.model_validate_json(message.content) if is_model else json.loads(message.content)

        if not include_raw:
            return constrained | RunnableLambda(parse)

        def parse_safely(payload: dict):
            try:
                return {"raw": payload["raw"], "parsed": parse(payload["raw"]), "parsing_error": None}
            except Exception as error:  # the constraint makes this unreachable unless parsing is stricter
                return {"raw": payload["raw"], "parsed": None, "parsing_error": error}

        return RunnableMap(raw=constrained) | RunnableLambda(parse_safely)


# -- helpers -------------------------------------------------------------------------------------------
def _chosen_constraint(values: dict, tools=None) -> tuple[Optional[str], Any]:
    chosen = [name for name, value in values.items() if value is not None]
    if len(chosen) > 1:
        raise ValueError(f"set at most one constraint (regex, type_constraints, json_schema, grammar); got {chosen}")
    if chosen and tools:
        raise ValueError(
            f"tools are bound and {chosen[0]} is set: a tool call has its own schema (at most one constraint); "
            "bind tools to a ChatOutlines without a constraint"
        )
    return (chosen[0], values[chosen[0]]) if chosen else (None, None)


_LOCKS: "weakref.WeakKeyDictionary[Any, threading.Lock]" = weakref.WeakKeyDictionary()
_LOCKS_LOCK = threading.Lock()


def _lock(model) -> threading.Lock:
    """One decode at a time per model: ``batch`` runs calls in threads, and a llama.cpp context cannot
    decode two sequences at once (transformers would only fight over the same cores)."""
    with _LOCKS_LOCK:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.Lock()
        return lock


@dataclass
class _Usage:
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str

    @property
    def token_usage(self) -> dict:
        total = self.prompt_tokens + self.completion_tokens
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens, "total_tokens": total}

    @property
    def usage_metadata(self) -> dict:
        total = self.prompt_tokens + self.completion_tokens
        return {"input_tokens": self.prompt_tokens, "output_tokens": self.completion_tokens, "total_tokens": total}


class _Metered:
    """A steerable model for one call: the same ``encode`` and ``start``, and a copy of the vocabulary whose
    ``decode`` records the token ids the generator turns into text (end-of-sequence excluded)."""

    def __init__(self, model) -> None:
        self._model = model
        self.tokens: list[int] = []
        model.vocabulary.fingerprint  # computed once on the original, so the copy shares it (index cache key)
        vocabulary = copy.copy(model.vocabulary)
        original = model.vocabulary.decode

        def decode(token_ids):
            token_ids = [int(t) for t in token_ids]
            self.tokens.extend(token_ids)
            return original(token_ids)

        vocabulary.decode = decode
        self.vocabulary = vocabulary

    def encode(self, prompt):
        return self._model.encode(prompt)

    def start(self, prompts_ids):
        return self._model.start(prompts_ids)

    def usage(self, chat, index, max_tokens: int, stop) -> _Usage:
        """Token counts and why the output ended: ``"stop"`` (end of sequence, a stop string, or a
        constraint nothing can extend) or ``"length"`` (``max_tokens`` ran out)."""
        from outlines_core.processors import GuidedLogitsProcessor

        tokens = self.tokens
        finish = "stop"
        if len(tokens) >= max_tokens:
            # The budget is used up: it still ended by itself if a stop string appeared or the constraint
            # is complete and cannot be extended.
            text = self._model.vocabulary.decode(tokens).decode("utf-8", errors="replace")
            stopped = bool(stop) and any(s in text for s in stop)
            finished = False
            if index is not None:
                processor = GuidedLogitsProcessor([index], tensor_library="numpy")
                for token in tokens:
                    processor.advance([token])
                finished = processor.is_finished()[0]
            finish = "stop" if stopped or finished else "length"
        return _Usage(len(self._model.encode(chat)), len(tokens), finish)


def _message(text: str, usage: _Usage, tools) -> AIMessage:
    if not tools:
        return AIMessage(content=text, usage_metadata=usage.usage_metadata, response_metadata={"finish_reason": usage.finish_reason})
    call = json.loads(text)  # the constraint guarantees {"name": ..., "arguments": {...}}
    return AIMessage(
        content="",
        tool_calls=[{"name": call["name"], "args": call["arguments"], "id": f"call_{uuid.uuid4().hex[:24]}", "type": "tool_call"}],
        usage_metadata=usage.usage_metadata,
        response_metadata={"finish_reason": "tool_calls"},
    )


def _default_model(backend: str):
    with _DEFAULT_LOCK:
        if backend not in _DEFAULT_MODELS:
            if backend == "llamacpp":
                from backends.llamacpp import load_default_model
            else:
                from backends.transformers import load_default_model
            _DEFAULT_MODELS[backend] = load_default_model()
        return _DEFAULT_MODELS[backend]


def _load(model, backend: str):
    if model is None:
        return _default_model(backend)
    if not isinstance(model, str):
        for attribute in ("vocabulary", "encode", "start"):
            if not hasattr(model, attribute):
                raise TypeError(f"model must be a path, a name or a steerable model; {type(model).__name__} has no {attribute!r}")
        return model
    if backend == "llamacpp":
        from backends import llamacpp

        llama_cpp = llamacpp._llama_cpp()  # a clear ImportError with the install command if it is missing
        return llamacpp.from_llamacpp(llama_cpp.Llama(model_path=model, n_ctx=4096, verbose=False))
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from backends.transformers import from_transformers

    return from_transformers(AutoModelForCausalLM.from_pretrained(model), AutoTokenizer.from_pretrained(model))


def _content(message: BaseMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in message.content)


def _to_chat(messages: list[BaseMessage], tools: Optional[list] = None) -> list[dict]:
    """LangChain messages as {"role", "content"} dicts for the model's chat template. Past tool calls are
    written in the wire format the model is constrained to; tool results become user turns (small chat
    templates rarely know a tool role)."""
    chat = []
    for message in messages:
        content = _content(message)
        if isinstance(message, SystemMessage):
            role = "system"
        elif isinstance(message, HumanMessage):
            role = "user"
        elif isinstance(message, AIMessage):
            role = "assistant"
            if message.tool_calls and not content:
                content = "\n".join(json.dumps({"name": c["name"], "arguments": c["args"]}) for c in message.tool_calls)
        elif isinstance(message, ToolMessage):
            name = f" {message.name}" if message.name else ""
            role, content = "user", f"Result of the tool call{name} ({message.tool_call_id}): {content}"
        elif isinstance(message, ChatMessage):
            role = message.role
        else:
            raise ValueError(f"unsupported message type {type(message).__name__}")
        chat.append({"role": role, "content": content})
    if not chat:
        raise ValueError("no messages to answer")
    if tools:
        # The constraint guarantees a well-formed call; telling the model what each tool does lets it choose.
        lines = ["You answer by calling one of these tools, as a JSON object {\"name\": ..., \"arguments\": {...}}:"]
        for tool in tools:
            function = tool["function"]
            lines.append(f"- {function['name']}: {function.get('description', '')}".rstrip(": "))
        note = "\n".join(lines)
        if chat[0]["role"] == "system":
            chat[0] = {"role": "system", "content": f"{chat[0]['content']}\n\n{note}"}
        else:
            chat.insert(0, {"role": "system", "content": note})
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
