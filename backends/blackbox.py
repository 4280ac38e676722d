"""What black-box backends share: servers that take the constraint as a request parameter and enforce it on
their side. Each backend says which output types it can send (``native_format``) and refuses the others
with an error naming what it takes; ``Generator`` calls ``generate`` / ``generate_stream`` (or their async
forms when ``is_async``)."""

from __future__ import annotations

import json
from typing import Sequence

from outlines_core.errors import UnsupportedTypeError

#: Keyword arguments of ``Generator`` calls that black-box backends understand.
SAMPLING_KEYS = ("max_new_tokens", "temperature", "top_p", "top_k", "seed", "stop")


def check_sampling(kwargs: dict, backend: str, supported=SAMPLING_KEYS) -> dict:
    unknown = sorted(set(kwargs) - set(supported))
    if unknown:
        raise TypeError(f"{backend} does not take {unknown}; it takes {list(supported)}")
    return {k: v for k, v in kwargs.items() if v is not None}


def as_messages(prompt) -> list[dict]:
    """A str prompt becomes one user message; a list of {"role", "content"} messages passes as is."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, Sequence) and prompt and all(isinstance(m, dict) and "role" in m for m in prompt):
        return list(prompt)
    raise TypeError(f"a prompt must be a str or a list of {{'role', 'content'}} messages, got {type(prompt).__name__}")


def json_schema_or_none(output_type, backend: str, takes: str = "JSON Schema output types") -> dict | None:
    """The JSON Schema to send for ``output_type`` (``None``: plain text), or ``UnsupportedTypeError``.

    JSON Schemas (dict or JSON text), ``types.JsonSchema``, Pydantic models, dataclasses, ``TypedDict`` and
    other Python types with a JSON Schema form are sent as schemas; regexes, grammars and ``Choice`` have
    none, so servers that take only JSON Schema cannot enforce them."""
    from outlines_core.grammars import CFG
    from outlines_core.types import Choice, JsonSchema, Regex
    from outlines_core.types.python_types import json_schema_of

    if output_type is None:
        return None
    if isinstance(output_type, (Regex, CFG, Choice)):
        kind = {Regex: "a regex", CFG: "a context-free grammar", Choice: "a Choice"}[type(output_type)]
        raise UnsupportedTypeError(
            f"{backend} takes only {takes}; {kind} cannot be sent to it. Use a steerable backend "
            "(transformers, llama.cpp) or from_vllm_server, which accept regexes and grammars"
        )
    if isinstance(output_type, JsonSchema):
        output_type = output_type.schema
    if isinstance(output_type, str):
        try:
            output_type = json.loads(output_type)
        except json.JSONDecodeError:
            raise UnsupportedTypeError(
                f"{backend}: a str output type must be JSON Schema text; got {output_type[:40]!r}"
            ) from None
    if isinstance(output_type, dict):
        return output_type
    return json_schema_of(output_type)


def schema_name(output_type) -> str:
    name = getattr(output_type, "__name__", None) or getattr(getattr(output_type, "schema", None), "__name__", None)
    return name if isinstance(name, str) and name.isidentifier() else "output"
