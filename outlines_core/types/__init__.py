"""Output types: what users pass to ``Generator`` and how each becomes a regex.

``Regex(pattern)`` is the building block; ``to_regex(output_type)`` turns any supported output type (a
``Regex``, a JSON Schema, a Pydantic model, a Python type, a ``Choice``, a function) into the regex string
the ``Index`` compiles; ``parse_output(text, output_type)`` turns generated text back into a value.
"""

from __future__ import annotations

from ..grammars import CFG
from . import formats as _formats
from .json_schema import json_schema_to_regex
from .python_types import Choice, JsonSchema, parse_output
from .regex import Regex, to_regex

Email = Regex(_formats.EMAIL)
UUID = Regex(_formats.UUID)
DateTime = Regex(_formats.DATE_TIME)
Date = Regex(_formats.DATE)
Time = Regex(_formats.TIME)
IPv4 = Regex(_formats.IPV4)
IPv6 = Regex(_formats.IPV6)
Hostname = Regex(_formats.HOSTNAME)
URI = Regex(_formats.URI)
Duration = Regex(_formats.DURATION)
Integer = Regex(r"-?(?:0|[1-9][0-9]*)")
Number = Regex(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")

__all__ = [
    "CFG", "Choice", "Date", "DateTime", "Duration", "Email", "Hostname", "IPv4", "IPv6", "Integer", "JsonSchema",
    "Number", "Regex", "Time", "URI", "UUID", "json_schema_to_regex", "parse_output", "to_regex",
]
