"""End to end on SmolLM2-135M-Instruct: Generator(model, <type>) output parses into the type every time."""

import datetime
import json
from typing import List, Literal

import jsonschema
import pytest
from pydantic import BaseModel

from outlines_core import Generator
from outlines_core.types import JsonSchema, parse_output

pytestmark = pytest.mark.e2e


class Character(BaseModel):
    name: str
    age: int
    skills: List[str]


NESTED_WITH_REF = {
    "$defs": {
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 30}, "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
            "required": ["city", "zip"],
            "additionalProperties": False,
        }
    },
    "type": "object",
    "properties": {
        "company": {"type": "string", "maxLength": 40},
        "employees": {"type": "integer", "minimum": 1, "maximum": 100000},
        "headquarters": {"$ref": "#/$defs/address"},
        "offices": {"type": "array", "items": {"$ref": "#/$defs/address"}, "maxItems": 2},
    },
    "required": ["company", "employees", "headquarters"],
    "additionalProperties": False,
}


def chat(question):
    return [{"role": "user", "content": question}]


@pytest.mark.parametrize("sampling", [{}, {"do_sample": True, "seed": 3, "temperature": 0.9}])
def test_character_model(smollm2, sampling):
    generator = Generator(smollm2, Character)
    prompts = [chat("Describe a fantasy character as JSON."), chat("Create a game hero with a name, age and skills.")]
    for text in generator(prompts, max_new_tokens=160, **sampling):
        character = Character.model_validate_json(text)
        assert parse_output(text, Character) == character


def test_int_literal_and_date(smollm2):
    assert isinstance(parse_output(Generator(smollm2, int)(chat("How many legs does a spider have?"), max_new_tokens=12), int), int)
    mood = Literal["happy", "sad", "neutral"]
    answer = Generator(smollm2, mood)(chat("I just won the lottery! How do I feel?"), max_new_tokens=8)
    assert answer in ("happy", "sad", "neutral")
    date_text = Generator(smollm2, datetime.date)(chat("When did World War II end?"), max_new_tokens=16)
    assert isinstance(parse_output(date_text, datetime.date), datetime.date)


def test_nested_schema_with_ref(smollm2):
    text = Generator(smollm2, JsonSchema(NESTED_WITH_REF))(chat("Describe a company as JSON."), max_new_tokens=200)
    jsonschema.validate(json.loads(text), NESTED_WITH_REF)
