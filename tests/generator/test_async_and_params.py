"""Async entry points for steerable models (``acall``, ``abatch``, ``astream``: the decode runs in a worker
thread, one decode at a time per model) and generation arguments through every entry point, sync and async:
sampling parameters, ``stop`` and ``max_new_tokens``.

Fast tests use a tiny random Llama over the GPT-2 tokenizer; ``e2e`` tests use SmolLM2."""

from __future__ import annotations

import asyncio
import copy
import re

import pytest
import torch

transformers = pytest.importorskip("transformers")

from conftest import load_hf_tokenizer  # noqa: E402
from backends.transformers import from_transformers  # noqa: E402
from outlines_core import Generator  # noqa: E402
from outlines_core.errors import IncompleteOutputError  # noqa: E402
from outlines_core.types import Regex  # noqa: E402

DIGITS = r"[0-9]{2,6}"


@pytest.fixture(scope="module")
def tiny():
    tokenizer = copy.deepcopy(load_hf_tokenizer("gpt-2"))
    config = transformers.LlamaConfig(
        vocab_size=50257, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=256, bos_token_id=50256, eos_token_id=50256, pad_token_id=50256,
    )
    torch.manual_seed(1)
    return from_transformers(transformers.LlamaForCausalLM(config).eval(), tokenizer)


def test_acall_abatch_astream_equal_the_sync_calls(tiny):
    generator = Generator(tiny, Regex(DIGITS))
    sampled = dict(max_new_tokens=10, temperature=1.3, top_k=50, top_p=0.95, seed=11)

    async def main():
        return (
            await generator.acall("a", **sampled),
            await generator.abatch(["a", "a longer prompt"], **sampled),
            [piece async for piece in generator.astream("a", **sampled)],
            await generator.acall(["x", "y"], max_new_tokens=10),
        )

    single, batch, pieces, called_batch = asyncio.run(main())
    assert re.fullmatch(DIGITS, single)
    assert single == generator("a", **sampled)
    assert batch == generator(["a", "a longer prompt"], **sampled)
    assert "".join(pieces) == single and len(pieces) >= 1
    assert called_batch == generator(["x", "y"], max_new_tokens=10)


def test_the_event_loop_runs_while_a_steerable_model_decodes(tiny):
    generator = Generator(tiny)

    async def main():
        task = asyncio.ensure_future(generator.acall("count", max_new_tokens=40))
        ticks = 0
        while not task.done():  # if the decode blocked the loop, this would never run before it finished
            ticks += 1
            await asyncio.sleep(0)
        return ticks, await task

    ticks, text = asyncio.run(main())
    assert ticks > 0 and text == generator("count", max_new_tokens=40)


def test_concurrent_async_calls_on_one_model_give_the_sequential_results(tiny):
    generator = Generator(tiny, Regex(DIGITS))
    prompts = ["one", "two", "three", "four"]
    expected = [generator(p, max_new_tokens=10, seed=i, temperature=1.0) for i, p in enumerate(prompts)]

    async def main():
        calls = [generator.acall(p, max_new_tokens=10, seed=i, temperature=1.0) for i, p in enumerate(prompts)]
        streams = [_join(generator.astream(p, max_new_tokens=10, seed=i, temperature=1.0)) for i, p in enumerate(prompts)]
        return await asyncio.gather(*calls), await asyncio.gather(*streams)

    called, streamed = asyncio.run(main())
    assert called == expected and streamed == expected


async def _join(pieces) -> str:
    return "".join([piece async for piece in pieces])


def test_async_errors_are_the_sync_errors(tiny):
    generator = Generator(tiny, Regex(r"[0-9]{20}"))

    async def main():
        with pytest.raises(IncompleteOutputError) as caught:
            await generator.acall("n", max_new_tokens=3)
        partial = caught.value.outputs[0]
        assert re.fullmatch(r"[0-9]{1,19}", partial) and caught.value.incomplete_rows == [0]
        with pytest.raises(IncompleteOutputError):
            await _join(generator.astream("n", max_new_tokens=3))
        with pytest.raises(ValueError, match="unconstrained"):
            await generator.acall("n", stop="\n")
        with pytest.raises(TypeError, match="repetition_penalty"):
            await generator.abatch(["n"], repetition_penalty=1.1)

    asyncio.run(main())


def test_stop_and_max_new_tokens_through_async_entry_points(tiny):
    generator = Generator(tiny)
    free = generator("abc", max_new_tokens=30)
    stop = next(ch for ch in free[1:] if ch.isascii() and ch.strip())  # a character the free text contains
    cut = free[: free.index(stop)]

    async def main():
        return (
            await generator.acall("abc", max_new_tokens=30, stop=stop),
            await _join(generator.astream("abc", max_new_tokens=30, stop=[stop, "\x00never"])),
            await generator.abatch(["abc", "abc"], max_new_tokens=30, stop=stop),
            await generator.acall("abc", max_new_tokens=2),
        )

    called, streamed, batch, short = asyncio.run(main())
    assert called == streamed == cut and batch == [cut, cut]
    assert free.startswith(short) and len(short) < len(free)


