"""The transformers.LogitsProcessor subclass inside model.generate: batches with a different regex per row and
left padding, greedy and sampled, num_return_sequences, beam search, unconstrained rows; on a tiny random
Llama (a random model tries everything the mask lets through) and on SmolLM2 (e2e)."""

import re
import subprocess
import sys

import pytest
import torch

transformers = pytest.importorskip("transformers")

from conftest import load_hf_tokenizer, load_vocabulary  # noqa: E402
from outlines_core import Index  # noqa: E402
from outlines_core.processors import TransformersLogitsProcessor, transformers_processor  # noqa: E402

PHONE = r"[0-9]{3}-[0-9]{4}"
YES_NO = r"(yes|no)"
DATE = r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"


@pytest.fixture(scope="module")
def tiny():
    """A 1-layer random Llama over the GPT-2 tokenizer, its tokenizer and the engine's vocabulary."""
    tokenizer = load_hf_tokenizer("gpt-2")
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()
    return model, tokenizer, load_vocabulary("gpt-2")


def left_padded(tokenizer, texts):
    ids = [tokenizer.encode(text) for text in texts]
    length = max(map(len, ids))
    input_ids = torch.full((len(ids), length), tokenizer.eos_token_id)
    attention = torch.zeros((len(ids), length), dtype=torch.long)
    for row, row_ids in enumerate(ids):
        input_ids[row, length - len(row_ids):] = torch.tensor(row_ids)
        attention[row, length - len(row_ids):] = 1
    return input_ids, attention


def new_texts(output, prompt_length, vocabulary, eos):
    """Each row's generated text, and whether the row ended with EOS."""
    texts, ended = [], []
    for row in output[:, prompt_length:].tolist():
        cut = row.index(eos) if eos in row else len(row)
        texts.append(vocabulary.decode(row[:cut]).decode("utf-8"))
        ended.append(eos in row)
    return texts, ended


def test_it_is_a_transformers_logits_processor(tiny):
    _, _, vocabulary = tiny
    processor = TransformersLogitsProcessor([Index(YES_NO, vocabulary)])
    assert isinstance(processor, transformers.LogitsProcessor)
    assert isinstance(transformers_processor([None]), TransformersLogitsProcessor)


@pytest.mark.parametrize("sampling", [{"do_sample": False}, {"do_sample": True, "temperature": 2.0}])
@pytest.mark.parametrize("seed", range(3))
def test_batch_with_a_different_regex_per_row(tiny, sampling, seed):
    model, tokenizer, vocabulary = tiny
    patterns = [PHONE, YES_NO, DATE]
    processor = transformers_processor([Index(p, vocabulary) for p in patterns])
    input_ids, attention = left_padded(tokenizer, ["Phone number:", "Reply yes or no, quickly:", "Date"])
    torch.manual_seed(seed)
    output = model.generate(
        input_ids, attention_mask=attention, logits_processor=transformers.LogitsProcessorList([processor]),
        max_new_tokens=16, pad_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id, **sampling,
    )
    texts, ended = new_texts(output, input_ids.shape[1], vocabulary, tokenizer.eos_token_id)
    assert ended == [True, True, True]
    for pattern, text in zip(patterns, texts):
        assert re.fullmatch(pattern, text), (pattern, text)


