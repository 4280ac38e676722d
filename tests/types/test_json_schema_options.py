"""JSON Schema details beyond the keyword table: string escapes and Unicode, patterns over escaped text,
enum values filtered by sibling keywords, 'required' without 'properties', the whitespace option and the
depth options."""

import functools
import json
import re

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from outlines_core.errors import SchemaError
from outlines_core.types import JsonSchema, json_schema_to_regex, parse_output, to_regex

FAST = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
VALIDATOR = jsonschema.Draft202012Validator


@functools.lru_cache(maxsize=None)
def _strings(regex: str):
    return st.from_regex(re.compile(regex, re.ASCII), fullmatch=True)


def generated(schema, data, **options):
    return data.draw(_strings(json_schema_to_regex(schema, **options)))


def compact(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@FAST
@given(value=st.text())
def test_any_text_is_a_string_in_canonical_encoding(value):
    if re.search("[\ud800-\udfff]", value):
        return  # lone surrogates cannot be encoded as UTF-8, so a model cannot write them
    assert re.fullmatch(json_schema_to_regex({"type": "string"}), compact(value), re.ASCII)
    assert re.fullmatch(json_schema_to_regex({"type": "string"}), json.dumps(value), re.ASCII)  # \\u escapes


@pytest.mark.parametrize("schema", [{"type": "string", "minLength": 2, "maxLength": 4}, {"type": "string", "maxLength": 1}])
@FAST
@given(data=st.data())
def test_lengths_count_code_points_and_escapes_count_once(schema, data):
    text = generated(schema, data)
    VALIDATOR(schema).validate(json.loads(text))


@pytest.mark.parametrize("value, ok", [('"\\"\\\\"', True), ('"\\u001f\\n"', True), ('"é\\t"', True),
                                       ('"😀😀"', True), ('"abcde"', False), ('"a"', False),
                                       # in length-bounded strings only control characters use \\u escapes
                                       ('"\\u00e9\\n"', False), ('"\\ud83d\\ude00"', False)])
def test_length_examples(value, ok):
    assert bool(re.fullmatch(json_schema_to_regex({"type": "string", "minLength": 2, "maxLength": 4}), value)) == ok


PATTERNS = ["^a.b$", "[\"\\\\]+", "^\\d{2,3}[-/ ]x", "(?:foo|ba[rz])$", "^[^a-z]*$", "\\w+@\\w+"]


@pytest.mark.parametrize("pattern", PATTERNS)
@FAST
@given(data=st.data())
def test_pattern_soundness_over_escaped_text(pattern, data):
    schema = {"type": "string", "pattern": pattern}
    value = json.loads(generated(schema, data))
    assert re.search(pattern, value, re.ASCII)


@pytest.mark.parametrize("pattern", PATTERNS)
@FAST
@given(data=st.data())
def test_pattern_completeness_on_canonical_encodings(pattern, data):
    value = data.draw(st.from_regex(re.compile(pattern, re.ASCII)))
    if re.search("[\ud800-\udfff]", value) or (pattern.endswith("$") and value.endswith("\n")):
        return  # unencodable; or Python's '$' before a final newline, which ECMA-262 (JSON Schema) rejects
    if "." in pattern and re.search("[\r\u2028\u2029]", value):
        return  # Python's '.' takes the line terminators besides '\n', ECMA-262's does not: not generated
    regex = json_schema_to_regex({"type": "string", "pattern": pattern})
    assert re.fullmatch(regex, compact(value), re.ASCII), compact(value)


def test_enum_values_are_filtered_by_sibling_keywords():
    schema = {"type": "string", "maxLength": 3, "enum": ["abc", "abcd", 1, None]}
    regex = json_schema_to_regex(schema)
    assert [v for v in ['"abc"', '"abcd"', "1", "null"] if re.fullmatch(regex, v)] == ['"abc"']
    with pytest.raises(SchemaError, match="accepts no value"):
        json_schema_to_regex({"type": "integer", "enum": ["a", "b"]})
    const = json_schema_to_regex({"type": "object", "properties": {"a": {"const": 5, "minimum": 6}, "b": {"type": "null"}}})
    assert re.fullmatch(const, '{"b":null}') and not re.fullmatch(const, '{"a":5}')


def test_required_without_properties_takes_additional_properties():
    regex = json_schema_to_regex({"type": "object", "required": ["id"], "additionalProperties": {"type": "integer"}})
    assert re.fullmatch(regex, '{"id":3}') and re.fullmatch(regex, '{"id":3,"x":4}')
    assert not re.fullmatch(regex, "{}") and not re.fullmatch(regex, '{"id":"3"}')
    anything = json_schema_to_regex({"type": "object", "required": ["a", "b"]})
    assert re.fullmatch(anything, '{"a":[1,{"c":null}],"b":"x"}') and not re.fullmatch(anything, '{"a":1}')
    with pytest.raises(SchemaError):
        json_schema_to_regex({"type": "object", "required": ["a"], "additionalProperties": False})


WHITESPACE_SCHEMA = {
    "type": "object",
    "properties": {"a": {"type": "array", "items": {"type": "integer"}}, "b": {"enum": [{"k": [1, 2]}, "x"]},
                   "c": {"type": "object", "additionalProperties": {"type": "boolean"}}},
    "required": ["a", "b"],
}


@pytest.mark.parametrize("whitespace", [r"[ ]?", r"[\n ]*", r"(?:\n {0,8})?", r"[\t\r\n ]{0,3}"])
@FAST
@given(data=st.data())
def test_whitespace_option_output_parses_and_validates(whitespace, data):
    text = generated(WHITESPACE_SCHEMA, data, whitespace_pattern=whitespace)
    VALIDATOR(WHITESPACE_SCHEMA).validate(json.loads(text))


def test_whitespace_option_accepts_pretty_printed_json():
    value = {"a": [1, 2], "b": {"k": [1, 2]}, "c": {"x": True, "y": False}}
    regex = json_schema_to_regex(WHITESPACE_SCHEMA, whitespace_pattern=r"[\n ]*")
    assert re.fullmatch(regex, json.dumps(value, indent=2))
    assert re.fullmatch(regex, json.dumps(value, separators=(" , ", " : ")))
    assert not re.fullmatch(json_schema_to_regex(WHITESPACE_SCHEMA), json.dumps(value))  # compact by default
    assert re.fullmatch(json_schema_to_regex(WHITESPACE_SCHEMA), compact(value))


@pytest.mark.parametrize("whitespace", [r"\s*", r"[ a]?", r"(", r"x*"])
def test_whitespace_option_must_be_json_whitespace(whitespace):
    with pytest.raises(ValueError, match="whitespace_pattern"):
        json_schema_to_regex({"type": "integer"}, whitespace_pattern=whitespace)


def test_any_value_depth():
    nested = '{"a":[{"b":1}]}'
    assert re.fullmatch(json_schema_to_regex({}, any_value_depth=3), nested)
    assert not re.fullmatch(json_schema_to_regex({}, any_value_depth=2), nested)
    assert re.fullmatch(json_schema_to_regex(True, any_value_depth=0), '"x"')
    assert not re.fullmatch(json_schema_to_regex(True, any_value_depth=0), "[]")


@FAST
@given(data=st.data())
def test_any_value_is_json(data):
    json.loads(generated({}, data, whitespace_pattern="[ ]?"))


def test_false_schema_and_empty_results_are_refused():
    with pytest.raises(SchemaError, match="accepts no value"):
        json_schema_to_regex(False)
    with pytest.raises(SchemaError):
        json_schema_to_regex({"type": "array", "items": False, "minItems": 1})


def test_json_schema_output_type_with_a_pydantic_model():
    from pydantic import BaseModel

    class Item(BaseModel):
        name: str
        count: int = 0

    output_type = JsonSchema(Item, whitespace_pattern=r"[ ]?")
    assert re.fullmatch(to_regex(output_type), '{"name": "x", "count": 2}')
    assert parse_output('{"name": "x"}', output_type) == Item(name="x")


def test_property_order_follows_the_schema():
    schema = {"type": "object", "properties": {"z": {"type": "integer"}, "a": {"type": "integer"}}, "required": ["z", "a"]}
    regex = json_schema_to_regex(schema)
    assert re.fullmatch(regex, '{"z":1,"a":2}') and not re.fullmatch(regex, '{"a":2,"z":1}')


UNSUPPORTED_CASES = [
    ("not", {"type": "string"}), ("if", {}), ("then", {}), ("else", {}), ("patternProperties", {"^x": {}}),
    ("dependentSchemas", {"a": {}}), ("dependentRequired", {"a": ["b"]}), ("dependencies", {"a": ["b"]}),
    ("propertyNames", {"maxLength": 3}), ("unevaluatedProperties", False), ("unevaluatedItems", False),
    ("contains", {"type": "integer"}), ("minContains", 1), ("maxContains", 2), ("multipleOf", 3),
    ("minProperties", 1), ("maxProperties", 2), ("$dynamicRef", "#node"), ("$recursiveRef", "#"),
]


@pytest.mark.parametrize("keyword, value", UNSUPPORTED_CASES)
def test_unsupported_keywords_raise_with_keyword_and_pointer_when_nested(keyword, value):
    schema = {"type": "object", "properties": {"a/b": {"type": "array", "items": {keyword: value}}}}
    with pytest.raises(SchemaError) as caught:
        json_schema_to_regex(schema)
    assert f"'{keyword}'" in str(caught.value)
    assert caught.value.pointer == f"#/properties/a~1b/items/{keyword}"
    assert caught.value.pointer in str(caught.value)


@pytest.mark.parametrize(
    "schema, keyword",
    [
        ({"type": "array", "uniqueItems": True}, "uniqueItems"),
        ({"type": "string", "format": "color"}, "format"),
        ({"type": "integer", "format": "celsius"}, "format"),
        ({"type": "string", "pattern": "(?<=a)b"}, "pattern"),
        ({"type": "string", "pattern": "^a$b"}, "pattern"),
        ({"type": "string", "format": "date", "maxLength": 5}, "format"),
        ({"type": "string", "pattern": "a", "minLength": 5}, "pattern"),
        ({"type": "strin"}, "type"),
        ({"$ref": "#/$defs/nope"}, "$ref"),
    ],
)
def test_constraints_that_cannot_be_expressed_are_refused(schema, keyword):
    with pytest.raises(SchemaError) as caught:
        json_schema_to_regex(schema)
    assert keyword in str(caught.value) and caught.value.pointer == f"#/{keyword}"


def test_unique_items_is_fine_when_at_most_one_item():
    regex = json_schema_to_regex({"type": "array", "items": {"type": "integer"}, "uniqueItems": True, "maxItems": 1})
    assert re.fullmatch(regex, "[3]") and re.fullmatch(regex, "[]") and not re.fullmatch(regex, "[3,4]")


@pytest.mark.parametrize("fmt, low, high", [("int8", -128, 127), ("uint8", 0, 255), ("int32", -(2**31), 2**31 - 1)])
def test_integer_formats_are_ranges(fmt, low, high):
    regex = json_schema_to_regex({"type": "integer", "format": fmt})
    for value in (low, high, 0):
        assert re.fullmatch(regex, str(value))
    for value in (low - 1, high + 1):
        assert not re.fullmatch(regex, str(value))


def test_integral_float_constants_also_match_as_integers():
    regex = json_schema_to_regex({"type": "integer", "const": 2.0})
    assert re.fullmatch(regex, "2") and not re.fullmatch(regex, "2.0")
    assert re.fullmatch(json_schema_to_regex({"enum": [2.0]}), "2.0")


def test_all_of_merges_and_refuses_conflicts():
    regex = json_schema_to_regex({"allOf": [{"type": "integer", "minimum": 0}, {"maximum": 5}, {"type": ["integer", "null"]}]})
    assert [t for t in ["-1", "0", "5", "6", "null"] if re.fullmatch(regex, t)] == ["0", "5"]
    with pytest.raises(SchemaError, match="incompatible types"):
        json_schema_to_regex({"allOf": [{"type": "string"}, {"type": "integer"}]})


def test_one_of_needs_disjoint_options():
    tagged = {"oneOf": [
        {"type": "object", "properties": {"kind": {"const": "a"}, "x": {"type": "integer"}}, "required": ["kind", "x"]},
        {"type": "object", "properties": {"kind": {"const": "b"}, "y": {"type": "string"}}, "required": ["kind", "y"]},
    ]}
    regex = json_schema_to_regex(tagged)
    assert re.fullmatch(regex, '{"kind":"a","x":1}') and re.fullmatch(regex, '{"kind":"b","y":""}')
    with pytest.raises(SchemaError) as caught:
        json_schema_to_regex({"oneOf": [{"type": "string"}, {"type": "string", "maxLength": 2}]})
    assert caught.value.pointer == "#/oneOf"


def test_errors_inside_all_of_name_the_branch_and_self_reference_is_refused():
    with pytest.raises(SchemaError) as caught:
        json_schema_to_regex({"allOf": [{"type": "integer"}, {"not": {"const": 3}}]})
    assert caught.value.pointer == "#/allOf/1/not"
    with pytest.raises(SchemaError, match="allOf"):
        json_schema_to_regex({"$defs": {"a": {"allOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"})


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "format": "uri", "minLength": 1, "maxLength": 2083},
        {"type": "string", "format": "uri", "maxLength": 20},
        {"type": "string", "format": "date", "maxLength": 10},
        {"type": "string", "format": "uuid", "minLength": 36, "maxLength": 36},
        {"type": "string", "pattern": "^[a-z]+$", "minLength": 2, "maxLength": 5},
        {"type": "string", "pattern": "^[A-Z]{2}-[0-9]{3}$", "maxLength": 6},
        {"type": "string", "pattern": "^[^a-z]*$", "maxLength": 3},
    ],
)
@FAST
@given(data=st.data())
def test_formats_and_patterns_with_lengths_are_sound(schema, data):
    VALIDATOR(schema, format_checker=VALIDATOR.FORMAT_CHECKER).validate(json.loads(generated(schema, data)))


