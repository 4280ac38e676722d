"""Generation arguments reach the decode loop through every entry point (call, batch, stream): sampling
parameters change and reproduce outputs, ``stop`` ends unconstrained text, ``max_new_tokens`` bounds it."""

from __future__ import annotations

import re

import pytest

from outlines_core import Generator
from outlines_core.types import Regex

pytestmark = pytest.mark.e2e

PROMPT = "Here is a list of fruits: apple, banana,"


def test_stop_ends_unconstrained_text(smollm2):
    generator = Generator(smollm2)
    free = generator(PROMPT, max_new_tokens=30)
    assert "," in free
    stopped = generator(PROMPT, max_new_tokens=30, stop=",")
    assert stopped == free[: free.index(",")]
    assert generator([PROMPT, PROMPT], max_new_tokens=30, stop=[",", "\n"])[0] == stopped
    pieces = list(generator.stream(PROMPT, max_new_tokens=30, stop=","))
    assert "".join(pieces) == stopped


def test_stop_with_a_constraint_is_refused(smollm2):
    with pytest.raises(ValueError, match="unconstrained"):
        Generator(smollm2, Regex(r"\d+"))(PROMPT, stop=",")


def test_sampling_arguments_pass_through_call_batch_and_stream(smollm2):
    generator = Generator(smollm2)
    sampled = dict(max_new_tokens=12, temperature=1.5, top_p=0.9, top_k=40, seed=3)
    first = generator(PROMPT, **sampled)
    assert first == generator(PROMPT, **sampled)  # the seed reproduces
    assert "".join(generator.stream(PROMPT, **sampled)) == first
    others = {generator(PROMPT, **{**sampled, "seed": seed}) for seed in range(4, 8)}
    assert len(others | {first}) > 1  # and a different seed samples differently
    assert generator.batch([PROMPT], **sampled) == [first]
    greedy = generator(PROMPT, max_new_tokens=12)
    assert generator(PROMPT, max_new_tokens=12, temperature=0) == greedy
    assert len(smollm2.vocabulary.decode([])) == 0
    short = generator(PROMPT, max_new_tokens=2)
    assert greedy.startswith(short) and len(short) < len(greedy)


def test_unknown_argument_is_named(smollm2):
    with pytest.raises(TypeError, match="repetition_penalty"):
        Generator(smollm2)(PROMPT, repetition_penalty=1.2)
    with pytest.raises(ValueError, match="stop must be"):
        Generator(smollm2)(PROMPT, stop=[""])
    assert re.fullmatch(r"\d+", Generator(smollm2, Regex(r"\d+"))("Number:", max_new_tokens=5, temperature=0.8, seed=1))
