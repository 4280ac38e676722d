"""Python types, Pydantic models, choices and functions as output types."""

import dataclasses
import functools
import datetime
import enum
import json
import re
from typing import Literal, Optional, TypedDict, Union

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import AnyUrl, BaseModel, Field, HttpUrl, TypeAdapter, conint, confloat, constr

from outlines_core.errors import SchemaError, UnsupportedTypeError
from outlines_core.types import Choice, JsonSchema, Regex, parse_output, to_regex

FAST = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


@functools.lru_cache(maxsize=None)
def _regex_strings(regex: str):
    return st.from_regex(re.compile(regex, re.ASCII), fullmatch=True)


def strings(output_type):
    return _regex_strings(to_regex(output_type))


# -- bare scalars: the value itself, not a JSON document ------------------------------------------------

def test_int_is_the_canonical_integer_regex():
    regex = to_regex(int)
    for text in ["0", "-7", "42", "1234567890123"]:
        assert re.fullmatch(regex, text, re.ASCII)
    for text in ["007", "+1", "1.0", '"1"', "", "-"]:
        assert not re.fullmatch(regex, text, re.ASCII)


@FAST
@given(data=st.data())
@pytest.mark.parametrize("output_type", [int, float, bool, str, datetime.datetime, datetime.date, datetime.time])
def test_scalar_strings_parse_back(output_type, data):
    text = data.draw(strings(output_type))
    value = parse_output(text, output_type)
    assert isinstance(value, output_type)
    if output_type is bool:
        assert str(value) == text
    if output_type is int:
        assert value == int(text)


@FAST
@given(value=st.integers() | st.floats(allow_nan=False, allow_infinity=False))
def test_every_int_and_float_matches(value):
    if isinstance(value, int):
        assert re.fullmatch(to_regex(int), str(value), re.ASCII)
    assert re.fullmatch(to_regex(float), repr(float(value)), re.ASCII)


@FAST
@given(value=st.datetimes())
def test_every_naive_datetime_matches(value):
    assert re.fullmatch(to_regex(datetime.datetime), value.isoformat(), re.ASCII)
    assert re.fullmatch(to_regex(datetime.date), value.date().isoformat(), re.ASCII)
    assert re.fullmatch(to_regex(datetime.time), value.time().isoformat(), re.ASCII)


def test_bool_is_python_spelling():
    assert {t for t in ["True", "False", "true", "1"] if re.fullmatch(to_regex(bool), t)} == {"True", "False"}
    assert parse_output("False", bool) is False


# -- choices --------------------------------------------------------------------------------------------

class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 10


@pytest.mark.parametrize(
    "output_type, options",
    [
        (Choice(["yes", "no", "maybe (a.k.a. perhaps)"]), ["yes", "no", "maybe (a.k.a. perhaps)"]),
        (Literal["a+b", "c"], ["a+b", "c"]),
        (Color, ["red", "green"]),
        (Level, ["1", "10"]),
    ],
)
def test_choices_produce_exactly_one_option(output_type, options):
    regex = to_regex(output_type)
    for option in options:
        assert re.fullmatch(regex, option, re.ASCII), option
    for wrong in ["", options[0] + options[1], options[0] + " ", '"' + options[0] + '"', options[0][:-1]]:
        assert not re.fullmatch(regex, wrong, re.ASCII), wrong
    generated = {parse_output(text, output_type) for text in options}
    assert len(generated) == len(options)


def test_parse_choice_values():
    assert parse_output("green", Color) is Color.GREEN
    assert parse_output("10", Level) is Level.HIGH
    assert parse_output("c", Literal["a+b", "c"]) == "c"
    with pytest.raises(ValueError):
        parse_output("blue", Color)


# -- Pydantic --------------------------------------------------------------------------------------------

class Weapon(BaseModel):
    name: str = Field(min_length=1, max_length=12)
    damage: conint(ge=0, le=100)


class Character(BaseModel):
    name: constr(min_length=1, max_length=20)
    age: Optional[int] = None
    kind: Literal["elf", "orc", "human"]
    color: Color
    strength: confloat(ge=0.5, lt=10)
    weapons: list[Weapon] = Field(max_length=3)
    born: datetime.date
    nickname: Optional[str] = Field(default=None, max_length=8)


class Cat(BaseModel):
    pet_type: Literal["cat"]
    meows: int


class Dog(BaseModel):
    pet_type: Literal["dog"]
    barks: float


class Owner(BaseModel):
    pet: Union[Cat, Dog] = Field(discriminator="pet_type")
    pets: list[Union[Cat, Dog]] = Field(default_factory=list, max_length=2)


class Link(BaseModel):
    url: HttpUrl
    any_url: AnyUrl
    code: str = Field(pattern=r"^[A-Z]{3}$", max_length=3)
    slug: str = Field(pattern=r"^[a-z0-9-]+$", max_length=12)


class Tree(BaseModel):
    value: int
    children: list["Tree"] = Field(default_factory=list, max_length=2)


MODELS = [Character, Owner, Weapon, Tree, list[Weapon], Link]


@FAST
@given(data=st.data())
@pytest.mark.parametrize("model", MODELS, ids=lambda m: getattr(m, "__name__", str(m)))
def test_pydantic_round_trip(model, data):
    text = data.draw(strings(model))
    value = parse_output(text, model)
    adapter = TypeAdapter(model)
    assert adapter.validate_json(text) == value


