"""Edge cases of the output types where a regex could let through text the type rejects (soundness), or a
schema could be refused or mangled without a clear error: whitespace patterns, boolean options, array
bounds, recursion through allOf, ``oneOf`` over open objects, class escapes in ``pattern``, durations,
function signatures and mapping keys."""

from __future__ import annotations

import datetime
import json
import re
import typing

import jsonschema
import pydantic
import pytest

from outlines_core.errors import SchemaError, UnsupportedTypeError
from outlines_core.regex import compile_dfa
from outlines_core.types import json_schema_to_regex, parse_output, to_regex


def accepts(regex: str, text: str) -> bool:
    return compile_dfa(regex).matches(text.encode("utf-8"))


def valid(schema, text: str) -> bool:
    try:
        jsonschema.validate(json.loads(text), schema, format_checker=jsonschema.FormatChecker())
    except jsonschema.ValidationError:
        return False
    return True


# -- the JSON layer ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("whitespace", [" ?|\n?", "[ ]|\n"])
def test_whitespace_pattern_with_a_top_level_alternation_stays_between_tokens(whitespace):
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    regex = json_schema_to_regex(schema, whitespace_pattern=whitespace)
    for text in ["{", "{ ", "\n}", "{\n"]:
        assert not accepts(regex, text), text
    spaced = '{ "a" : 1 }'
    assert accepts(regex, spaced)
    if whitespace == " ?|\n?":
        assert accepts(regex, '{"a":1}')


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "oneOf": [True]},
        {"type": "string", "anyOf": [True, False]},
        {"type": "integer", "maximum": 3, "anyOf": [True]},
    ],
)
def test_a_true_option_keeps_the_sibling_keywords(schema):
    regex = json_schema_to_regex(schema)
    for text in ["null", "123", '"x"', "[1]", "2", "-7"]:
        if accepts(regex, text):
            assert valid(schema, text), (schema, text)
    assert accepts(regex, '"x"' if schema["type"] == "string" else "2")


@pytest.mark.parametrize(
    "schema, keyword",
    [
        ({"type": "array", "minItems": 1.5}, "minItems"),
        ({"type": "array", "maxItems": "3"}, "maxItems"),
        ({"type": "array", "minItems": True}, "minItems"),
        ({"type": "array", "maxItems": -1}, "maxItems"),
        ({"allOf": [{"type": "array", "maxItems": 2}, {"maxItems": "3"}]}, "maxItems"),
    ],
)
def test_bad_array_bounds_raise_naming_the_keyword(schema, keyword):
    with pytest.raises(SchemaError) as raised:
        json_schema_to_regex(schema)
    assert keyword in str(raised.value) and raised.value.pointer.endswith(keyword)


NODE = {"type": "object", "properties": {"v": {"type": "integer"}}, "required": ["v"]}


@pytest.mark.parametrize(
    "next_schema",
    [
        {"$ref": "#/$defs/n"},
        {"allOf": [{"$ref": "#/$defs/n"}]},
        {"anyOf": [{"$ref": "#/$defs/n"}], "title": "next", "minimum": 0},
    ],
    ids=["plain", "through-allOf", "option-with-siblings"],
)
def test_recursion_through_allof_is_unrolled_like_a_plain_ref(next_schema):
    node = {**NODE, "properties": {**NODE["properties"], "next": next_schema}}
    schema = {"$defs": {"n": node}, "$ref": "#/$defs/n"}
    regex = json_schema_to_regex(schema, max_recursion_depth=3)
    nested = '{"v":1}'
    for depth in range(2, 5):
        nested = f'{{"v":{depth},"next":{nested}}}'
        assert accepts(regex, nested) == (depth <= 3), (depth, nested)
        if depth <= 3:
            assert valid(schema, nested)


