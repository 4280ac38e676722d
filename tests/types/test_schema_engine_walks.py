"""JSON Schema through the whole engine on the shared tokenizers: random walks through the Guide's masks
produce JSON that jsonschema accepts, and valid instances (hypothesis-jsonschema) are accepted token by
token with EOS allowed at the end."""

import functools
import json

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from conftest import load_encoder_without_dummy_prefix, load_vocabulary
from outlines_core import Guide, Index
from outlines_core.types import json_schema_to_regex

SCHEMAS = {
    "record": {
        "type": "object",
        "properties": {
            "id": {"type": "integer", "minimum": 0, "maximum": 999},
            "kind": {"enum": ["a", "bb", "ccc"]},
            "ok": {"type": "boolean"},
            "code": {"type": "string", "maxLength": 4},
            "note": {"type": ["null", "integer"]},
        },
        "required": ["id", "kind"],
        "additionalProperties": False,
    },
    "list_of_points": {
        "$defs": {"p": {"type": "object", "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
                        "required": ["x", "y"], "additionalProperties": False}},
        "type": "array", "items": {"$ref": "#/$defs/p"}, "maxItems": 2,
    },
    "choice": {"anyOf": [{"type": "integer", "minimum": -5, "maximum": 5}, {"const": "none"}, {"type": "null"}]},
}
TOKENIZERS = ["llama-bpe", "llama-spm", "qwen2"]


@functools.lru_cache(maxsize=None)
def index_for(tokenizer: str, name: str) -> Index:
    return Index(json_schema_to_regex(SCHEMAS[name]), load_vocabulary(tokenizer))


@pytest.mark.parametrize("tokenizer", TOKENIZERS)
@pytest.mark.parametrize("name", list(SCHEMAS))
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_random_walks_through_masks_produce_valid_json(tokenizer, name, data):
    index = index_for(tokenizer, name)
    vocabulary = index.vocabulary
    guide = Guide(index)
    output = []
    for _ in range(60):
        if guide.is_finished() or (guide.is_accepting() and data.draw(st.booleans(), label="stop")):
            break
        allowed = [t for t in guide.allowed_tokens().tolist() if t not in vocabulary.eos_token_ids]
        token = data.draw(st.sampled_from(allowed), label="token")
        guide.advance(token)
        output.append(token)
    if guide.is_accepting():
        jsonschema.validate(json.loads(vocabulary.decode(output).decode("utf-8")), SCHEMAS[name])


@pytest.mark.parametrize("tokenizer", TOKENIZERS)
@pytest.mark.parametrize("name", list(SCHEMAS))
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_valid_instances_are_accepted_token_by_token(tokenizer, name, data):
    instance = data.draw(from_schema(SCHEMAS[name]), label="instance")
    text = json.dumps(instance, separators=(",", ":"), ensure_ascii=False)
    if name == "record":  # canonical property order is the schema's
        order = list(SCHEMAS[name]["properties"])
        text = json.dumps({k: instance[k] for k in order if k in instance}, separators=(",", ":"), ensure_ascii=False)
    index = index_for(tokenizer, name)
    ids = load_encoder_without_dummy_prefix(tokenizer).encode(text, add_special_tokens=False).ids
    assert index.vocabulary.decode(ids) == text.encode("utf-8")
    guide = Guide(index)
    for token in ids:
        guide.advance(token)  # raises TokenNotAllowedError if the engine refuses a valid instance
    assert guide.is_accepting()
    assert set(index.vocabulary.eos_token_ids) <= set(guide.allowed_tokens().tolist())