# -- SmolLM2: the transformers backend with real text --

PROMPT = "Here is a list of fruits: apple, banana,"


@pytest.mark.e2e
def test_smollm2_async_entry_points_pass_every_argument(smollm2):
    generator = Generator(smollm2)
    sampled = dict(max_new_tokens=12, temperature=1.2, top_p=0.9, top_k=30, seed=5)

    async def main():
        return (
            await generator.acall(PROMPT, **sampled),
            await _join(generator.astream(PROMPT, **sampled)),
            await generator.abatch([PROMPT, PROMPT], **sampled),
            await generator.acall(PROMPT, max_new_tokens=30, stop=[",", "\n"]),
            await _join(generator.astream(PROMPT, max_new_tokens=30, stop=",")),
        )

    single, streamed, batch, stopped, stopped_stream = asyncio.run(main())
    assert single == generator(PROMPT, **sampled) == streamed
    assert batch == generator([PROMPT, PROMPT], **sampled)
    assert len(batch) == 2
    greedy = generator(PROMPT, max_new_tokens=30)
    assert "," in greedy and stopped == stopped_stream == greedy[: greedy.index(",")]


@pytest.mark.e2e
def test_smollm2_each_sampling_argument_changes_or_reproduces_output(smollm2):
    generator = Generator(smollm2)
    base = dict(max_new_tokens=10, seed=0)
    # top_k=1 keeps only the best token: sampling becomes greedy, whatever the seed and temperature.
    greedy = generator(PROMPT, max_new_tokens=10)
    assert generator(PROMPT, top_k=1, temperature=2.0, **base) == greedy
    # top_p tiny keeps only the top token too.
    assert generator(PROMPT, top_p=1e-6, temperature=2.0, **base) == greedy
    # A high temperature with all tokens allowed strays from greedy for some seed.
    hot = {generator(PROMPT, temperature=3.0, max_new_tokens=10, seed=s) for s in range(4)}
    assert any(text != greedy for text in hot)
    # The same arguments reproduce, through call, batch and stream.
    args = dict(temperature=0.9, top_k=40, top_p=0.95, seed=9, max_new_tokens=10)
    text = generator(PROMPT, **args)
    assert generator.batch([PROMPT], **args) == [text] and "".join(generator.stream(PROMPT, **args)) == text
    # Constrained output with sampling still matches.
    json_number = r"-?(0|[1-9][0-9]{0,3})"
    numbers = Generator(smollm2, Regex(json_number))(["Pick a number:", "Another:"], max_new_tokens=6, temperature=1.5, seed=2)
    assert all(re.fullmatch(json_number, n) for n in numbers)


@pytest.mark.parametrize(
    "arguments, fragment",
    [
        ({"top_k": 2.5}, "top_k must be an integer"),
        ({"temperature": float("nan")}, "temperature must be a finite number"),
        ({"temperature": "0.5"}, "temperature must be a finite number"),
        ({"seed": 2**70}, "seed must be in"),
        ({"seed": "7"}, "seed must be an integer"),
        ({"do_sample": "yes"}, "do_sample must be True or False"),
        ({"max_new_tokens": None}, "max_new_tokens must be a positive integer"),
    ],
)
def test_bad_generation_arguments_are_refused_before_decoding(tiny, arguments, fragment):
    with pytest.raises((ValueError, TypeError), match=re.escape(fragment)):
        Generator(tiny, Regex(DIGITS))("Number:", **arguments)


def test_a_tiny_temperature_samples_the_best_token(tiny):
    greedy = Generator(tiny)("Word:", max_new_tokens=6)
    assert Generator(tiny)("Word:", max_new_tokens=6, temperature=1e-300, seed=1) == greedy


def test_a_seeded_batch_gives_each_row_what_it_gives_alone(tiny):
    free = Generator(tiny)
    alone = free("Word:", max_new_tokens=6, seed=3)
    assert free(["Word:", "Word:"], max_new_tokens=6, seed=3) == [alone, alone]


def test_unconstrained_rows_never_sample_the_models_padding_ids():
    # Logits wider than the tokenizer (embeddings padded, as Qwen2's are): the extra ids are no token.
    tokenizer = copy.deepcopy(load_hf_tokenizer("gpt-2"))
    config = transformers.LlamaConfig(
        vocab_size=50257 + 64, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=64, bos_token_id=50256, eos_token_id=50256, pad_token_id=50256,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():
        model.lm_head.weight[50257:] = 0
        model.lm_head.bias = None
        model.lm_head.weight[50257:, 0] = 1000.0  # the padding ids would win every step
    wrapped = from_transformers(model, tokenizer)
    text = Generator(wrapped)("Word:", max_new_tokens=4)
    assert text and "\ufffd" not in text


def test_batch_of_one_string_is_one_prompt(tiny):
    generator = Generator(tiny, Regex(DIGITS))
    assert generator.batch("Number:", max_new_tokens=8) == [generator("Number:", max_new_tokens=8)]
