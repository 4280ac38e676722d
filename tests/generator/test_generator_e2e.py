"""End to end on SmolLM2-135M-Instruct: constrained output fullmatches every time (greedy and sampled, batches
with a different regex per row), streaming, chat prompts, and the unconstrained model's own answer."""

import re

import pytest

from outlines_core import Generator
from outlines_core.errors import IncompleteOutputError
from outlines_core.generator import generate, index_for
from outlines_core.types import Regex

pytestmark = pytest.mark.e2e

IPV4 = r"((25[0-5]|2[0-4]\d|[01]?\d\d?)\.){3}(25[0-5]|2[0-4]\d|[01]?\d\d?)"
DATE = r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
NUMBER = r"(-)?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-][0-9]+)?"
NAME = r"[A-Z][a-z]{1,12}( [A-Z][a-z]{1,12})?"
UNICODE = r"(日本|東京|大阪)(、(日本|東京|大阪)){0,2}"
SENTENCE = r"[A-Z][a-z ,]{5,60}\."


def chat(question):
    return [{"role": "user", "content": question}]


def test_unconstrained_greedy_answer(smollm2):
    answer = Generator(smollm2)(chat("What is the capital of France?"), max_new_tokens=30)
    assert answer == "The capital of France is Paris."


@pytest.mark.parametrize("pattern", [IPV4, DATE, NUMBER, NAME, UNICODE, SENTENCE])
def test_greedy_output_matches(smollm2, pattern):
    output = Generator(smollm2, Regex(pattern))(chat("Answer briefly: give me an example."), max_new_tokens=40)
    assert re.fullmatch(pattern, output), output


@pytest.mark.parametrize("pattern", [IPV4, DATE, NAME, UNICODE])
def test_sampled_outputs_match_every_time(smollm2, pattern):
    generator = Generator(smollm2, Regex(pattern))
    prompts = [chat(q) for q in ("Give an example.", "Another one, please.", "What would you answer?")]
    for seed in range(3):
        outputs = generator(prompts, max_new_tokens=40, do_sample=True, temperature=1.3, seed=seed)
        assert len(outputs) == 3
        for output in outputs:
            assert re.fullmatch(pattern, output), output


def test_batch_with_a_different_regex_per_row(smollm2):
    patterns = [IPV4, DATE, NUMBER, NAME]
    prompts = [
        chat("What is the IP address of Google's public DNS server?"),
        chat("When did Apollo 11 land on the Moon?"),
        "The boiling point of water in Fahrenheit is",
        chat("Who wrote Hamlet?"),
    ]
    indexes = [index_for(Regex(p), smollm2.vocabulary) for p in patterns]
    for sampling in ({}, {"do_sample": True, "seed": 7}, {"do_sample": True, "seed": 8, "top_p": 0.9}):
        outputs = generate(smollm2, prompts, indexes, max_new_tokens=40, **sampling)
        for pattern, output in zip(patterns, outputs):
            assert re.fullmatch(pattern, output), (pattern, output)


def test_a_constraint_the_model_already_satisfies_changes_nothing(smollm2):
    # Greedy decoding under a regex that admits the model's own answer must reproduce it exactly: the mask
    # only removes tokens, it never reweights the allowed ones.
    generator = Generator(smollm2, Regex(r"The capital of France is [A-Z][a-z]+\."))
    assert generator(chat("What is the capital of France?"), max_new_tokens=30) == "The capital of France is Paris."


def test_stream_concatenates_to_the_full_output(smollm2):
    for pattern, question in ((UNICODE, "Name Japanese cities in Japanese."), (DATE, "When did World War II end?")):
        generator = Generator(smollm2, Regex(pattern))
        prompt = chat(question)
        pieces = list(generator.stream(prompt, max_new_tokens=40))
        assert len(pieces) > 1 and all("\ufffd" not in piece for piece in pieces)
        assert "".join(pieces) == generator(prompt, max_new_tokens=40)
    free = Generator(smollm2)
    prompt = chat("What is the capital of France?")
    assert "".join(free.stream(prompt, max_new_tokens=30)) == "The capital of France is Paris."


def test_a_batch_of_chats_equals_each_chat_alone(smollm2):
    generator = Generator(smollm2, Regex(DATE))
    prompts = [chat("When did Apollo 11 land on the Moon?"), chat("What is today's date? Answer in ISO format, please.")]
    assert generator(prompts, max_new_tokens=20) == [generator(p, max_new_tokens=20) for p in prompts]


def test_running_out_of_tokens_is_an_error_not_a_silent_partial(smollm2):
    generator = Generator(smollm2, Regex(r"[a-z]{50}"))
    with pytest.raises(IncompleteOutputError) as caught:
        generator("Letters:", max_new_tokens=3)
    assert caught.value.incomplete_rows == [0]
    assert re.fullmatch(r"[a-z]{1,49}", caught.value.outputs[0])