def test_num_return_sequences_repeats_each_prompts_constraint(tiny):
    model, tokenizer, vocabulary = tiny
    patterns = [PHONE, YES_NO]
    processor = transformers_processor([Index(p, vocabulary) for p in patterns])
    input_ids, attention = left_padded(tokenizer, ["Call", "Answer me now:"])
    torch.manual_seed(1)
    output = model.generate(
        input_ids, attention_mask=attention, logits_processor=transformers.LogitsProcessorList([processor]),
        max_new_tokens=16, do_sample=True, num_return_sequences=3, pad_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    assert output.shape[0] == 6
    texts, ended = new_texts(output, input_ids.shape[1], vocabulary, tokenizer.eos_token_id)
    assert all(ended)
    for row, text in enumerate(texts):
        assert re.fullmatch(patterns[row // 3], text), (row, text)


def test_beam_search_rows_keep_their_own_guides(tiny):
    model, tokenizer, vocabulary = tiny
    patterns = [PHONE, DATE]
    processor = transformers_processor([Index(p, vocabulary) for p in patterns])
    input_ids, attention = left_padded(tokenizer, ["Call", "Today is"])
    output = model.generate(
        input_ids, attention_mask=attention, logits_processor=transformers.LogitsProcessorList([processor]),
        max_new_tokens=16, num_beams=3, num_return_sequences=2, do_sample=False,
        pad_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    texts, ended = new_texts(output, input_ids.shape[1], vocabulary, tokenizer.eos_token_id)
    for row, text in enumerate(texts):
        assert re.fullmatch(patterns[row // 2], text), (row, text)


def test_unconstrained_row_next_to_a_constrained_one(tiny):
    model, tokenizer, vocabulary = tiny
    input_ids, attention = left_padded(tokenizer, ["Free text", "Phone:"])
    processor = transformers_processor([None, Index(PHONE, vocabulary)])
    output = model.generate(
        input_ids, attention_mask=attention, logits_processor=transformers.LogitsProcessorList([processor]),
        max_new_tokens=10, do_sample=False, pad_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    free = model.generate(
        input_ids[:1], attention_mask=attention[:1], max_new_tokens=10, do_sample=False,
        pad_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    assert output[0].tolist() == free[0].tolist()  # the unconstrained row is exactly plain greedy decoding
    texts, _ = new_texts(output, input_ids.shape[1], vocabulary, tokenizer.eos_token_id)
    assert re.fullmatch(PHONE, texts[1])


def test_reuse_needs_reset(tiny):
    model, tokenizer, vocabulary = tiny
    processor = transformers_processor([Index(YES_NO, vocabulary)])
    input_ids = torch.tensor([tokenizer.encode("Answer:")])
    kwargs = dict(
        attention_mask=torch.ones_like(input_ids), logits_processor=transformers.LogitsProcessorList([processor]),
        max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    first = model.generate(input_ids, **kwargs)
    with pytest.raises(ValueError, match="reset"):
        model.generate(input_ids, **kwargs)
    processor.reset()
    assert model.generate(input_ids, **kwargs).tolist() == first.tolist()


def test_importing_the_engine_needs_neither_torch_nor_transformers():
    code = (
        "import sys, outlines_core, outlines_core.processors, outlines_core.kernels.numpy\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.e2e
def test_smollm2_generate_with_the_processor(smollm2):
    """The real model through model.generate: chat prompts of different lengths, one regex per row."""
    hf_model, tokenizer, vocabulary = smollm2.model, smollm2.tokenizer, smollm2.vocabulary
    questions = ["What is the IP address of Google's DNS server?", "When did Apollo 11 land?"]
    patterns = [r"((25[0-5]|2[0-4]\d|[01]?\d\d?)\.){3}(25[0-5]|2[0-4]\d|[01]?\d\d?)", DATE]
    prompts = [smollm2.encode([{"role": "user", "content": q}]) for q in questions]
    length = max(map(len, prompts))
    input_ids = torch.tensor([[tokenizer.pad_token_id] * (length - len(p)) + p for p in prompts])
    attention = torch.tensor([[0] * (length - len(p)) + [1] * len(p) for p in prompts])
    for sampling in ({"do_sample": False}, {"do_sample": True, "temperature": 1.0}):
        torch.manual_seed(0)
        processor = transformers_processor([Index(p, vocabulary) for p in patterns])
        output = hf_model.generate(
            input_ids, attention_mask=attention, logits_processor=transformers.LogitsProcessorList([processor]),
            max_new_tokens=24, **sampling,
        )
        texts, ended = new_texts(output, length, vocabulary, vocabulary.eos_token_ids[0])
        assert all(ended), texts
        for pattern, text in zip(patterns, texts):
            assert re.fullmatch(pattern, text), (pattern, text)
