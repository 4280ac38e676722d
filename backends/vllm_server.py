"""A vLLM OpenAI-compatible server as a black-box backend: ``from_vllm_server(base_url)``.

vLLM constrains on its side with its structured-outputs parameters, sent in the request's extra body:
``{"structured_outputs": {"regex" | "json" | "grammar" | "choice": ...}}`` (vLLM >= 0.12, which removed
the older fields), or ``guided_regex`` / ``guided_json`` / ``guided_grammar`` / ``guided_choice`` with
``legacy_guided=True`` (vLLM < 0.12). So regexes, JSON Schemas, Lark grammars (``CFG``) and ``Choice`` all
go through; ``top_k`` too (a vLLM extra parameter). Our own server (``python -m outlines_core.serve``)
accepts the same parameters.
"""

from __future__ import annotations

from .blackbox import json_schema_or_none
from .openai import AsyncOpenAIModel, OpenAIModel

__all__ = ["VLLMServerModel", "AsyncVLLMServerModel", "from_vllm_server", "structured_outputs"]


def structured_outputs(output_type, legacy_guided: bool = False) -> dict:
    """The extra-body parameters carrying ``output_type`` to vLLM (``{}`` for plain text)."""
    from outlines_core.grammars import CFG
    from outlines_core.types import Choice, Regex, to_regex
    from outlines_core.types.python_types import writes_bare_text

    if output_type is None:
        return {}
    if isinstance(output_type, Regex):
        key, value = "regex", output_type.pattern
    elif isinstance(output_type, CFG):
        # vLLM's grammar parameter takes Lark text (or GBNF); our CFG is Lark, start rule "start" by default.
        key, value = "grammar", output_type.definition
    elif isinstance(output_type, Choice):
        key, value = "choice", [str(option) for option in output_type.options]
    elif writes_bare_text(output_type):  # as steerable models write it (True, no, 2024-01-01), not as JSON
        key, value = "regex", to_regex(output_type)
    else:
        key, value = "json", json_schema_or_none(output_type, "vLLM server")
    return {f"guided_{key}": value} if legacy_guided else {"structured_outputs": {key: value}}


class _VLLMMixin:
    backend = "vLLM server"
    sampling_keys = ("max_new_tokens", "temperature", "top_p", "top_k", "seed", "stop")
    legacy_guided = False

    def native_format(self, output_type) -> dict:
        from outlines_core.grammars import CFG

        if isinstance(output_type, CFG) and output_type.start != "start":
            from outlines_core.errors import UnsupportedTypeError

            raise UnsupportedTypeError(
                f"vLLM server: grammars are sent as Lark text, which vLLM parses from the rule 'start'; "
                f"this CFG starts at {output_type.start!r}: rename that rule to 'start'"
            )
        extra = structured_outputs(output_type, self.legacy_guided)
        return {"extra_body": extra} if extra else {}


class VLLMServerModel(_VLLMMixin, OpenAIModel):
    pass


class AsyncVLLMServerModel(_VLLMMixin, AsyncOpenAIModel):
    pass


def from_vllm_server(
    base_url: str,
    model_name: str | None = None,
    api_key: str = "EMPTY",
    *,
    async_client: bool = False,
    legacy_guided: bool = False,
):
    """A model served by ``vllm serve`` at ``base_url`` (e.g. ``http://127.0.0.1:8000/v1``).

    Without ``model_name``, the server's first model (``GET /v1/models``) is used. ``async_client=True``
    gives an async model (``await generator(...)``); ``legacy_guided=True`` sends ``guided_*`` fields for
    vLLM < 0.12."""
    import openai

    if model_name is None:
        listing = openai.OpenAI(base_url=base_url, api_key=api_key).models.list()
        if not listing.data:
            raise ValueError(f"the server at {base_url} lists no model; pass model_name")
        model_name = listing.data[0].id
    client = (openai.AsyncOpenAI if async_client else openai.OpenAI)(base_url=base_url, api_key=api_key)
    model = (AsyncVLLMServerModel if async_client else VLLMServerModel)(client, model_name, strict=False)
    model.legacy_guided = legacy_guided
    return model