@pytest.mark.parametrize("whitespace", [None, r"[ ]?", r"[\n ]{0,4}"])
def test_pydantic_instances_match(whitespace):
    character = Character(name="Aë 'x' \"y\"\n", age=31, kind="elf", color=Color.GREEN, strength=9.75,
                          weapons=[Weapon(name="bow", damage=12), Weapon(name="axe", damage=100)],
                          born=datetime.date(2000, 2, 29), nickname=None)
    regex = to_regex(JsonSchema(Character.model_json_schema(), whitespace_pattern=whitespace))
    assert re.fullmatch(regex, character.model_dump_json(), re.ASCII)
    if whitespace:
        pretty = json.dumps(json.loads(character.model_dump_json()), ensure_ascii=False, separators=(", ", ": "))
        assert re.fullmatch(regex, pretty, re.ASCII)
    # optional properties may be left out
    minimal = '{"name":"a","kind":"orc","color":"red","strength":0.5,"weapons":[],"born":"1999-12-31"}'
    assert re.fullmatch(to_regex(Character), minimal, re.ASCII)
    assert parse_output(minimal, Character).age is None


def test_pydantic_constraints_are_enforced():
    regex = to_regex(Character)
    base = {"name": "a", "kind": "orc", "color": "red", "strength": 1, "weapons": [], "born": "1999-12-31"}
    for bad in [{"name": ""}, {"name": "x" * 21}, {"kind": "dwarf"}, {"strength": 10}, {"strength": 0.4},
                {"born": "1999-02-30"}, {"weapons": [{"name": "w", "damage": 101}]},
                {"weapons": [{"name": "w", "damage": 1}] * 4}]:
        text = json.dumps({**base, **bad}, separators=(",", ":"))
        assert not re.fullmatch(regex, text, re.ASCII), bad
    assert re.fullmatch(regex, json.dumps(base, separators=(",", ":")), re.ASCII)


def test_discriminated_union():
    regex = to_regex(Owner)
    assert re.fullmatch(regex, '{"pet":{"pet_type":"cat","meows":3}}', re.ASCII)
    assert re.fullmatch(regex, '{"pet":{"pet_type":"dog","barks":1.5},"pets":[{"pet_type":"cat","meows":1}]}')
    assert not re.fullmatch(regex, '{"pet":{"pet_type":"cat","barks":1.5}}', re.ASCII)


# -- other structured Python types -------------------------------------------------------------------

@dataclasses.dataclass
class Point:
    x: int
    y: float
    label: str = "origin"


class Movie(TypedDict):
    title: str
    year: int


def add_user(name: str, age: int, admin: bool = False) -> None:
    """A tool whose arguments the model fills in."""


STRUCTURED = [
    (list[int], "[1,-2,3]", [1, -2, 3]),
    (tuple[int, str], '[1,"a"]', (1, "a")),
    (dict[str, int], '{"a":1,"b":2}', {"a": 1, "b": 2}),
    (Optional[int], "null", None),
    (Optional[int], "5", 5),
    (Union[int, str], '"x"', "x"),
    (Point, '{"x":1,"y":2.5}', Point(1, 2.5)),
    (Movie, '{"title":"Up","year":2009}', {"title": "Up", "year": 2009}),
    (add_user, '{"name":"Ann","age":30}', {"name": "Ann", "age": 30}),
    (add_user, '{"name":"Ann","age":30,"admin":true}', {"name": "Ann", "age": 30, "admin": True}),
]


@pytest.mark.parametrize("output_type, text, expected", STRUCTURED)
def test_structured_types_match_and_parse(output_type, text, expected):
    assert re.fullmatch(to_regex(output_type), text, re.ASCII), text
    assert parse_output(text, output_type) == expected


@FAST
@given(data=st.data())
@pytest.mark.parametrize("output_type", [list[int], tuple[int, str], dict[str, int], Optional[int], Union[int, str],
                                         Point, Movie, add_user], ids=str)
def test_structured_strings_parse(output_type, data):
    text = data.draw(strings(output_type))
    parse_output(text, output_type)  # raises if the text does not validate


def test_function_without_annotations_is_refused():
    def untyped(a, b: int):
        return a

    with pytest.raises(UnsupportedTypeError, match="'a'"):
        to_regex(untyped)


def test_plain_string_and_unknown_types_are_refused():
    with pytest.raises(UnsupportedTypeError, match="Regex"):
        to_regex("[a-z]+")
    with pytest.raises((UnsupportedTypeError, SchemaError)):
        to_regex(set[int])  # uniqueItems cannot be expressed
    with pytest.raises(UnsupportedTypeError):
        to_regex(object())


def test_json_schema_output_type_accepts_dict_and_text():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    assert to_regex(JsonSchema(schema)) == to_regex(JsonSchema(json.dumps(schema))) == to_regex(schema)
    assert parse_output('{"a":1}', JsonSchema(schema)) == {"a": 1}


def test_regex_output_type():
    assert to_regex(Regex(r"[0-9]{3}")) == r"[0-9]{3}"
    assert parse_output("123", Regex(r"[0-9]{3}")) == "123"
