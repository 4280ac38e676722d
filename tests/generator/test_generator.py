"""Generator mechanics on a tiny random Llama over the GPT-2 tokenizer (fast, no download): a random model
tries everything the mask lets through, so every constrained output must still fullmatch. Batches with left
padding, a different constraint per row, streaming, chat prompts, sampling options, clear errors."""

import copy
import re

import pytest
import torch

transformers = pytest.importorskip("transformers")

from conftest import load_hf_tokenizer  # noqa: E402
from backends.transformers import from_transformers  # noqa: E402
from outlines_core import Generator  # noqa: E402
from outlines_core.errors import IncompleteOutputError, RegexSyntaxError, UnsupportedTypeError  # noqa: E402
from outlines_core.generator import SamplingParams, cached_index, generate, index_for  # noqa: E402
from outlines_core.types import Regex  # noqa: E402

PHONE = r"[0-9]{3}-[0-9]{4}"
DATE = r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
YES_NO = r"(yes|no)"
CITIES = r"(日本|東京|大阪)(、(日本|東京|大阪)){0,2}"
TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture(scope="module")
def model():
    tokenizer = copy.deepcopy(load_hf_tokenizer("gpt-2"))
    tokenizer.chat_template = TEMPLATE
    config = transformers.LlamaConfig(
        vocab_size=50304,  # padded beyond the tokenizer's 50,257 like many real models
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
        max_position_embeddings=512, bos_token_id=50256, eos_token_id=50256, pad_token_id=50256,
    )
    torch.manual_seed(0)
    return from_transformers(transformers.LlamaForCausalLM(config).eval(), tokenizer)


@pytest.mark.parametrize("pattern", [PHONE, DATE, YES_NO, CITIES])
def test_greedy_and_sampled_outputs_match(model, pattern):
    generator = Generator(model, Regex(pattern))
    assert re.fullmatch(pattern, generator("Hello", max_new_tokens=30))
    for seed in range(4):
        outputs = generator(["a", "a longer prompt, padded on the left"], max_new_tokens=30, seed=seed, temperature=1.5)
        assert len(outputs) == 2
        for output in outputs:
            assert re.fullmatch(pattern, output), output


def test_a_batch_row_equals_the_same_prompt_alone(model):
    prompts = ["x", "a much longer prompt than the first one, to pad the batch on the left"]
    for generator in (Generator(model), Generator(model, Regex(r"[a-z ]{5,20}\."))):
        batch = generator(prompts, max_new_tokens=12)
        assert batch == [generator(prompt, max_new_tokens=12) for prompt in prompts]


def test_different_constraint_per_row(model):
    patterns = [PHONE, None, YES_NO, CITIES]
    indexes = [None if p is None else index_for(Regex(p), model.vocabulary) for p in patterns]
    for sampling in ({}, {"do_sample": True, "seed": 3}):
        outputs = generate(model, ["one", "two", "three", "four"], indexes, max_new_tokens=30, **sampling)
        for pattern, output in zip(patterns, outputs):
            assert isinstance(output, str)
            if pattern is not None:
                assert re.fullmatch(pattern, output), (pattern, output)


def test_stream_pieces_concatenate_to_the_output_and_never_split_characters(model):
    generator = Generator(model, Regex(CITIES))
    for seed in range(3):
        pieces = list(generator.stream("Cities:", max_new_tokens=30, seed=seed))
        assert "".join(pieces) == generator("Cities:", max_new_tokens=30, seed=seed)
        assert len(pieces) > 1
        assert all(piece and "\ufffd" not in piece for piece in pieces)
        for piece in pieces:
            assert all(character in "日本東京大阪、" for character in piece)  # whole characters only


def test_unconstrained_stream_matches_the_call(model):
    generator = Generator(model)
    pieces = list(generator.stream("Once upon a time", max_new_tokens=15))
    assert "".join(pieces) == generator("Once upon a time", max_new_tokens=15)


