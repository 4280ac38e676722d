"""Every output type used in the types tests compiles with the engine (within the DFA bound), and a
typical schema drives a real Guide from start to an accepting state."""

import json

import pytest

from outlines_core import config
from outlines_core.regex import compile_dfa
from outlines_core.types import JsonSchema, formats, to_regex

from test_json_schema import SCHEMAS
from test_numbers import NUMBER_SCHEMAS
from test_python_types import MODELS, STRUCTURED, Character, Color, Weapon

OUTPUT_TYPES = (
    [JsonSchema(schema, whitespace_pattern=ws) for schema in SCHEMAS.values() for ws in (None, r"[ ]?")]
    + [JsonSchema(schema) for schema in NUMBER_SCHEMAS]
    + [JsonSchema(model.model_json_schema(), whitespace_pattern=r"[\n ]{0,4}") for model in (Character, Weapon)]
    + list(MODELS)
    + [output_type for output_type, _, _ in STRUCTURED]
)


@pytest.mark.parametrize("output_type", OUTPUT_TYPES, ids=lambda t: type(t).__name__)
def test_output_type_compiles_within_the_dfa_bound(output_type):
    dfa = compile_dfa(to_regex(output_type))
    assert 1 < dfa.num_states <= config.MAX_DFA_STATES


@pytest.mark.parametrize("name", sorted(formats.FORMAT_REGEXES))
def test_format_compiles_inside_a_json_string(name):
    assert compile_dfa(f'"{formats.FORMAT_REGEXES[name]}"').num_states > 1


def test_character_schema_drives_a_guide_on_a_real_vocabulary():
    from conftest import load_hf_tokenizer, load_vocabulary

    from outlines_core.guide import Guide
    from outlines_core.index import Index

    tokenizer = load_hf_tokenizer("gpt-2")
    vocabulary = load_vocabulary("gpt-2")
    character = Character(name="Zoë", age=None, kind="orc", color=Color.RED, strength=3.25,
                          weapons=[Weapon(name="club", damage=7)], born="1987-06-05")
    text = character.model_dump_json()
    guide = Guide(Index(to_regex(Character), vocabulary))
    for token in tokenizer.encode(text):
        assert not guide.is_accepting()
        guide.advance(token)
    assert guide.is_accepting()
    assert Character.model_validate_json(vocabulary.decode(tokenizer.encode(text)).decode()) == character
    assert json.loads(text)["kind"] == "orc"