def test_formats_and_patterns_with_lengths_that_cannot_be_expressed_are_refused():
    for schema, keyword in [({"type": "string", "format": "email", "maxLength": 20}, "format"),
                            ({"type": "string", "format": "date", "minLength": 11}, "format"),
                            ({"type": "string", "pattern": "[a-z]+", "maxLength": 5}, "pattern"),
                            ({"type": "string", "pattern": "^(ab)+$", "maxLength": 5}, "pattern"),
                            ({"type": "string", "format": "date", "pattern": "^2"}, "format")]:
        with pytest.raises(SchemaError) as caught:
            json_schema_to_regex(schema)
        assert caught.value.pointer == f"#/{keyword}", schema
    regex = json_schema_to_regex({"type": "string", "pattern": "^[a-z]+$", "minLength": 2, "maxLength": 3})
    assert [t for t in ['"a"', '"ab"', '"abc"', '"abcd"', '"AB"'] if re.fullmatch(regex, t)] == ['"ab"', '"abc"']


def test_docs_list_every_refused_and_ignored_keyword():
    from pathlib import Path

    from outlines_core.types.json_schema import ANNOTATIONS, UNSUPPORTED

    docs = (Path(__file__).resolve().parents[2] / "docs" / "types.md").read_text()
    for keyword in sorted(UNSUPPORTED) + sorted(ANNOTATIONS):
        assert f"`{keyword}`" in docs, keyword
    for case_keyword, _ in UNSUPPORTED_CASES:
        assert case_keyword in UNSUPPORTED
    assert {k for k, _ in UNSUPPORTED_CASES} == set(UNSUPPORTED)