def test_running_out_of_tokens_is_an_error_not_a_silent_partial(model):
    generator = Generator(model, Regex(r"[a-z]{50}"))
    with pytest.raises(IncompleteOutputError) as caught:
        generator(["Letters:", "More letters:"], max_new_tokens=3)
    assert caught.value.incomplete_rows == [0, 1]
    assert all(re.fullmatch(r"[a-z]{1,49}", output) for output in caught.value.outputs)
    with pytest.raises(IncompleteOutputError) as caught:
        list(generator.stream("Letters:", max_new_tokens=3))
    assert re.fullmatch(r"[a-z]{1,49}", caught.value.outputs[0])
    assert isinstance(Generator(model)("free text is simply cut", max_new_tokens=3), str)


def test_chat_messages_go_through_the_chat_template(model):
    messages = [{"role": "user", "content": "Hi"}]
    expected = model.tokenizer(f"<|user|>Hi\n<|assistant|>", add_special_tokens=False)["input_ids"]
    assert model.encode(messages) == expected
    generator = Generator(model, Regex(YES_NO))
    single = generator(messages, max_new_tokens=5)
    assert re.fullmatch(YES_NO, single)
    batch = generator([messages, [{"role": "user", "content": "Hello there"}]], max_new_tokens=5)
    assert isinstance(batch, list) and len(batch) == 2 and batch[0] == single


def test_sampling_options(model):
    generator = Generator(model, Regex(r"[a-z]{3,8}"))
    greedy = generator("Word:", max_new_tokens=10)
    assert generator("Word:", max_new_tokens=10, temperature=0) == greedy
    assert generator("Word:", max_new_tokens=10, do_sample=False, temperature=1.7, seed=5) == greedy
    seeded = [generator("Word:", max_new_tokens=10, seed=s, temperature=2.0) for s in (1, 1, 2, 3, 4)]
    assert seeded[0] == seeded[1]  # a seed makes sampling reproducible
    assert len(set(seeded)) > 1  # and sampling really samples
    for top in ({"top_k": 1}, {"top_p": 1e-6}):
        assert generator("Word:", max_new_tokens=10, do_sample=True, seed=9, **top) == greedy
    assert SamplingParams(seed=1).sampling and not SamplingParams().sampling and not SamplingParams(temperature=0).sampling


def test_bad_arguments_are_clear_errors(model):
    generator = Generator(model)
    with pytest.raises(TypeError, match="unknown generation argument"):
        generator("x", max_new_tokens=2, temprature=0.5)
    with pytest.raises(ValueError, match="temperature"):
        generator("x", max_new_tokens=2, temperature=-1)
    with pytest.raises(ValueError, match="top_p"):
        generator("x", max_new_tokens=2, top_p=0)
    with pytest.raises(ValueError, match="top_k"):
        generator("x", max_new_tokens=2, top_k=0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generator("x", max_new_tokens=0)
    with pytest.raises(TypeError, match="prompt must be"):
        generator(42)
    with pytest.raises(TypeError, match="prompt must be"):
        generator([])
    with pytest.raises(ValueError, match="one prompt"):
        list(generator.stream(["a", "b"]))
    with pytest.raises(ValueError, match="'role' and 'content'"):
        generator([{"text": "hi"}], max_new_tokens=2)
    with pytest.raises(TypeError, match="not a steerable model"):
        Generator(model.model)
    with pytest.raises(RegexSyntaxError, match="lookahead"):
        Generator(model, Regex(r"a(?=b)"))
    with pytest.raises(UnsupportedTypeError):
        Generator(model, "a plain string")


def test_output_types_and_the_index_cache(model):
    assert Generator(model, Regex(PHONE)).index is Generator(model, Regex(PHONE)).index
    assert cached_index(PHONE, model.vocabulary) is Generator(model, Regex(PHONE)).index
    assert Generator(model).index is None
    output = Generator(model, int)("Number:", max_new_tokens=12, seed=0)
    assert re.fullmatch(r"-?(0|[1-9][0-9]*)", output)


def test_vocabulary_spans_the_padded_logits(model):
    assert model.vocabulary.size == 50304
    assert model.vocabulary.eos_token_ids == (50256,)
