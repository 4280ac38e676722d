"""End to end on SmolLM2-135M-Instruct: constrained output matches every time, greedy and sampled."""

import re

import pytest

from outlines_core import Generator
from outlines_core.errors import IncompleteOutputError, RegexSyntaxError
from outlines_core.generator import generate, index_for
from outlines_core.types import Regex

pytestmark = pytest.mark.e2e

IPV4 = r"((25[0-5]|2[0-4]\d|[01]?\d\d?)\.){3}(25[0-5]|2[0-4]\d|[01]?\d\d?)"
DATE = r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
NUMBER = r"(-)?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-][0-9]+)?"
NAME = r"[A-Z][a-z]{1,12}( [A-Z][a-z]{1,12})?"
UNICODE = r"(日本|東京|大阪)(、(日本|東京|大阪)){0,2}"


@pytest.fixture(scope="session")
def model():
    backends = pytest.importorskip("backends.transformers")
    try:
        return backends.load_default_model()
    except ModuleNotFoundError as error:
        pytest.fail(f"the default model is part of the install (README): {error}")


def chat(question):
    return [{"role": "user", "content": question}]


def test_unconstrained_greedy_answer(model):
    answer = Generator(model)(chat("What is the capital of France?"), max_new_tokens=30)
    assert answer == "The capital of France is Paris."


@pytest.mark.parametrize("pattern", [IPV4, DATE, NUMBER, NAME, UNICODE])
def test_greedy_output_matches(model, pattern):
    output = Generator(model, Regex(pattern))(chat("Answer briefly: give me an example."), max_new_tokens=40)
    assert re.fullmatch(pattern, output), output


@pytest.mark.parametrize("pattern", [IPV4, DATE, NAME, UNICODE])
def test_sampled_outputs_match_every_time(model, pattern):
    generator = Generator(model, Regex(pattern))
    prompts = [chat(q) for q in ("Give an example.", "Another one, please.", "What would you answer?")]
    for seed in range(3):
        outputs = generator(prompts, max_new_tokens=40, do_sample=True, temperature=1.3, seed=seed)
        for output in outputs:
            assert re.fullmatch(pattern, output), output


def test_batch_with_a_different_regex_per_row(model):
    patterns = [IPV4, DATE, NUMBER, NAME]
    prompts = [
        chat("What is the IP address of Google's public DNS server?"),
        chat("When did Apollo 11 land on the Moon?"),
        "The boiling point of water in Fahrenheit is",
        chat("Who wrote Hamlet?"),
    ]
    indexes = [index_for(Regex(p), model.vocabulary) for p in patterns]
    for sampling in ({}, {"do_sample": True, "seed": 7}):
        outputs = generate(model, prompts, indexes, max_new_tokens=40, **sampling)
        for pattern, output in zip(patterns, outputs):
            assert re.fullmatch(pattern, output), (pattern, output)


def test_stream_concatenates_to_the_full_output(model):
    generator = Generator(model, Regex(UNICODE))
    prompt = chat("Name Japanese cities in Japanese.")
    pieces = list(generator.stream(prompt, max_new_tokens=40))
    assert len(pieces) > 1
    assert "".join(pieces) == generator(prompt, max_new_tokens=40)


def test_running_out_of_tokens_is_an_error_not_a_silent_partial(model):
    generator = Generator(model, Regex(r"[a-z]{50}"))
    with pytest.raises(IncompleteOutputError) as caught:
        generator("Letters:", max_new_tokens=3)
    assert caught.value.incomplete_rows == [0]
    assert re.fullmatch(r"[a-z]{1,50}", caught.value.outputs[0])


def test_bad_regex_fails_at_construction(model):
    with pytest.raises(RegexSyntaxError, match="lookahead"):
        Generator(model, Regex(r"a(?=b)"))
