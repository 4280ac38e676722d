"""Per-step mask time of Lark grammar constraints on the real tokenizers.

    python benchmarks/bench_grammar.py [--tokenizers llama-bpe] [--repeat 3]

For each tokenizer and grammar, a valid instance of about 200 tokens (encoded by the tokenizer itself) is
walked token by token; each step is fill_bitmask + advance, timed. Printed per case:
  compile_ms  Lark text -> Grammar (LALR tables, lexer automata) -> GrammarIndex -> first mask
  cold p50/mean/max  the first walk on a fresh index: every mask computed on its first visit
  warm p50/max       the same walk again (masks cached): the steady state of a server
  copy_us     reference: np.copyto of one bitmask row of the same width (the floor of any mask step)
One thread: numpy's BLAS is not involved (set OMP_NUM_THREADS=1 anyway to be sure).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import load_encoder_without_dummy_prefix, load_vocabulary  # noqa: E402

from outlines_core.grammars import Grammar, GrammarIndex, load_example  # noqa: E402


def json_instance(target_tokens: int, encoder) -> str:
    """A nested JSON document grown until it encodes to about ``target_tokens`` tokens."""
    rng = random.Random(0)
    words = ["alpha", "beta", "gamma", "delta", "name", "value", "items", "count", "enabled", "tags"]
    records = []
    while True:
        records.append(
            {
                "id": len(records),
                "name": f"{rng.choice(words)} {rng.choice(words)}",
                "score": round(rng.uniform(-100, 100), 3),
                "tags": [rng.choice(words) for _ in range(rng.randint(1, 3))],
                "meta": {"enabled": rng.random() < 0.5, "parent": None if rng.random() < 0.5 else len(records) - 1},
            }
        )
        text = json.dumps({"records": records, "total": len(records)}, indent=1)
        if len(encoder.encode(text, add_special_tokens=False).ids) >= target_tokens:
            return text


def arithmetic_instance(target_tokens: int, encoder) -> str:
    rng = random.Random(0)
    text = "1"
    while len(encoder.encode(text, add_special_tokens=False).ids) < target_tokens:
        term = f"{rng.randint(0, 999)}" if rng.random() < 0.6 else f"({rng.randint(1, 99)} {rng.choice('+-*/')} -{rng.random():.2f})"
        text = f"{text} {rng.choice('+-*/')} {term}" if rng.random() < 0.7 else f"({text}) * {term}"
    return text


def walk(index: GrammarIndex, token_ids: list[int], row: np.ndarray) -> list[float]:
    guide = index.make_guide()
    steps = []
    for token in [*token_ids, index.vocabulary.eos_token_ids[0]]:
        start = time.perf_counter()
        guide.fill_bitmask(row)
        guide.advance(token)
        steps.append(time.perf_counter() - start)
    assert guide.is_finished()
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizers", nargs="+", default=["llama-bpe"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=200)
    args = parser.parse_args()
    header = f"{'tokenizer':10} {'grammar':10} {'tokens':>6} {'compile_ms':>10} {'cold p50':>9} {'mean':>7} {'max':>7} {'warm p50':>9} {'max':>7} {'copy_us':>7}"
    print(header + "   (step times in ms)")
    for tokenizer in args.tokenizers:
        vocabulary = load_vocabulary(tokenizer)
        encoder = load_encoder_without_dummy_prefix(tokenizer)
        row = np.zeros((vocabulary.size + 31) // 32, dtype=np.int32)
        for name, make in (("json", json_instance), ("arithmetic", arithmetic_instance)):
            text = load_example(name)
            instance = make(args.tokens, encoder)
            ids = encoder.encode(instance, add_special_tokens=False).ids
            compiles, colds, warms = [], [], []
            for _ in range(args.repeat):
                gc.collect()
                start = time.perf_counter()
                index = GrammarIndex(Grammar(text), vocabulary)  # fresh Grammar: no compile cache
                compiles.append(time.perf_counter() - start)
                colds.append(walk(index, ids, row))
                warms.append(walk(index, ids, row))
            mask = np.empty_like(row)
            copies = []
            for _ in range(200):
                start = time.perf_counter()
                np.copyto(row, mask)
                copies.append(time.perf_counter() - start)
            cold = [statistics.median(step) for step in zip(*colds)]
            warm = [statistics.median(step) for step in zip(*warms)]
            ms = 1e3
            print(
                f"{tokenizer:10} {name:10} {len(ids):6d} {statistics.median(compiles) * ms:10.1f} "
                f"{statistics.median(cold) * ms:9.3f} {statistics.mean(cold) * ms:7.3f} {max(cold) * ms:7.2f} "
                f"{statistics.median(warm) * ms:9.3f} {max(warm) * ms:7.3f} {statistics.median(copies) * 1e6:7.1f}"
            )


if __name__ == "__main__":
    main()
