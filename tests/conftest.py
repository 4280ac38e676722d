"""Fixtures shared by the whole suite: the real tokenizers from ../shared, loaded once per session."""

from __future__ import annotations

import functools
import os
import socket
import threading
import time
from enum import Enum
from pathlib import Path

import numpy as np
import pytest
from hypothesis import strategies as st
from pydantic import BaseModel, Field

#: The shared tokenizers live beside the checkout (CI and developer machines); override with OUTLINES_SHARED.
SHARED_DIR = Path(os.environ.get("OUTLINES_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
TOKENIZERS_DIR = SHARED_DIR / "tokenizers"
TOKENIZER_NAMES = ("gpt-2", "llama-bpe", "llama-spm", "phi-3", "qwen2")


@functools.lru_cache(maxsize=None)
def load_hf_tokenizer(name: str):
    """A transformers tokenizer from ../shared/tokenizers/<name>; skips the test when it is absent."""
    path = TOKENIZERS_DIR / name
    if not (path / "tokenizer.json").exists():
        pytest.skip(f"shared tokenizer folder {path} is absent")
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(str(path))


@functools.lru_cache(maxsize=None)
def load_vocabulary(name: str):
    """The engine's Vocabulary for a shared tokenizer, built once per test session."""
    from outlines_core import Vocabulary

    return Vocabulary.from_transformers(load_hf_tokenizer(name))


@pytest.fixture(params=TOKENIZER_NAMES)
def tokenizer_name(request) -> str:
    return request.param


@pytest.fixture
def hf_tokenizer(tokenizer_name):
    return load_hf_tokenizer(tokenizer_name)


@pytest.fixture
def vocabulary(tokenizer_name):
    return load_vocabulary(tokenizer_name)


def reference_masks(index) -> dict:
    """Every state's mask of ``index`` (an ``outlines_core.Index``) from walking every token's bytes through
    the DFA, one byte position at a time over the whole vocabulary: no trie, no lookahead, no loop walk."""
    vocabulary = index.vocabulary
    tokens = [vocabulary.token_bytes(t) or b"" for t in range(vocabulary.size)]
    lengths = np.array([len(t) for t in tokens])
    padded = np.zeros((vocabulary.size, lengths.max()), dtype=np.int64)
    for t, token in enumerate(tokens):
        padded[t, : len(token)] = np.frombuffer(token, dtype=np.uint8)
    masks = {}
    for state in range(1, index.num_states):
        states = np.full(vocabulary.size, state)
        for position in range(padded.shape[1]):
            going = lengths > position
            states[going] = index.dfa.transitions[states[going], padded[going, position]]
        allowed = (lengths > 0) & (states != 0)
        if index.dfa.accepting[state]:
            allowed[list(vocabulary.eos_token_ids)] = True
        masks[state] = np.packbits(np.pad(allowed, (0, index.num_words * 32 - vocabulary.size)), bitorder="little").view("<i4")
    return masks


REGEX_PIECES = ["a", "ab", "0", "12", " ", '"', "\\\\", "é", "日本", "[a-z]", "[0-9]", "[^\"]", "[α-ω]", "\\.", "[ -~]"]


#: ``small_regexes`` draws only patterns whose DFA has at most this many states: nested counted repetitions
#: of overlapping classes (``((a)([ -~]){1,4}[a-z](a)){0,3}){0,4}``) can need 100,000 and more, which the
#: tests built on them (Python determinization, walks from every state) are not about.
SMALL_REGEX_MAX_STATES = 3_000


def _small_dfa(pattern: str) -> bool:
    from outlines_core.errors import DfaTooLargeError
    from outlines_core.regex import compile_dfa

    try:
        compile_dfa(pattern, max_states=SMALL_REGEX_MAX_STATES)
    except DfaTooLargeError:
        return False
    return True


def small_regexes():
    """Random regexes over literals (multi-byte ones included), classes, alternation and repetition, with
    DFAs of at most ``SMALL_REGEX_MAX_STATES`` states."""
    return _regex_trees().filter(_small_dfa)


@st.composite
def _regex_trees(draw, depth=0):
    if depth >= 3 or draw(st.booleans()):
        return draw(st.sampled_from(REGEX_PIECES))
    parts = draw(st.lists(_regex_trees(depth=depth + 1), min_size=1, max_size=3))
    kind = draw(st.sampled_from(["concat", "alt", "star", "opt", "count"]))
    if kind == "concat":
        return "".join(f"({part})" for part in parts)
    if kind == "alt":
        return "|".join(f"({part})" for part in parts)
    low = draw(st.integers(0, 3))
    suffix = {"star": "*", "opt": "?", "count": f"{{{low},{low + draw(st.integers(0, 4))}}}"}[kind]
    return f"({''.join(parts)}){suffix}"


@functools.lru_cache(maxsize=None)
def load_encoder_without_dummy_prefix(name: str):
    """A ``tokenizers.Tokenizer`` that encodes text mid-sequence, as the model would continue it.

    SentencePiece-style tokenizers prepend ``▁`` to the first word of an encoded text; a continuation in
    the middle of an output has no such prefix. Byte-level tokenizers are returned as they are.
    """
    import json

    tokenizers = pytest.importorskip("tokenizers")
    config = json.loads((TOKENIZERS_DIR / name / "tokenizer.json").read_text(encoding="utf-8"))

    def strip_prepend(node):
        if not isinstance(node, dict):
            return node
        if node.get("type") == "Prepend":
            return None
        if node.get("type") == "Metaspace":
            node["prepend_scheme"] = "never"
            node["add_prefix_space"] = False
        for key in ("normalizers", "pretokenizers"):
            if key in node:
                node[key] = [child for child in map(strip_prepend, node[key]) if child is not None]
        return node

    config["normalizer"] = strip_prepend(config.get("normalizer"))
    config["pre_tokenizer"] = strip_prepend(config.get("pre_tokenizer"))
    if config.get("post_processor"):
        config["post_processor"] = None  # no BOS/EOS around the encoding
    return tokenizers.Tokenizer.from_str(json.dumps(config))


@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2-135M-Instruct, loaded once per test session (part of the README install: a failure, not a skip)."""
    from backends.transformers import load_default_model

    try:
        return load_default_model()
    except ModuleNotFoundError as error:
        pytest.fail(f"the default model is part of the install (see README): {error}")


# -- our HTTP server, for tests/server (one per session: the real app on a loopback port, in a thread) --
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RunningServer:
    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def server(smollm2):
    from outlines_core.serve import create_app

    running = RunningServer(create_app(smollm2, model_name="smollm2", max_batch=16, window_ms=20))
    yield running
    running.stop()


def pytest_sessionfinish(session, exitstatus):
    """Free cached llama.cpp models while the interpreter is whole: left to interpreter exit, their
    destructor runs after llama_cpp's own module state is gone and prints an ignored TypeError."""
    import gc
    import sys

    langchain_backend = sys.modules.get("backends.langchain")
    if langchain_backend is not None:
        langchain_backend._DEFAULT_MODELS.clear()
    gc.collect()


# -- the seeds' example output type, shared by the backend, server and vLLM tests ------------------------
class Armor(str, Enum):
    leather = "leather"
    chainmail = "chainmail"
    plate = "plate"


class Character(BaseModel):
    name: str = Field(max_length=10)
    age: int
    armor: Armor
    strength: int
