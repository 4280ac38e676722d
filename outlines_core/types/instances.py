"""Which JSON values a JSON Schema accepts, checked on the values themselves (``satisfies``): ``enum`` and
``const`` values are kept or dropped by the sibling keywords this way (``json_schema.literal_values``), since
the regex of those keywords writes only some of the values they accept (R1: no extra property, properties
in schema order). The keywords mean what ``json_schema`` makes of them (its ``pattern`` and ``format``)."""

from __future__ import annotations

import json
from typing import Any

from ..errors import SchemaError
from ..regex import compile_dfa
from . import formats
from .json_string_pattern import pattern_in_json_string


def as_list(value) -> list:
    """A keyword that takes one name or a list of them (``type``, ``required``) as a list."""
    return [value] if isinstance(value, str) else list(value or [])


def satisfies(resolve, value: Any, schema: Any, pointer: str, depth: int = 0) -> bool:
    """Whether the JSON value ``value`` validates against ``schema``, for the keywords ``json_schema``
    supports, with the meanings it gives them (``pattern``'s and ``format``'s included); ``resolve(reference,
    pointer)`` gives what a ``$ref`` points to."""
    if schema is True or schema == {}:
        return True
    if schema is False or not isinstance(schema, dict):
        return False
    if depth > 64:
        raise SchemaError("the schema nests too deeply for checking its 'enum'/'const' values", pointer)
    if isinstance(schema.get("$ref"), str):
        siblings = {k: v for k, v in schema.items() if k != "$ref"}
        target = resolve(schema["$ref"], pointer)
        return satisfies(resolve, value, target, pointer, depth + 1) and satisfies(
            resolve, value, siblings, pointer, depth + 1
        )
    if not all(satisfies(resolve, value, part, pointer, depth + 1) for part in schema.get("allOf", ())):
        return False
    if "anyOf" in schema and not any(satisfies(resolve, value, part, pointer, depth + 1) for part in schema["anyOf"]):
        return False
    if "oneOf" in schema and sum(satisfies(resolve, value, part, pointer, depth + 1) for part in schema["oneOf"]) != 1:
        return False
    canonical = canonical_json(value)
    if "const" in schema and canonical_json(schema["const"]) != canonical:
        return False
    if "enum" in schema and canonical not in {canonical_json(option) for option in schema["enum"]}:
        return False
    kind = json_type(value)
    types = schema.get("type")
    if types is not None:
        types = as_list(types)
        if kind not in types and not (kind == "integer" and "number" in types):
            return False
    if kind == "string":
        return _string_satisfies(value, schema, pointer)
    if kind in ("integer", "number"):
        for key, holds in (("minimum", value.__ge__), ("maximum", value.__le__),
                           ("exclusiveMinimum", value.__gt__), ("exclusiveMaximum", value.__lt__)):
            if key in schema and not holds(schema[key]):
                return False
        return True
    if kind == "array":
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", len(value)):
            return False
        if schema.get("uniqueItems") and len({canonical_json(item) for item in value}) < len(value):
            return False
        prefix, items = schema.get("prefixItems", []), schema.get("items", True)
        if isinstance(items, list):
            prefix, items = items, schema.get("additionalItems", True)
        return all(
            satisfies(resolve, item, prefix[i] if i < len(prefix) else items, pointer, depth + 1)
            for i, item in enumerate(value)
        )
    if kind == "object":
        properties = schema.get("properties", {})
        if any(name not in value for name in schema.get("required", [])):
            return False
        extra = schema.get("additionalProperties", True)
        return all(
            satisfies(resolve, item, properties[name] if name in properties else extra, pointer, depth + 1)
            for name, item in value.items()
        )
    return True

def _string_satisfies(value: str, schema: dict, pointer: str) -> bool:
    from ..regex import compile_dfa

    if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", len(value)):
        return False
    contents = json.dumps(value, ensure_ascii=False)[1:-1].encode("utf-8")  # the canonical spelling
    if "pattern" in schema:
        regex = pattern_in_json_string(schema["pattern"], pointer)
        if regex is None or not compile_dfa(regex).matches(contents):
            return False
    if schema.get("format") in formats.FORMAT_REGEXES:
        return compile_dfa(formats.FORMAT_REGEXES[schema["format"]]).matches(contents)
    return True


def json_type(value: Any) -> str:
    """A JSON value's type (``integer`` for integral numbers, ``1.0`` included)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or isinstance(value, float) and value.is_integer():
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    raise SchemaError(f"'enum'/'const' holds a value that is not JSON: {value!r}")


def canonical_json(value: Any) -> str:
    """A JSON value as text such that values JSON Schema calls equal (``1`` and ``1.0``) read alike."""
    def normal(item):
        if isinstance(item, float) and item.is_integer():
            return int(item)
        if isinstance(item, dict):
            return {key: normal(sub) for key, sub in item.items()}
        if isinstance(item, list):
            return [normal(sub) for sub in item]
        return item

    return json.dumps(normal(value), sort_keys=True, separators=(",", ":"))
