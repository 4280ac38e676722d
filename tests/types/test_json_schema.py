"""JSON Schema -> regex: generated strings validate (soundness), valid instances match (completeness)."""

import copy
import functools
import json
import re
from decimal import Decimal

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from outlines_core.errors import SchemaError
from outlines_core.regex import compile_dfa
from outlines_core.types import json_schema_to_regex

STRING = {"type": "string"}
SCHEMAS = {
    "scalars": {"type": "object", "properties": {"s": STRING, "i": {"type": "integer"}, "n": {"type": "number"},
                "b": {"type": "boolean"}, "z": {"type": "null"}}, "required": ["s", "i", "n", "b", "z"],
                "additionalProperties": False},
    "optional": {"type": "object", "properties": {"a": {"type": "integer"}, "b": STRING, "c": {"type": "boolean"}},
                 "required": ["b"], "additionalProperties": False},
    "all_optional": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "boolean"}},
                     "additionalProperties": False},
    "type_list": {"type": ["integer", "null", "string"], "maxLength": 3},
    "bounded_int": {"type": "integer", "minimum": -15, "exclusiveMaximum": 260},
    "nonnegative_number": {"type": "number", "minimum": 0},
    "string_lengths": {"type": "string", "minLength": 2, "maxLength": 5},
    "pattern": {"type": "string", "pattern": "^[A-Z]{2}-[0-9]{3}$"},
    "unanchored_pattern": {"type": "string", "pattern": "ab+c"},
    "enum_const": {"type": "object", "properties": {"e": {"enum": ["red", 1, None, [1, 2], {"k": "v"}]},
                   "c": {"const": "fixed"}}, "required": ["e", "c"], "additionalProperties": False},
    "array_bounds": {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 4},
    "prefix_items": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": False,
                     "minItems": 1},
    "prefix_then_items": {"type": "array", "prefixItems": [{"type": "boolean"}], "items": {"type": "null"}},
    "any_of": {"anyOf": [{"type": "integer"}, {"type": "object", "properties": {"x": STRING}, "required": ["x"],
                                                 "additionalProperties": False}]},
    "one_of_disjoint": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
    "all_of": {"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                         {"properties": {"b": STRING}, "required": ["b"]}]},
    "refs": {"$defs": {"point": {"type": "object", "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
                                 "required": ["x", "y"], "additionalProperties": False}},
             "type": "object", "properties": {"a": {"$ref": "#/$defs/point"}, "b": {"$ref": "#/properties/a"}},
             "required": ["a"], "additionalProperties": False},
    "recursive": {"$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer"},
                                                                       "next": {"$ref": "#/$defs/node"}},
                                     "required": ["v"], "additionalProperties": False}},
                  "$ref": "#/$defs/node"},
    "additional_schema": {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"],
                          "additionalProperties": {"type": "boolean"}},
    "additional_true": {"type": "object", "properties": {"k": {"type": "null"}}, "additionalProperties": True},
    "formats": {"type": "object", "properties": {f: {"type": "string", "format": f} for f in
                ["date-time", "date", "time", "duration", "email", "uuid", "uri", "ipv4", "ipv6", "hostname"]},
                "additionalProperties": False},
    "anything": {},
    "definitions_draft7": {"definitions": {"flag": {"type": "boolean"}}, "type": "array", "items": {"$ref": "#/definitions/flag"},
                           "maxItems": 3},
    "boolean_subschemas": {"type": "object", "properties": {"yes": True, "no": False, "n": {"type": "integer"}},
                           "required": ["n"], "additionalProperties": False},
    "number_bounds": {"type": "object", "properties": {"ratio": {"type": "number", "minimum": 0, "maximum": 1},
                      "temp": {"type": "number", "exclusiveMinimum": -273.15, "maximum": 1000.5},
                      "small": {"type": "integer", "minimum": -128, "maximum": 127}}, "required": ["ratio", "temp", "small"],
                      "additionalProperties": False},
    "required_without_properties": {"type": "object", "required": ["a"], "additionalProperties": {"type": "integer"}},
    "unicode_literals": {"enum": ["é", "a\"b\\c", "line\nbreak", "😀", {"ключ": ["値"]}]},
    "escaped_pattern": {"type": "string", "pattern": "^a.c$"},
    "pattern_and_enum": {"type": "string", "pattern": "^[a-z]+$", "enum": ["ok", "NO", "fine"]},
    "nested": {"type": "object", "properties": {"user": {"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 20}, "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 3}},
        "required": ["name"], "additionalProperties": False}, "active": {"type": "boolean"}},
        "required": ["user", "active"], "additionalProperties": False},
}
# Completeness is checked on the canonical compact form; hypothesis-jsonschema cannot generate for these.
NO_COMPLETENESS = {"formats", "all_of", "recursive", "anything", "additional_true", "unanchored_pattern", "pattern",
                   "escaped_pattern",
                   "boolean_subschemas"}  # 'true' is any value up to any_value_depth (2) levels of nesting
