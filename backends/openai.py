"""OpenAI (and OpenAI-compatible servers) as a black-box backend: ``from_openai(openai.OpenAI(...), name)``.

JSON Schema output types go out as ``response_format={"type": "json_schema", ...}`` (strict); ``None`` is
plain text; regexes, grammars and ``Choice`` are refused (use ``from_vllm_server`` for a server that takes
them). An ``openai.AsyncOpenAI`` client gives an async model: ``await generator(...)`` and
``async for piece in generator.stream(...)``.
"""

from __future__ import annotations

from .blackbox import as_messages, check_sampling, json_schema_or_none, schema_name

__all__ = ["OpenAIModel", "AsyncOpenAIModel", "from_openai"]


class OpenAIModel:
    is_blackbox = True
    is_async = False
    backend = "OpenAI"

    def __init__(self, client, model_name: str) -> None:
        self.client = client
        self.model_name = model_name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_name!r})"

    def native_format(self, output_type) -> dict:
        """The request parameters that carry ``output_type`` (checked when the Generator is built)."""
        schema = json_schema_or_none(output_type, f"{self.backend} (response_format)")
        if schema is None:
            return {}
        return {"response_format": {"type": "json_schema", "json_schema": {"name": schema_name(output_type), "schema": schema, "strict": True}}}

    def _request(self, prompt, output_type, sampling: dict) -> dict:
        sampling = check_sampling(sampling, self.backend, ("max_new_tokens", "temperature", "top_p", "seed", "stop"))
        request = {"model": self.model_name, "messages": as_messages(prompt), **self.native_format(output_type)}
        if "max_new_tokens" in sampling:
            request["max_tokens"] = sampling.pop("max_new_tokens")
        request.update(sampling)
        return request

    def generate(self, prompt, output_type=None, **sampling) -> str:
        response = self.client.chat.completions.create(**self._request(prompt, output_type, sampling))
        return response.choices[0].message.content or ""

    def generate_stream(self, prompt, output_type=None, **sampling):
        for chunk in self.client.chat.completions.create(stream=True, **self._request(prompt, output_type, sampling)):
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content


class AsyncOpenAIModel(OpenAIModel):
    is_async = True

    async def generate(self, prompt, output_type=None, **sampling) -> str:
        response = await self.client.chat.completions.create(**self._request(prompt, output_type, sampling))
        return response.choices[0].message.content or ""

    async def generate_stream(self, prompt, output_type=None, **sampling):
        stream = await self.client.chat.completions.create(stream=True, **self._request(prompt, output_type, sampling))
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content


def from_openai(client, model_name: str) -> OpenAIModel:
    """Wrap an ``openai.OpenAI`` or ``openai.AsyncOpenAI`` client for ``Generator``."""
    import openai

    if isinstance(client, openai.AsyncOpenAI):
        return AsyncOpenAIModel(client, model_name)
    if isinstance(client, openai.OpenAI):
        return OpenAIModel(client, model_name)
    raise TypeError(f"expected an openai.OpenAI or openai.AsyncOpenAI client, got {type(client).__name__}")
