"""Ollama as a black-box backend: ``from_ollama(ollama.Client(...), model_name)``.

JSON Schema output types go out as Ollama's ``format`` parameter; ``None`` is plain text; regexes, grammars
and ``Choice`` are refused. Sampling arguments map to ``options`` (``max_new_tokens`` -> ``num_predict``).
An ``ollama.AsyncClient`` gives an async model.
"""

from __future__ import annotations

from .blackbox import as_messages, check_sampling, json_schema_or_none

__all__ = ["OllamaModel", "AsyncOllamaModel", "from_ollama"]


class OllamaModel:
    is_blackbox = True
    is_async = False
    backend = "Ollama"

    def __init__(self, client, model_name: str) -> None:
        self.client = client
        self.model_name = model_name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_name!r})"

    def native_format(self, output_type) -> dict:
        schema = json_schema_or_none(output_type, f"{self.backend} (format)")
        return {} if schema is None else {"format": schema}

    def _request(self, prompt, output_type, sampling: dict) -> dict:
        sampling = check_sampling(sampling, self.backend)
        options = dict(sampling)
        if "max_new_tokens" in options:
            options["num_predict"] = options.pop("max_new_tokens")
        if isinstance(options.get("stop"), str):
            options["stop"] = [options["stop"]]
        return {"model": self.model_name, "messages": as_messages(prompt), "options": options, **self.native_format(output_type)}

    def generate(self, prompt, output_type=None, **sampling) -> str:
        return self.client.chat(stream=False, **self._request(prompt, output_type, sampling)).message.content or ""

    def generate_stream(self, prompt, output_type=None, **sampling):
        for part in self.client.chat(stream=True, **self._request(prompt, output_type, sampling)):
            if part.message.content:
                yield part.message.content


class AsyncOllamaModel(OllamaModel):
    is_async = True

    async def generate(self, prompt, output_type=None, **sampling) -> str:
        response = await self.client.chat(stream=False, **self._request(prompt, output_type, sampling))
        return response.message.content or ""

    async def generate_stream(self, prompt, output_type=None, **sampling):
        async for part in await self.client.chat(stream=True, **self._request(prompt, output_type, sampling)):
            if part.message.content:
                yield part.message.content


def from_ollama(client, model_name: str) -> OllamaModel:
    """Wrap an ``ollama.Client`` or ``ollama.AsyncClient`` for ``Generator``."""
    import ollama

    if isinstance(client, ollama.AsyncClient):
        return AsyncOllamaModel(client, model_name)
    if isinstance(client, ollama.Client):
        return OllamaModel(client, model_name)
    raise TypeError(f"expected an ollama.Client or ollama.AsyncClient, got {type(client).__name__}")
