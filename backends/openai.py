"""OpenAI (and OpenAI-compatible servers) as a black-box backend: ``from_openai(openai.OpenAI(...), name)``.

JSON Schema output types go out as ``response_format={"type": "json_schema", "json_schema": {"name",
"schema", "strict": True}}``; the builtin ``dict`` as ``{"type": "json_object"}`` (JSON mode); ``None`` is
plain text. Regexes, grammars and ``Choice`` are refused (use ``from_vllm_server`` for a server that takes
them). An ``openai.AsyncOpenAI`` client gives an async model: ``await generator(...)`` and
``async for piece in generator.stream(...)``.
"""

from __future__ import annotations

from .blackbox import (
    ANY_JSON_OBJECT,
    AsyncBlackBoxModel,
    BlackBoxModel,
    RefusalError,
    as_messages,
    check_sampling,
    json_schema_or_none,
    schema_name,
)

__all__ = ["OpenAIModel", "AsyncOpenAIModel", "from_openai", "strict_schema"]

#: The Generator keywords OpenAI's chat completions take (it has no top_k).
OPENAI_SAMPLING = ("max_new_tokens", "temperature", "top_p", "seed", "stop")


def strict_schema(schema):
    """``schema`` with every object that lists ``properties`` closed (``additionalProperties: false``)
    unless it says otherwise: OpenAI's strict mode requires it, and Pydantic does not write it. Closing
    only narrows what matches (no extra keys), so the answer still validates against the original schema.
    Other strict-mode rules (every property required, an object at the root) are not rewritten, because
    that would change what the schema means: OpenAI's 400 then names the problem, or pass ``strict=False``."""
    if isinstance(schema, list):
        return [strict_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {key: strict_schema(value) for key, value in schema.items()}
    if "properties" in closed and "additionalProperties" not in closed and closed.get("type", "object") == "object":
        closed["additionalProperties"] = False
    return closed


class OpenAIModel(BlackBoxModel):
    backend = "OpenAI"
    sampling_keys = OPENAI_SAMPLING

    def __init__(self, client, model_name: str, strict: bool = True) -> None:
        super().__init__(client, model_name)
        self.strict = strict

    def native_format(self, output_type) -> dict:
        """The request parameters that carry ``output_type`` (checked when the Generator is built)."""
        schema = json_schema_or_none(output_type, f"{self.backend} (response_format)")
        if schema is None:
            return {}
        if schema == ANY_JSON_OBJECT:
            return {"response_format": {"type": "json_object"}}
        name = schema_name(output_type, schema)
        if self.strict:
            schema = strict_schema(schema)
        spec = {"name": name, "schema": schema, "strict": self.strict}
        return {"response_format": {"type": "json_schema", "json_schema": spec}}

    def request(self, prompt, output_type=None, **sampling) -> dict:
        """The keyword arguments of ``client.chat.completions.create`` for one prompt."""
        sampling = check_sampling(sampling, self.backend, self.sampling_keys)
        request = {"model": self.model_name, "messages": as_messages(prompt), **self.native_format(output_type)}
        if "max_new_tokens" in sampling:
            request["max_tokens"] = sampling.pop("max_new_tokens")
        extra = {key: sampling.pop(key) for key in ("top_k",) if key in sampling}  # only servers that take it
        request.update(sampling)
        if extra:
            request["extra_body"] = {**request.get("extra_body", {}), **extra}
        return request

    def _request(self, prompt, output_type, sampling: dict) -> dict:  # earlier name, kept for callers
        return self.request(prompt, output_type, **sampling)

    @staticmethod
    def _answer(response) -> tuple[str, bool]:
        choice = response.choices[0]
        refusal = getattr(choice.message, "refusal", None)
        if refusal:
            raise RefusalError(f"the model refused: {refusal}")
        return choice.message.content or "", choice.finish_reason == "length"

    @staticmethod
    def _piece(chunk) -> tuple[str, bool]:
        if not chunk.choices:  # e.g. the usage chunk
            return "", False
        choice = chunk.choices[0]
        refusal = getattr(choice.delta, "refusal", None)
        if refusal:
            raise RefusalError(f"the model refused: {refusal}")
        return choice.delta.content or "", choice.finish_reason == "length"

    def _send(self, request):
        return self._answer(self.client.chat.completions.create(**request))

    def _send_stream(self, request):
        for chunk in self.client.chat.completions.create(stream=True, **request):
            yield self._piece(chunk)


class AsyncOpenAIModel(AsyncBlackBoxModel, OpenAIModel):
    async def _asend(self, request):
        return self._answer(await self.client.chat.completions.create(**request))

    async def _asend_stream(self, request):
        async for chunk in await self.client.chat.completions.create(stream=True, **request):
            yield self._piece(chunk)


def from_openai(client, model_name: str, *, strict: bool = True) -> OpenAIModel:
    """Wrap an ``openai.OpenAI`` or ``openai.AsyncOpenAI`` client for ``Generator``.

    ``strict`` is the ``json_schema.strict`` flag sent with JSON Schema output types (OpenAI enforces the
    schema exactly only in strict mode, which accepts a subset of JSON Schema)."""
    import openai

    if isinstance(client, openai.AsyncOpenAI):
        return AsyncOpenAIModel(client, model_name, strict)
    if isinstance(client, openai.OpenAI):
        return OpenAIModel(client, model_name, strict)
    raise TypeError(f"from_openai expects an openai.OpenAI or openai.AsyncOpenAI client, got {type(client).__name__}")
