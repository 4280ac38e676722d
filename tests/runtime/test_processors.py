"""Batched processors: each row follows its own constraint, in custom loops and in transformers.generate."""

import re

import numpy as np
import pytest
import torch

from conftest import load_vocabulary
from outlines_core import Guide, Index, Vocabulary
from outlines_core.errors import TokenNotAllowedError
from outlines_core.processors import GuidedLogitsProcessor, apply_bitmask, transformers_processor

TOKENS = [b"1", b"2", b"a", b"b", b".", None]
EOS = 5


@pytest.fixture
def vocabulary():
    return Vocabulary(TOKENS, [EOS])


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_rows_follow_different_constraints_with_a_random_model(vocabulary, library):
    digits, letters = Index(r"[12]{2,3}", vocabulary), Index(r"(ab)+\.", vocabulary)
    processor = GuidedLogitsProcessor([digits, letters, None], tensor_library=library)
    rng = np.random.default_rng(0)
    outputs = [[], [], []]
    for _ in range(8):
        logits = rng.normal(size=(3, len(TOKENS))).astype(np.float32)
        if library == "torch":
            logits = torch.from_numpy(logits)
        masked = processor.process_logits(logits)
        tokens = np.asarray(masked).argmax(axis=1)
        for row, token in enumerate(tokens):
            if not processor.is_finished()[row]:
                outputs[row].append(int(token))
        processor.advance(tokens)
    texts = [vocabulary.decode(out).decode() for out in outputs[:2]]
    assert re.fullmatch(r"[12]{2,3}", texts[0])
    assert re.fullmatch(r"(ab)+\.", texts[1]) or re.fullmatch(r"(ab)*a?", texts[1])
    assert all(processor.is_finished()[:1])


def test_masked_logits_keep_allowed_values_and_kill_the_rest(vocabulary):
    processor = GuidedLogitsProcessor([Index("a", vocabulary)], tensor_library="numpy")
    logits = np.arange(6, dtype=np.float32).reshape(1, 6)
    processor.process_logits(logits)
    assert logits[0, 2] == 2 and np.isinf(logits[0, [0, 1, 3, 4, 5]]).all()


def test_transformers_style_call_tracks_the_prompt_and_advances(vocabulary):
    processor = GuidedLogitsProcessor([Index("ab", vocabulary)], tensor_library="torch")
    prompt = torch.tensor([[4, 4, 4]])
    scores = processor(prompt, torch.zeros(1, 6))
    assert torch.isfinite(scores).nonzero()[:, 1].tolist() == [2]
    scores = processor(torch.tensor([[4, 4, 4, 2]]), torch.zeros(1, 6))
    assert torch.isfinite(scores).nonzero()[:, 1].tolist() == [3]
    with pytest.raises(TokenNotAllowedError):
        processor(torch.tensor([[4, 4, 4, 2, 0]]), torch.zeros(1, 6))
    processor.reset()
    assert processor.guides[0].state == processor.guides[0].index.initial_state


def test_apply_bitmask_for_custom_loops(vocabulary):
    guide = Guide(Index("[ab]", vocabulary))
    row = np.zeros((1, 1), dtype=np.int32)
    guide.fill_bitmask(row[0])
    masked = apply_bitmask(torch.zeros(1, 6), torch.from_numpy(row))
    assert torch.isfinite(masked).nonzero()[:, 1].tolist() == [2, 3]


def test_vocabulary_width_mismatch_is_explained(vocabulary):
    processor = GuidedLogitsProcessor([Index("a", vocabulary)], tensor_library="numpy")
    with pytest.raises(ValueError, match="build the Vocabulary with size=100"):
        processor.process_logits(np.zeros((1, 100), dtype=np.float32))


def test_transformers_logits_processor_with_generate_on_a_tiny_random_model():
    transformers = pytest.importorskip("transformers")
    from conftest import load_hf_tokenizer

    tokenizer = load_hf_tokenizer("gpt-2")
    config = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=32, vocab_size=len(tokenizer))
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config).eval()
    vocabulary = load_vocabulary("gpt-2")
    patterns = [r"[0-9]{3}-[0-9]{4}", r"(yes|no)"]
    processor = transformers_processor([Index(p, vocabulary) for p in patterns])
    prompt = torch.tensor([tokenizer.encode("Phone: "), tokenizer.encode("Reply: ")[:2] + [220]])
    output = model.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        logits_processor=transformers.LogitsProcessorList([processor]),
        max_new_tokens=12,
        do_sample=True,
        pad_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    for row, pattern in enumerate(patterns):
        new = [t for t in output[row, prompt.shape[1]:].tolist() if t != tokenizer.eos_token_id]
        assert re.fullmatch(pattern, vocabulary.decode(new).decode()), vocabulary.decode(new)
