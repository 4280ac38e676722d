"""JSON Schema -> regex.

The regex matches JSON texts that validate against the schema. Properties are emitted in schema order,
compact by default (``whitespace_pattern`` puts a pattern between tokens). Keywords that restrict the
output are either honoured exactly or refused with a ``SchemaError`` naming the keyword and its JSON
pointer; annotations (``title``, ``description``, ``default``, ...) are ignored. Where the exact language
would be impractical the regex is a documented subset, still sound (``docs/types.md``, relaxations R1-R7):
no extra properties when ``additionalProperties`` is absent, recursion unrolled to a depth, bounded numbers
in plain decimal notation, ``{}`` depth-bounded, and a few format subsets.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from ..errors import SchemaError
from . import formats
from .instances import as_list, satisfies
from .json_string_pattern import JSON_STRING_CHAR, pattern_in_json_string
from .numbers import integer_range_regex, number_range_regex
from .overlap import check_exclusive

#: One JSON string character in any spelling (raw, short escape, ``\\u`` escape, surrogate pair).
STRING_CHAR = JSON_STRING_CHAR
#: One character inside a length-bounded string, where each copy costs automaton states: raw, a short
#: escape, or a ``\\u`` escape of a control character (the spellings ``json.dumps`` uses; other characters
#: are written raw). About 13 DFA states per counted character instead of about 20.
BOUNDED_STRING_CHAR = r'(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u00[01][0-9a-fA-F])'
INTEGER = r"-?(?:0|[1-9][0-9]*)"
NUMBER = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
BOOLEAN = r"(?:true|false)"
NULL = r"null"

ANNOTATIONS = {
    "title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated",
    "readOnly", "writeOnly", "$anchor", "discriminator", "contentMediaType", "contentEncoding", "nullable",
}
UNSUPPORTED = {
    "not": "negation cannot be expressed by the generator",
    "if": "conditional schemas are not supported", "then": "conditional schemas are not supported",
    "else": "conditional schemas are not supported",
    "patternProperties": "property names by pattern are not supported",
    "dependentSchemas": "dependencies between properties are not supported",
    "dependentRequired": "dependencies between properties are not supported",
    "dependencies": "dependencies between properties are not supported",
    "propertyNames": "constraints on property names are not supported",
    "unevaluatedProperties": "not supported", "unevaluatedItems": "not supported",
    "contains": "not supported", "minContains": "not supported", "maxContains": "not supported",
    "multipleOf": "not supported", "minProperties": "not supported", "maxProperties": "not supported",
    "$dynamicRef": "not supported", "$recursiveRef": "not supported",
}
KNOWN = {
    "type", "properties", "required", "additionalProperties", "items", "prefixItems", "minItems", "maxItems",
    "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "$defs", "definitions", "minLength", "maxLength",
    "pattern", "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "uniqueItems",
    "additionalItems",
}


@dataclass(frozen=True)
class JsonSchemaOptions:
    """``whitespace_pattern``: regex allowed between JSON tokens (``None``: compact). ``max_recursion_depth``:
    how many times a recursive ``$ref`` is unrolled. ``any_value_depth``: nesting allowed for ``{}``."""

    whitespace_pattern: str | None = None
    max_recursion_depth: int = 3
    any_value_depth: int = 2


def json_schema_to_regex(
    schema: Any, *, whitespace_pattern: str | None = None, max_recursion_depth: int = 3, any_value_depth: int = 2
) -> str:
    """The regex of JSON documents valid against ``schema`` (a dict, a bool, or a JSON string).

    Raises
    ------
    SchemaError
        For an invalid schema, an unsupported keyword or a constraint that cannot be expressed; the message
        names the keyword and the error carries its JSON pointer.
    """
    if isinstance(schema, (str, bytes)):
        try:
            schema = json.loads(schema)
        except json.JSONDecodeError as error:
            raise SchemaError(f"the schema is not valid JSON: {error}") from error
    if not isinstance(schema, (dict, bool)):
        raise SchemaError(f"a schema must be an object or a boolean, got {type(schema).__name__}")
    if whitespace_pattern:
        _check_whitespace(whitespace_pattern)
    builder = _Builder(schema, JsonSchemaOptions(whitespace_pattern, max_recursion_depth, any_value_depth))
    try:
        regex = builder.build(schema, "#", ())
    except RecursionError as error:
        raise SchemaError("the schema nests too deeply (or 'allOf' refers to itself)") from error
    if regex is None:
        raise SchemaError("the schema accepts no value (or only values nested deeper than max_recursion_depth)")
    return regex


def _check_whitespace(pattern: str) -> None:
    """The whitespace option may only produce JSON whitespace (space, tab, newline, carriage return), or
    the output would not parse."""
    from ..errors import RegexSyntaxError
    from ..regex import compile_dfa

    try:
        dfa = compile_dfa(pattern)
    except RegexSyntaxError as error:
        raise ValueError(f"whitespace_pattern {pattern!r} is not a valid regex: {error.reason}") from error
    other = [b for b in range(256) if b not in (0x20, 0x09, 0x0A, 0x0D)]
    if (dfa.transitions[1:][:, other] != 0).any():
        raise ValueError(
            f"whitespace_pattern {pattern!r} can match characters other than JSON whitespace (space, \\t, \\n, \\r)"
        )


#: OpenAPI integer formats and their ranges.
INTEGER_FORMATS = {
    "int8": (-(2**7), 2**7 - 1), "int16": (-(2**15), 2**15 - 1), "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1), "uint8": (0, 2**8 - 1), "uint16": (0, 2**16 - 1), "uint32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
}


_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems")


class _Builder:
    def __init__(self, root: Any, options: JsonSchemaOptions) -> None:
        self.root = root
        self.options = options
        # Grouped: a pattern with a top-level '|' (" ?|\n?") would otherwise split the regex around it.
        self.ws = f"(?:{options.whitespace_pattern})" if options.whitespace_pattern else ""

    # Each build method returns a regex, or None when the (sub)schema accepts nothing at this depth.
    def build(self, schema: Any, pointer: str, ref_stack: tuple[str, ...]) -> str | None:
        if schema is True or schema == {}:
            return self.any_value(self.options.any_value_depth)
        if schema is False:
            return None
        if not isinstance(schema, dict):
            raise SchemaError(f"a subschema must be an object or a boolean, got {type(schema).__name__}", pointer)
        for keyword in schema:
            if keyword in UNSUPPORTED:
                raise SchemaError(f"keyword '{keyword}' is not supported: {UNSUPPORTED[keyword]}", f"{pointer}/{keyword}")
            if keyword not in KNOWN and keyword not in ANNOTATIONS and not keyword.startswith("x-"):
                raise SchemaError(f"unknown keyword '{keyword}'", f"{pointer}/{keyword}")
        if "$ref" in schema:
            return self.ref(schema, pointer, ref_stack)
        if "allOf" in schema:
            followed: list[str] = []
            merged = self.merge_all_of(schema, pointer, followed)
            # The references merged in count as entered: a recursive one met again through 'allOf' (or an
            # 'anyOf' option with sibling keywords) is unrolled max_recursion_depth times, as a plain one is.
            if any(ref_stack.count(reference) >= self.options.max_recursion_depth for reference in followed):
                return None
            return self.build(merged, pointer, ref_stack + tuple(followed))
        if "const" in schema:
            return self.literal_values([schema["const"]], schema, pointer)
        if "enum" in schema:
            if not isinstance(schema["enum"], list) or not schema["enum"]:
                raise SchemaError("'enum' must be a non-empty array", f"{pointer}/enum")
            return self.literal_values(schema["enum"], schema, pointer)
        for keyword in ("anyOf", "oneOf"):
            if keyword in schema:
                return self.union(schema, keyword, pointer, ref_stack)
        types = schema.get("type")
        if types is None:
            types = self.infer_types(schema)
        if isinstance(types, str):
            types = [types]
        if not isinstance(types, list) or not types:
            raise SchemaError("'type' must be a string or a non-empty array of strings", f"{pointer}/type")
        options = []
        for type_name in types:
            built = self.typed(type_name, schema, pointer, ref_stack)
            if built is not None:
                options.append(built)
        return _alternation(options)

    def infer_types(self, schema: dict) -> list[str]:
        if "properties" in schema or "additionalProperties" in schema or "required" in schema:
            return ["object"]
        if "items" in schema or "prefixItems" in schema:
            return ["array"]
        if {"minLength", "maxLength", "pattern", "format"} & schema.keys():
            return ["string"]
        if {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"} & schema.keys():
            return ["number"]
        return ["object", "array", "string", "number", "boolean", "null"]

    def typed(self, type_name: str, schema: dict, pointer: str, ref_stack) -> str | None:
        if type_name == "string":
            return self.string(schema, pointer)
        if type_name == "integer":
            return self.integer(schema, pointer)
        if type_name == "number":
            return self.number(schema, pointer)
        if type_name == "boolean":
            return BOOLEAN
        if type_name == "null":
            return NULL
        if type_name == "array":
            return self.array(schema, pointer, ref_stack)
        if type_name == "object":
            return self.object(schema, pointer, ref_stack)
        raise SchemaError(f"unknown type '{type_name}'", f"{pointer}/type")

    # -- references ---------------------------------------------------------------------------------
    def ref(self, schema: dict, pointer: str, ref_stack) -> str | None:
        reference = schema["$ref"]
        if not isinstance(reference, str) or not reference.startswith("#"):
            raise SchemaError(f"only local references ('#/...') are supported, got {reference!r}", f"{pointer}/$ref")
        if ref_stack.count(reference) >= self.options.max_recursion_depth:
            return None  # recursion unrolled deep enough: this branch is cut
        target = self.resolve(reference, pointer)
        siblings = {k: v for k, v in schema.items() if k != "$ref" and k not in ANNOTATIONS}
        if siblings:
            target = {"allOf": [target, siblings]}
        return self.build(target, reference, ref_stack + (reference,))

    def resolve(self, reference: str, pointer: str) -> Any:
        node = self.root
        path = reference[1:].lstrip("/")
        if not path:
            return node
        for part in path.split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise SchemaError(f"unresolvable reference {reference!r}", f"{pointer}/$ref")
        return node

    # -- combinators --------------------------------------------------------------------------------
    def union(self, schema: dict, keyword: str, pointer: str, ref_stack) -> str | None:
        options = schema[keyword]
        if not isinstance(options, list) or not options:
            raise SchemaError(f"'{keyword}' must be a non-empty array", f"{pointer}/{keyword}")
        rest = {k: v for k, v in schema.items() if k not in (keyword, "$defs", "definitions") and k not in ANNOTATIONS}
        built: list[tuple[int, Any, str]] = []  # (position, the option with the siblings merged in, its regex)
        for position, option in enumerate(options):
            if rest and option is True:
                option = rest  # 'true' accepts anything: the option is the sibling keywords alone
            elif rest and isinstance(option, dict):
                option = {"allOf": [rest, option]}
            regex = self.build(option, f"{pointer}/{keyword}/{position}", ref_stack)
            if regex is not None:
                built.append((position, option, regex))
        if keyword == "oneOf" and len(built) > 1:
            check_exclusive(self, built, pointer)
        return _alternation([regex for _, _, regex in built])

    def effective(self, schema: Any, pointer: str) -> Any:
        """``schema`` with its references followed and its ``allOf`` merged."""
        for _ in range(32):
            if not (isinstance(schema, dict) and isinstance(schema.get("$ref"), str)):
                break
            target = self.resolve(schema["$ref"], pointer)
            siblings = {k: v for k, v in schema.items() if k != "$ref" and k not in ANNOTATIONS}
            schema = {"allOf": [target, siblings]} if siblings else target
        if isinstance(schema, dict) and "allOf" in schema:
            schema = self.merge_all_of(schema, pointer)
        return schema

    def merge_all_of(self, schema: dict, pointer: str, followed: list[str] | None = None) -> dict:
        """``schema``'s ``allOf`` branches merged into one schema; the references resolved on the way are
        appended to ``followed``."""
        followed = [] if followed is None else followed
        merged: dict = {k: v for k, v in schema.items() if k != "allOf"}
        # additionalProperties only sees the properties of its own subschema: remember who set it.
        closed: list[tuple[set, str]] = []
        if merged.get("additionalProperties", True) is not True:
            closed.append((set(merged.get("properties", {})), pointer))
        for position, part in enumerate(schema["allOf"]):
            where = f"{pointer}/allOf/{position}"
            if part is True or part == {}:
                continue
            if not isinstance(part, dict):
                raise SchemaError("'allOf' with a false schema accepts nothing", where)
            hops = 0
            while "$ref" in part:
                hops += 1
                if hops > 32:
                    raise SchemaError("'$ref' chain inside 'allOf' does not end (recursive)", f"{where}/$ref")
                extra = {k: v for k, v in part.items() if k != "$ref"}
                followed.append(part["$ref"])
                target = self.resolve(part["$ref"], where)
                if target is False:
                    raise SchemaError("'allOf' with a false schema accepts nothing", f"{where}/$ref")
                part = {**({} if target is True else target), **extra}
            for keyword in part:  # name the branch in the error, not the merged schema
                if keyword in UNSUPPORTED:
                    raise SchemaError(f"keyword '{keyword}' is not supported: {UNSUPPORTED[keyword]}", f"{where}/{keyword}")
            if "allOf" in part:
                part = self.merge_all_of(part, where, followed)
            if part.get("additionalProperties", True) is not True:
                closed.append((set(part.get("properties", {})), where))
            for key, value in part.items():
                if key in ANNOTATIONS:
                    continue
                if key not in merged:
                    merged[key] = value
                elif key == "properties":
                    properties = dict(merged[key])
                    for name, sub in value.items():
                        properties[name] = sub if name not in properties else {"allOf": [properties[name], sub]}
                    merged[key] = properties
                elif key == "required":
                    merged[key] = list(dict.fromkeys([*merged[key], *value]))
                elif key in _LOWER_BOUNDS or key in _UPPER_BOUNDS:
                    for bound in (merged[key], value):
                        if isinstance(bound, bool) or not isinstance(bound, (int, float)):
                            raise SchemaError(f"'{key}' must be a number", f"{where}/{key}")
                    merged[key] = max(merged[key], value) if key in _LOWER_BOUNDS else min(merged[key], value)
                elif key == "type":
                    left = {merged[key]} if isinstance(merged[key], str) else set(merged[key])
                    right = {value} if isinstance(value, str) else set(value)
                    if "number" in left and "integer" in right or "integer" in left and "number" in right:
                        left |= {"integer"}
                        right |= {"integer"}
                    common = [t for t in ("object", "array", "string", "integer", "number", "boolean", "null") if t in left & right]
                    if not common:
                        raise SchemaError(f"'allOf' combines incompatible types {sorted(left)} and {sorted(right)}", where)
                    merged[key] = common
                elif merged[key] != value:
                    raise SchemaError(f"'allOf' cannot merge two different values of '{key}'", f"{where}/{key}")
        names = set(merged.get("properties", {}))
        for own, where in closed:
            if names - own:
                raise SchemaError(
                    f"'additionalProperties' here also applies to properties {sorted(names - own)} defined in "
                    "other 'allOf' branches, which JSON Schema then forbids; move the properties together",
                    f"{where}/additionalProperties",
                )
        return merged

    # -- leaves ---------------------------------------------------------------------------------------
    def literal_values(self, values: list, schema: dict, pointer: str) -> str | None:
        """``enum``/``const`` values; the schema's other keywords (``type``, bounds, ...) still apply, so
        values they reject are dropped. Each value is checked against those keywords themselves
        (``instances.satisfies``), not against their regex, which writes only some of the values they
        accept (R1: no extra property; properties in schema order)."""
        rest = {
            k: v for k, v in schema.items()
            if k not in ("enum", "const", "$defs", "definitions") and k not in ANNOTATIONS
        }
        if rest:  # refuses what the rest could not be compiled with (an unsupported keyword, a bad bound)
            compact = _Builder(self.root, JsonSchemaOptions(None, self.options.max_recursion_depth, self.options.any_value_depth))
            compact.build(rest, pointer, ())
        # Integers are written canonically: under 'type: integer' an integral float (2.0) is written 2 only.
        integers_only = "integer" in as_list(rest.get("type")) and "number" not in as_list(rest.get("type"))
        texts = []
        for value in values:
            if rest and not satisfies(self.resolve, value, rest, pointer):
                continue
            # An integral float (1.0) equals the integer (1) in JSON Schema: both spellings are offered.
            spellings = [value, int(value)] if isinstance(value, float) and value.is_integer() else [value]
            for spelling in spellings:
                if integers_only and isinstance(spelling, float):
                    continue
                text = json.dumps(spelling, separators=(",", ":"), ensure_ascii=False)
                texts.append(re.escape(text) if not self.ws else self.spaced_literal(spelling))
        return _alternation(texts)

    def spaced_literal(self, value: Any) -> str:
        """A literal object/array value with the whitespace pattern allowed between its tokens."""
        if isinstance(value, dict):
            items = [f"{re.escape(json.dumps(k, ensure_ascii=False))}{self.ws}:{self.ws}{self.spaced_literal(v)}" for k, v in value.items()]
            return r"\{" + self.ws + f"{self.ws},{self.ws}".join(items) + self.ws + r"\}"
        if isinstance(value, list):
            return r"\[" + self.ws + f"{self.ws},{self.ws}".join(self.spaced_literal(v) for v in value) + self.ws + r"\]"
        return re.escape(json.dumps(value, ensure_ascii=False))

    def string(self, schema: dict, pointer: str) -> str | None:
        min_length = schema.get("minLength", 0)
        max_length = schema.get("maxLength")
        for key, value in (("minLength", min_length), ("maxLength", max_length)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise SchemaError(f"'{key}' must be a non-negative integer", f"{pointer}/{key}")
        if max_length is not None and max_length < min_length:
            raise SchemaError("'maxLength' is smaller than 'minLength'", f"{pointer}/maxLength")
        if "format" in schema:
            if "pattern" in schema:
                raise SchemaError("'format' combined with 'pattern' is not supported", f"{pointer}/format")
            if schema["format"] not in formats.FORMAT_REGEXES:
                raise SchemaError(f"format '{schema['format']}' is not supported (supported: {sorted(formats.FORMAT_REGEXES)})", f"{pointer}/format")
            regex = formats.format_with_lengths(schema["format"], min_length, max_length)
            if regex is None:
                raise SchemaError(
                    f"format '{schema['format']}' combined with minLength {min_length} / maxLength {max_length} "
                    "is not supported (only bounds its values always meet, and maxLength on 'uri')",
                    f"{pointer}/format",
                )
            return f'"{regex}"'
        if "pattern" in schema:
            inner = pattern_in_json_string(schema["pattern"], pointer, min_length, max_length)
            return None if inner is None else f'"{inner}"'
        upper = "" if max_length is None else str(max_length)
        if min_length == 0 and max_length is None:
            return f'"{STRING_CHAR}*"'
        return f'"{BOUNDED_STRING_CHAR}{{{min_length},{upper}}}"'

    def string_pattern(self, pattern: str, pointer: str) -> str:
        """A JSON Schema ``pattern`` (search semantics) over the encoded string contents."""
        return pattern_in_json_string(pattern, pointer)

    def integer(self, schema: dict, pointer: str) -> str | None:
        low, high = self.bounds(schema, pointer, integral=True)
        format_name = schema.get("format")
        if format_name in INTEGER_FORMATS:  # OpenAPI-style sized integers: their range is a restriction
            format_low, format_high = INTEGER_FORMATS[format_name]
            low = format_low if low is None else max(low, format_low)
            high = format_high if high is None else min(high, format_high)
            if low > high:
                return None
        else:
            self.check_non_string_format(schema, pointer)
        if low is None and high is None:
            return INTEGER
        return integer_range_regex(low, high)

    def check_non_string_format(self, schema: dict, pointer: str) -> None:
        """A ``format`` on a number that we do not know could restrict it: refuse rather than ignore.
        String formats do not apply to numbers, and ``float``/``double`` only name the storage."""
        format_name = schema.get("format")
        if format_name is None or format_name in formats.FORMAT_REGEXES or format_name in ("float", "double"):
            return
        if format_name in INTEGER_FORMATS and "integer" in as_list(schema.get("type")):
            return
        raise SchemaError(f"format '{format_name}' on a number is not supported", f"{pointer}/format")

    def number(self, schema: dict, pointer: str) -> str | None:
        """Unbounded: any JSON number. Bounded: plain decimal notation (no exponent), exact on the bounds
        (see ``numbers.number_range_regex``)."""
        if schema.get("format") in INTEGER_FORMATS:
            return self.integer({**schema, "type": "integer"}, pointer)
        self.check_non_string_format(schema, pointer)
        self.bounds(schema, pointer, integral=False)  # validates the bound values
        if not {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"} & schema.keys():
            return NUMBER
        low = high = None
        low_exclusive = high_exclusive = False
        for key in ("minimum", "exclusiveMinimum"):
            if key in schema and (low is None or schema[key] >= low):
                low_exclusive = key == "exclusiveMinimum"
                low = schema[key]
        for key in ("maximum", "exclusiveMaximum"):
            if key in schema and (high is None or schema[key] <= high):
                high_exclusive = key == "exclusiveMaximum"
                high = schema[key]
        try:
            return number_range_regex(low, high, low_exclusive=low_exclusive, high_exclusive=high_exclusive)
        except ValueError:
            return None  # no number in range

    def bounds(self, schema: dict, pointer: str, integral: bool):
        low = high = None
        for key in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
            if key not in schema:
                continue
            value = schema[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise SchemaError(f"'{key}' must be a finite number", f"{pointer}/{key}")
            if key.startswith("exclusive"):
                value = (math.floor(value) + 1 if key == "exclusiveMinimum" else math.ceil(value) - 1) if integral else value
            elif integral:
                value = math.ceil(value) if key == "minimum" else math.floor(value)
            if "inimum" in key:
                low = value if low is None else max(low, value)
            else:
                high = value if high is None else min(high, value)
        if low is not None and high is not None and low > high:
            raise SchemaError("the bounds leave no value", pointer)
        return low, high

    # -- containers ----------------------------------------------------------------------------------
    def array(self, schema: dict, pointer: str, ref_stack) -> str | None:
        ws = self.ws
        sep = f"{ws},{ws}"
        min_items = schema.get("minItems", 0)
        max_items = schema.get("maxItems")
        for key, value in (("minItems", min_items), ("maxItems", max_items)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise SchemaError(f"'{key}' must be a non-negative integer", f"{pointer}/{key}")
        prefix_schemas = schema.get("prefixItems", [])
        items = schema.get("items", True)
        if isinstance(items, list):  # draft-4 tuple form
            prefix_schemas, items = items, schema.get("additionalItems", True)
        if schema.get("uniqueItems") and (max_items is None or max_items > 1):
            raise SchemaError(
                "'uniqueItems' cannot be expressed for arrays that may hold more than one item",
                f"{pointer}/uniqueItems",
            )
        prefix: list[str] = []
        for position, item_schema in enumerate(prefix_schemas):
            built = self.build(item_schema, f"{pointer}/prefixItems/{position}", ref_stack)
            if built is None:  # nothing can stand at this position: the array ends before it
                max_items = position if max_items is None else min(max_items, position)
                break
            prefix.append(built)
        item = None if items is False else self.build(items, f"{pointer}/items", ref_stack)
        if item is None:
            max_items = len(prefix) if max_items is None else min(max_items, len(prefix))
        if max_items is not None and max_items < min_items:
            return None

        def from_position(i: int) -> str:
            """Items i.. of the array, each after a separator unless it is the first."""
            lead = sep if i > 0 else ""
            if max_items is not None and i >= max_items:
                return ""
            if i < len(prefix):
                rest = f"{lead}{prefix[i]}{from_position(i + 1)}"
                return rest if i < min_items else f"(?:{rest})?"
            low = max(0, min_items - i)
            high = None if max_items is None else max_items - i
            if i > 0:
                return f"(?:{sep}{item}){{{low},{'' if high is None else high}}}"
            more = f"(?:{sep}{item}){{{max(0, low - 1)},{'' if high is None else high - 1}}}"
            return f"{item}{more}" if low > 0 else f"(?:{item}{more})?"

        return rf"\[{ws}{from_position(0)}{ws}\]"

    def object(self, schema: dict, pointer: str, ref_stack) -> str | None:
        ws = self.ws
        properties = schema.get("properties", {})
        if not isinstance(properties, dict):
            raise SchemaError("'properties' must be an object", f"{pointer}/properties")
        required = schema.get("required", [])
        if not isinstance(required, list) or not all(isinstance(name, str) for name in required):
            raise SchemaError("'required' must be an array of strings", f"{pointer}/required")
        undefined = [name for name in required if name not in properties]
        if undefined:
            # A required property without its own schema takes 'additionalProperties' (any value if absent).
            extra_schema = schema.get("additionalProperties", True)
            if extra_schema is False:
                return None  # it must be present yet may not be: nothing validates
            properties = {**properties, **{name: extra_schema for name in undefined}}
        members: list[tuple[str, bool]] = []
        for name, sub in properties.items():
            value = self.build(sub, f"{pointer}/properties/{_escape_pointer(name)}", ref_stack)
            if value is None:
                if name in required:
                    return None
                continue
            key = re.escape(json.dumps(name, ensure_ascii=False))
            members.append((f"{key}{ws}:{ws}{value}", name in required))
        extra = schema.get("additionalProperties", None)
        extra_member = None
        if extra not in (None, False):
            value = self.build(extra, f"{pointer}/additionalProperties", ref_stack)
            if value is not None:
                extra_member = f'"{_string_not_in(list(properties))}"{ws}:{ws}{value}'
        return rf"\{{{ws}{_object_members(members, f'{ws},{ws}', extra_member)}{ws}\}}"

    # -- any JSON value --------------------------------------------------------------------------------
    def any_value(self, depth: int) -> str:
        ws = self.ws
        scalar = f'(?:"{STRING_CHAR}*"|{NUMBER}|true|false|null)'
        if depth <= 0:
            return scalar
        inner = self.any_value(depth - 1)
        array = rf"\[{ws}(?:{inner}(?:{ws},{ws}{inner})*)?{ws}\]"
        member = f'"{STRING_CHAR}*"{ws}:{ws}{inner}'
        obj = rf"\{{{ws}(?:{member}(?:{ws},{ws}{member})*)?{ws}\}}"
        return f"(?:{scalar}|{array}|{obj})"


def _object_members(members: list[tuple[str, bool]], sep: str, extra: str | None) -> str:
    """Members in order, optional ones possibly absent, then any number of ``extra`` members; separators
    only between members that are present."""
    # after[i]: members i.. once something was written; first[i]: members i.. with nothing written yet.
    after = f"(?:{sep}{extra})*" if extra else ""
    first = f"(?:{extra}(?:{sep}{extra})*)?" if extra else ""
    for member, required in reversed(members):
        if required:
            first = f"{member}{after}"
            after = f"{sep}{member}{after}"
        else:
            first = f"(?:{member}{after}|{first})" if first else f"(?:{member}{after})?"
            after = f"(?:{sep}{member})?{after}"
    return first


#: The escapes ``json.dumps`` writes: each character has exactly one spelling with these (raw, or this).
CANONICAL_ESCAPES = {chr(code): json.dumps(chr(code))[1:-1] for code in [*range(0x20), 0x22, 0x5C]}
#: An escape as ``json.dumps`` writes it (lower-case hex), and one character in canonical spelling.
CANONICAL_ESCAPE = r'\\(?:["\\bfnrt]|u00(?:0[0-7be-f]|1[0-9a-f]))'
CANONICAL_CHAR = rf'(?:[^"\\\x00-\x1f]|{CANONICAL_ESCAPE})'


def _string_not_in(names: list[str]) -> str:
    """JSON string contents that differ from every name in ``names`` (extra property keys).

    Without names any spelling is allowed. With names, characters are spelled canonically (raw, or the
    escape ``json.dumps`` writes), so that the spelling determines the string and no other spelling of a
    defined name (``\\u0061`` for ``a``) can slip through the exclusion.
    """
    if not names:
        return f"{STRING_CHAR}*"
    trie: dict = {}
    for name in names:
        node = trie
        for char in name:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict) -> str:
        options = []
        if "" not in node:
            options.append("")
        children = [c for c in node if c]
        excluded = "".join(re.escape(c) for c in children if c not in CANONICAL_ESCAPES)
        first = [f"[^\"\\\\\\x00-\\x1f{excluded}]"]
        if any(c in CANONICAL_ESCAPES for c in children):
            first += [re.escape(e) for c, e in CANONICAL_ESCAPES.items() if c not in children]
        else:
            first.append(CANONICAL_ESCAPE)
        options.append("(?:" + "|".join(first) + f"){CANONICAL_CHAR}*")
        for char in children:
            options.append(f"{re.escape(CANONICAL_ESCAPES.get(char, char))}{build(node[char])}")
        return "(?:" + "|".join(options) + ")"

    return build(trie)


def _alternation(options: list[str]) -> str | None:
    unique = list(dict.fromkeys(options))
    if not unique:
        return None
    if len(unique) == 1:
        return unique[0]
    return "(?:" + "|".join(f"(?:{o})" if "|" in o else o for o in unique) + ")"


def _escape_pointer(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")