def test_oneof_over_open_objects_that_a_value_can_satisfy_together_is_refused():
    schema = {"oneOf": [
        {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
        {"type": "object", "properties": {"b": {"type": "integer"}}},
    ]}
    # '{"a":1}' (the first option's) also satisfies the second, which accepts any extra property.
    assert not valid(schema, '{"a":1}')
    with pytest.raises(SchemaError, match="additionalProperties") as raised:
        json_schema_to_regex(schema)
    assert raised.value.pointer == "#/oneOf"


@pytest.mark.parametrize(
    "schema",
    [
        # Told apart by JSON type.
        {"oneOf": [{"type": "string"}, {"type": "object", "properties": {"a": {"type": "integer"}}}]},
        # Each requires a property the other never writes.
        {"oneOf": [
            {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
            {"type": "object", "properties": {"b": {"type": "integer"}}, "required": ["b"]},
        ]},
        # A tag: both require it, with different constants.
        {"oneOf": [
            {"type": "object", "properties": {"kind": {"const": "x"}, "n": {"type": "integer"}}, "required": ["kind"]},
            {"type": "object", "properties": {"kind": {"enum": ["y", "z"]}, "n": {"type": "string"}},
             "required": ["kind", "n"]},
        ]},
    ],
    ids=["types", "required", "tag"],
)
def test_oneof_over_open_objects_that_are_told_apart_compiles_and_stays_sound(schema):
    dfa = compile_dfa(json_schema_to_regex(schema))
    samples = ['"s"', '{"a":1}', '{"b":2}', '{"kind":"x"}', '{"kind":"x","n":1}', '{"kind":"y","n":"t"}']
    for text in samples:
        if dfa.matches(text.encode()):
            assert valid(schema, text), text
    assert any(dfa.matches(text.encode()) for text in samples)


def test_pydantic_discriminated_union_compiles():
    class Cat(pydantic.BaseModel):
        pet_type: typing.Literal["cat"]
        meows: int

    class Dog(pydantic.BaseModel):
        pet_type: typing.Literal["dog"]
        barks: float

    class Owner(pydantic.BaseModel):
        pet: typing.Union[Cat, Dog] = pydantic.Field(discriminator="pet_type")

    regex = to_regex(Owner)
    text = '{"pet":{"pet_type":"dog","barks":2.5}}'
    assert accepts(regex, text)
    assert parse_output(text, Owner).pet.barks == 2.5
    assert not accepts(regex, '{"pet":{"pet_type":"dog","meows":2}}')


# -- pattern: the class escapes mean what every validator agrees on -------------------------------------
#: ECMA-262 (the JSON Schema spec's dialect): \s is WhiteSpace and LineTerminator, \d \w are ASCII, '.' no
#: line terminator.
ECMA_SPACE = set("\t\n\x0b\x0c\r \xa0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff") | {chr(c) for c in range(0x2000, 0x200B)}
ECMA_CLASSES = {
    "s": lambda ch: ch in ECMA_SPACE,
    "d": lambda ch: "0" <= ch <= "9",
    "w": lambda ch: ch.isascii() and (ch.isalnum() or ch == "_"),
}


def ecma_matches(pattern: str, ch: str) -> bool:
    """One character against ``^X$`` where X is a class escape, its negation, ``[^\\\\x]`` or ``.``."""
    body = pattern[1:-1]
    if body == ".":
        return ch not in "\n\r\u2028\u2029"
    negated = body.startswith("[^")
    letter = body[-2] if negated else body[1]
    inside = ECMA_CLASSES[letter.lower()](ch) != letter.isupper()
    return inside != negated


#: Code points around every class boundary: ASCII and Latin-1, the Unicode spaces, digits and letters of
#: other scripts, and the ones the dialects disagree on (U+001C to U+001F, U+0085, U+FEFF).
SAMPLE = [chr(c) for c in range(0x00, 0x100)] + [
    "\u1680", "\u2000", "\u2007", "\u200a", "\u200b", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\ufeff",
    "\u0663", "\u0966", "\uff11", "\u00e9", "\u03b1", "\u4e2d", "\U0001f600", "\u2160",
]


@pytest.mark.parametrize("pattern", [r"^\s$", r"^\S$", r"^\d$", r"^\D$", r"^\w$", r"^\W$", r"^[^\s]$", r"^[^\d]$",
                                     r"^[^\w]$", r"^[^\S]$", r"^.$"])
def test_pattern_class_escapes_produce_only_what_every_validator_accepts(pattern):
    schema = {"type": "string", "pattern": pattern}
    dfa = compile_dfa(json_schema_to_regex(schema))
    rust = pydantic.TypeAdapter(typing.Annotated[str, pydantic.StringConstraints(pattern=pattern)])
    produced = []
    for ch in SAMPLE:
        text = json.dumps(ch, ensure_ascii=False)
        if not dfa.matches(text.encode("utf-8")):
            continue
        produced.append(ch)
        assert re.search(pattern, ch), (pattern, ch)  # Python's re, as the jsonschema package uses
        assert ecma_matches(pattern, ch), (pattern, ch)  # the spec's ECMA-262
        rust.validate_python(ch)  # Pydantic's Rust regex
    assert len(produced) >= 5, (pattern, produced)  # and the class is not empty


# -- Python types ---------------------------------------------------------------------------------------
def test_durations_parse_as_pydantic_timedelta():
    regex = to_regex(datetime.timedelta)
    largest = '"P999999Y999999M999999DT999999H999999M999999S"'
    assert accepts(regex, largest)
    assert parse_output(largest, datetime.timedelta).days > 0
    assert accepts(regex, '"P999999W"') and parse_output('"P999999W"', datetime.timedelta).days == 6_999_993
    assert not accepts(regex, '"P1000000D"')
    assert not accepts(regex, '"PT99999999999999999999S"')


def test_function_arguments_with_leading_underscores_and_pydantic_names_are_kept():
    def book(_room: int, model_config: str, nights: int = 1):
        return (_room, model_config, nights)

    regex = to_regex(book)
    text = '{"_room":12,"model_config":"x"}'
    assert accepts(regex, text)
    assert not accepts(regex, '{"model_config":"x"}')  # _room is required
    arguments = parse_output(text, book)
    assert list(arguments) == ["_room", "model_config"]
    assert book(**arguments) == (12, "x", 1)


def test_typeddict_keys_with_leading_underscores_are_kept():
    class Row(typing.TypedDict):
        _id: int
        name: str

    regex = to_regex(Row)
    assert accepts(regex, '{"_id":1,"name":"a"}') and not accepts(regex, '{"name":"a"}')
    assert parse_output('{"_id":1,"name":"a"}', Row) == {"_id": 1, "name": "a"}


@pytest.mark.parametrize(
    "function, what",
    [
        (lambda a, /, b: 0, "positional-only"),
        (lambda a, *rest: 0, "*args"),
        (lambda a, **options: 0, "**kwargs"),
    ],
)
def test_arguments_that_cannot_be_passed_by_keyword_are_refused(function, what):
    function.__annotations__ = {name: int for name in function.__code__.co_varnames}
    with pytest.raises(UnsupportedTypeError, match=re.escape(what)):
        to_regex(function)


def test_mappings_with_keys_that_are_not_strings_are_refused():
    class Prices(pydantic.BaseModel):
        by_day: dict[str, list[dict[datetime.date, float]]]

    for output_type, where in [(dict[int, str], "dict"), (Prices, "Prices.by_day"), (list[dict[float, int]], "list")]:
        with pytest.raises(UnsupportedTypeError, match="keys must be strings") as raised:
            to_regex(output_type)
        assert where in str(raised.value)
    assert accepts(to_regex(dict[str, int]), '{"a":1}')


@pytest.mark.parametrize(
    "schema, text",
    [
        ({"type": "object", "const": {"a": 1}}, '{"a":1}'),  # the object regex writes no extra property (R1)
        ({"type": "object", "properties": {"a": {}, "b": {}}, "enum": [{"b": 1, "a": 2}]}, '{"b":1,"a":2}'),  # key order
        ({"enum": [1, "bc"], "pattern": "^b"}, "1"),  # pattern applies to strings only
        ({"enum": [[1, 2], [3]], "minItems": 2}, "[1,2]"),
        ({"enum": [{"k": [1, {"deep": {"er": [True]}}]}]}, '{"k":[1,{"deep":{"er":[true]}}]}'),  # deeper than {} writes
    ],
)
def test_enum_and_const_values_are_checked_against_the_sibling_keywords_themselves(schema, text):
    regex = json_schema_to_regex(schema)
    assert valid(schema, text) and accepts(regex, text)


@pytest.mark.parametrize(
    "schema, dropped",
    [
        ({"type": "object", "properties": {"a": {"type": "integer"}}, "enum": [{"a": 1}, {"a": "x"}]}, '{"a":"x"}'),
        ({"enum": ["ab", "abc", 7], "maxLength": 2}, '"abc"'),
        ({"enum": [{"a": 1}, {"b": 1}], "required": ["a"]}, '{"b":1}'),
        ({"enum": ["2024-02-30", "2024-02-29"], "format": "date"}, '"2024-02-30"'),
        ({"enum": [1.5, 2], "type": "integer"}, "1.5"),
    ],
)
def test_enum_values_the_sibling_keywords_reject_are_dropped(schema, dropped):
    regex = json_schema_to_regex(schema)
    assert not accepts(regex, dropped)
    for value in schema.get("enum", [schema.get("const")]):
        text = json.dumps(value, separators=(",", ":"))
        assert accepts(regex, text) == valid(schema, text), text


@pytest.mark.parametrize("schema", [True, False])
def test_boolean_schemas_are_output_types(schema):
    if schema is False:
        with pytest.raises(SchemaError, match="accepts no value"):
            to_regex(schema)
        return
    regex = to_regex(schema)
    for text in ['{"a":[1,null]}', "3", '"x"']:
        assert accepts(regex, text) and parse_output(text, schema) == json.loads(text)
