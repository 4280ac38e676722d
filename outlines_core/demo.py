"""The README's main command: constrained generation on the default model (SmolLM2-135M-Instruct).

    python -m outlines_core.demo

The first run converts the model from its GGUF file and caches it (about half a minute); later runs start
in a second or two.
"""

from __future__ import annotations

import re
import time

CASES = [
    (
        "IPv4 address",
        r"((25[0-5]|2[0-4]\d|[01]?\d\d?)\.){3}(25[0-5]|2[0-4]\d|[01]?\d\d?)",
        "What is the IP address of Google's public DNS server?",
    ),
    (
        "ISO date",
        r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])",
        "On which date did the Apollo 11 mission land on the Moon? Answer with the date only.",
    ),
    (
        "yes or no",
        r"(Yes|No)\.",
        "Is Paris the capital of France?",
    ),
]


def main() -> None:
    from backends.transformers import load_default_model
    from outlines_core import Generator
    from outlines_core.types import Regex

    started = time.perf_counter()
    model = load_default_model()
    print(f"loaded SmolLM2-135M-Instruct in {time.perf_counter() - started:.1f} s: {model.vocabulary!r}\n")
    for name, pattern, question in CASES:
        started = time.perf_counter()
        generator = Generator(model, Regex(pattern))
        compiled = time.perf_counter() - started
        started = time.perf_counter()
        answer = generator([{"role": "user", "content": question}], max_new_tokens=40)
        elapsed = time.perf_counter() - started
        matches = re.fullmatch(pattern, answer) is not None
        print(f"[{name}] {question}")
        print(f"  regex:  {pattern}")
        print(f"  output: {answer!r}  (fullmatch: {matches}; compile {compiled * 1e3:.0f} ms, generate {elapsed:.2f} s)\n")
        if not matches:
            raise SystemExit(f"constraint violated for {name}: {answer!r}")
    free = Generator(model)
    question = "What is the capital of France?"
    print(f"[unconstrained] {question}\n  output: {free([{'role': 'user', 'content': question}], max_new_tokens=30)!r}")


if __name__ == "__main__":
    main()
