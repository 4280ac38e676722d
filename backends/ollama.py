"""Ollama as a black-box backend: ``from_ollama(ollama.Client(...), model_name)``.

JSON Schema output types go out as Ollama's ``format`` parameter (the schema; ``"json"`` for the builtin
``dict``, any JSON object); ``None`` is plain text; regexes, grammars and ``Choice`` are refused. Sampling
arguments go in ``options`` (``max_new_tokens`` -> ``num_predict``; ``temperature``, ``top_p``, ``top_k``,
``seed``, ``stop``). An ``ollama.AsyncClient`` gives an async model. Prompts go to ``/api/chat`` (a str is
one user message), so the model's chat template applies.
"""

from __future__ import annotations

from .blackbox import ANY_JSON_OBJECT, AsyncBlackBoxModel, BlackBoxModel, as_messages, check_sampling, json_schema_or_none

__all__ = ["OllamaModel", "AsyncOllamaModel", "from_ollama"]


class OllamaModel(BlackBoxModel):
    backend = "Ollama"

    def native_format(self, output_type) -> dict:
        schema = json_schema_or_none(output_type, f"{self.backend} (format)")
        if schema is None:
            return {}
        return {"format": "json" if schema == ANY_JSON_OBJECT else schema}

    def request(self, prompt, output_type=None, **sampling) -> dict:
        """The keyword arguments of ``client.chat`` for one prompt (``stream`` apart)."""
        options = check_sampling(sampling, self.backend)
        if "max_new_tokens" in options:
            options["num_predict"] = options.pop("max_new_tokens")
        request = {"model": self.model_name, "messages": as_messages(prompt), **self.native_format(output_type)}
        if options:
            request["options"] = options
        return request

    def _request(self, prompt, output_type, sampling: dict) -> dict:  # earlier name, kept for callers
        return self.request(prompt, output_type, **sampling)

    @staticmethod
    def _part(part) -> tuple[str, bool]:
        return part.message.content or "", bool(part.done) and part.done_reason == "length"

    def _send(self, request):
        return self._part(self.client.chat(stream=False, **request))

    def _send_stream(self, request):
        for part in self.client.chat(stream=True, **request):
            yield self._part(part)


class AsyncOllamaModel(AsyncBlackBoxModel, OllamaModel):
    async def _asend(self, request):
        return self._part(await self.client.chat(stream=False, **request))

    async def _asend_stream(self, request):
        async for part in await self.client.chat(stream=True, **request):
            yield self._part(part)


def from_ollama(client, model_name: str) -> OllamaModel:
    """Wrap an ``ollama.Client`` or ``ollama.AsyncClient`` for ``Generator``."""
    import ollama

    if isinstance(client, ollama.AsyncClient):
        return AsyncOllamaModel(client, model_name)
    if isinstance(client, ollama.Client):
        return OllamaModel(client, model_name)
    raise TypeError(f"from_ollama expects an ollama.Client or ollama.AsyncClient, got {type(client).__name__}")