WHITESPACE = r"[ ]?"


@functools.lru_cache(maxsize=None)
def regex_strings(regex: str):
    return st.from_regex(re.compile(regex, re.ASCII), fullmatch=True)


@pytest.mark.parametrize("name", list(SCHEMAS))
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_soundness_strings_from_the_regex_validate(name, data):
    schema = SCHEMAS[name]
    for whitespace in (None, WHITESPACE):
        text = data.draw(regex_strings(json_schema_to_regex(schema, whitespace_pattern=whitespace)), label="text")
        jsonschema.validate(json.loads(text), schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


@pytest.mark.parametrize("name", [n for n in SCHEMAS if n not in NO_COMPLETENESS])
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_completeness_valid_instances_match(name, data):
    schema = SCHEMAS[name]
    instance = data.draw(from_schema(draft7(schema)), label="instance")
    jsonschema.Draft202012Validator(schema).validate(instance)
    compact = canonical(instance, schema, schema, ",", ":")
    if re.search(r"[\ud800-\udfff]", compact):
        return  # lone surrogates cannot be UTF-8 encoded, so no model can emit them
    regex = json_schema_to_regex(schema)
    assert re.fullmatch(regex, compact, re.ASCII), compact
    spaced = canonical(instance, schema, schema, ", ", ": ")
    assert re.fullmatch(json_schema_to_regex(schema, whitespace_pattern=WHITESPACE), spaced, re.ASCII), spaced


def draft7(schema):
    """A copy of ``schema`` (from_schema edits its argument) with 2020-12 ``prefixItems`` in the draft-7
    tuple form that hypothesis-jsonschema understands."""
    if isinstance(schema, list):
        return [draft7(s) for s in schema]
    if not isinstance(schema, dict):
        return copy.deepcopy(schema)
    result = {k: draft7(v) for k, v in schema.items()}
    if "prefixItems" in result:
        result["items"], result["additionalItems"] = result.pop("prefixItems"), result.get("items", True)
    return result


def canonical(value, schema, root, comma, colon) -> str:
    """The canonical spelling of ``value``: properties in schema order (then the others), numbers in plain
    decimal notation (what bounded numbers are written in), no whitespace but the given separators."""
    while isinstance(schema, dict) and "$ref" in schema:
        schema = resolve(root, schema["$ref"])
    if isinstance(schema, dict):
        for keyword in ("anyOf", "oneOf"):
            for option in schema.get(keyword, []):
                if jsonschema.Draft202012Validator(option if "$ref" not in option else resolve(root, option["$ref"])).is_valid(value):
                    return canonical(value, option, root, comma, colon)
    schema = schema if isinstance(schema, dict) else {}
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        keys = [k for k in properties if k in value] + [k for k in value if k not in properties]
        extra = schema.get("additionalProperties", {})
        members = [json.dumps(k, ensure_ascii=False) + colon
                   + canonical(value[k], properties.get(k, extra if isinstance(extra, dict) else {}), root, comma, colon)
                   for k in keys]
        return "{" + comma.join(members) + "}"
    if isinstance(value, list):
        prefix = schema.get("prefixItems", [])
        items = schema.get("items", {})
        return "[" + comma.join(
            canonical(v, prefix[i] if i < len(prefix) else items if isinstance(items, dict) else {}, root, comma, colon)
            for i, v in enumerate(value)) + "]"
    if isinstance(value, float):
        text = format(Decimal(repr(value)), "f")
        return text[1:] if text.startswith("-") and Decimal(text) == 0 else text
    return json.dumps(value, ensure_ascii=False)


def resolve(root, reference):
    node = root
    for part in reference.lstrip("#/").split("/"):
        node = node[part]
    return node


def test_format_examples_match():
    regex = json_schema_to_regex(SCHEMAS["formats"])
    instance = {"date-time": "2024-02-29T13:45:00Z", "date": "2024-02-29", "time": "13:45:00+01:00",
                "duration": "P1DT2H", "email": "a.b@example.com", "uuid": "123e4567-e89b-12d3-a456-426614174000",
                "uri": "https://example.com/a?b=c#d", "ipv4": "10.0.0.1", "ipv6": "2001:db8::1", "hostname": "api.example.com"}
    assert re.fullmatch(regex, json.dumps(instance, separators=(",", ":")))


def test_recursion_is_unrolled_to_the_configured_depth():
    schema = SCHEMAS["recursive"]
    deep = {"v": 1, "next": {"v": 2, "next": {"v": 3}}}
    text = json.dumps(deep, separators=(",", ":"))
    assert re.fullmatch(json_schema_to_regex(schema, max_recursion_depth=3), text)
    assert not re.fullmatch(json_schema_to_regex(schema, max_recursion_depth=2), text)


@pytest.mark.parametrize(
    "schema, keyword, pointer",
    [
        ({"not": {"type": "string"}}, "not", "#/not"),
        ({"type": "object", "properties": {"a": {"if": {}, "then": {}}}}, "if", "#/properties/a/if"),
        ({"patternProperties": {"^x": {}}}, "patternProperties", "#/patternProperties"),
        ({"dependentSchemas": {}}, "dependentSchemas", "#/dependentSchemas"),
        ({"type": "array", "uniqueItems": True}, "uniqueItems", "#/uniqueItems"),
        ({"type": "object", "minProperties": 1}, "minProperties", "#/minProperties"),
        ({"type": "integer", "multipleOf": 3}, "multipleOf", "#/multipleOf"),
        ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, "oneOf", "#/oneOf"),
        ({"type": "string", "pattern": "a\\1"}, "pattern", "#/pattern"),
        ({"type": "string", "pattern": "(?=a)"}, "pattern", "#/pattern"),
        ({"type": "string", "format": "color"}, "format", "#/format"),
        ({"$ref": "#/$defs/missing"}, "$ref", "#/$ref"),
        ({"$ref": "https://example.com/s.json"}, "$ref", "#/$ref"),
        ({"typo": 1}, "typo", "#/typo"),
        ({"allOf": [{"properties": {"a": {}}}, {"properties": {"b": {}}, "additionalProperties": False}]},
         "additionalProperties", "#/allOf/1/additionalProperties"),
        ({"type": "object", "properties": {"a": {}}, "required": "a"}, "required", "#/required"),
    ],
)
def test_unsupported_keywords_name_keyword_and_pointer(schema, keyword, pointer):
    with pytest.raises(SchemaError) as caught:
        json_schema_to_regex(schema)
    assert f"'{keyword}'" in str(caught.value) or keyword in str(caught.value)
    assert caught.value.pointer == pointer


def test_schema_as_json_text_and_invalid_json():
    assert json_schema_to_regex('{"type": "integer"}') == json_schema_to_regex({"type": "integer"})
    with pytest.raises(SchemaError, match="not valid JSON"):
        json_schema_to_regex("{type: integer}")


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_every_schema_compiles_within_the_dfa_bound(name):
    dfa = compile_dfa(json_schema_to_regex(SCHEMAS[name]))
    assert dfa.num_states > 1
