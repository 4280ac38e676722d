"""The first request of a process: compile and decode one case in a fresh process, then again in the same one.

    python benchmarks/bench_first_request.py [--tokenizers llama-bpe gpt-2] [--cases nested-8 email]

bench_compare.py reports the median of several walks of each case in one process per tokenizer, so what a
process builds once per vocabulary (the text runs of a byte set, the trie's tables, numpy's own warm-up)
is paid by its first case's first walk and left out of the medians. A server's first request after a
start pays all of it: this script shows how much, per case, in a process that has loaded the tokenizer and
nothing else ("first"), beside the same case once more in that process ("again"). The tokenizer's own
preprocessing (Vocabulary.from_transformers) is not counted: it happens once, before any request.

Columns: compile ms (constraint -> Index -> first mask), then over the walk (fill mask + advance per token,
EOS last): the largest step and the steps over 1 ms.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))


def measure_one(tokenizer: str, case_name: str) -> dict:
    """In this (fresh) process: the case's first compile and walk, then a second one."""
    import numpy as np
    import transformers

    import bench_compare
    from conftest import load_encoder_without_dummy_prefix
    from outlines_core import Guide, Index, Vocabulary
    from outlines_core.regex import clear_caches
    from outlines_core.types import json_schema_to_regex

    folder = bench_compare.tokenizer_folder(tokenizer)
    vocabulary = Vocabulary.from_transformers(transformers.AutoTokenizer.from_pretrained(str(folder)))
    vocabulary.prepare()  # the tokenizer's preprocessing, before any request (the backends' model load)
    case = next(c for c in bench_compare.cases() if c["name"] == case_name)
    walk = load_encoder_without_dummy_prefix(str(folder)).encode(case["instance"], add_special_tokens=False).ids
    walk = walk + [vocabulary.eos_token_ids[0]]
    bitmask = np.zeros((vocabulary.size + 31) // 32, dtype=np.int32)
    result = {}
    gc.disable()  # a collection's pause is the process's, not the engine's
    for label in ("first", "again"):
        clear_caches()
        started = time.perf_counter()
        regex = case["constraint"] if case["kind"] == "regex" else json_schema_to_regex(case["constraint"])
        guide = Guide(Index(regex, vocabulary))
        guide.fill_bitmask(bitmask)
        compile_ms = (time.perf_counter() - started) * 1e3
        steps = []
        for token in walk:
            started = time.perf_counter()
            guide.fill_bitmask(bitmask)
            guide.advance(token)
            steps.append((time.perf_counter() - started) * 1e6)
        result[label] = {"compile_ms": compile_ms, "max_us": max(steps), "over_1ms": sum(s > 1000 for s in steps)}
    return result


def main() -> None:
    import bench_compare

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizers", nargs="+", default=["llama-bpe"])
    parser.add_argument("--cases", nargs="+", default=[c["name"] for c in bench_compare.cases()])
    parser.add_argument("--one", nargs=2, metavar=("TOKENIZER", "CASE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(*args.one)))
        return
    print("| tokenizer | case | first: compile ms | max us | steps > 1 ms | again: compile ms | max us | steps > 1 ms |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for tokenizer in args.tokenizers:
        for case in args.cases:
            process = subprocess.run([sys.executable, __file__, "--one", tokenizer, case], capture_output=True, text=True)
            if process.returncode != 0:
                print(f"| {tokenizer} | {case} | error: {process.stderr.strip().splitlines()[-1]} |||||")
                continue
            run = json.loads(process.stdout.strip().splitlines()[-1])
            cells = [f"{r['compile_ms']:.1f} | {r['max_us']:,.0f} | {r['over_1ms']}" for r in (run["first"], run["again"])]
            print(f"| {tokenizer} | {case} | {cells[0]} | {cells[1]} |", flush=True)


if __name__ == "__main__":
    main()
