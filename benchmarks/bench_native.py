"""The C trie walk (outlines_core/_native.c) beside the numpy walk, on the same batches of the same index.

    python benchmarks/bench_native.py [--tokenizers llama-bpe llama-spm] [--repeat 20]

For each tokenizer and case, the restrictive states of the compiled index (those the trie walk serves;
permissive ones go to the loop walk) are cut into batches of 32 in state order, as lookahead batches are;
each batch is walked ``--repeat`` times by each walk, alternating, and the median kept. Both walks must
give the same masks and depths (checked on every batch). Printed per case: batches, trie nodes the C walk
visits per batch (median), the median batch time of each walk, and numpy / C.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import bench_compare  # noqa: E402
from conftest import load_vocabulary  # noqa: E402
from outlines_core import Index, config  # noqa: E402
from outlines_core.native import native_available  # noqa: E402
from outlines_core.types import json_schema_to_regex  # noqa: E402

CASES = ["ipv4", "datetime", "flat-3", "nested-8", "wide-30"]


def timed_walk(index: Index, batch: np.ndarray, native: bool):
    config.NATIVE_TRIE_WALK = native
    start = time.perf_counter()
    masks, _, depths = index._trie_walk.masks(batch)
    return time.perf_counter() - start, masks, depths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizers", nargs="+", default=["llama-bpe", "llama-spm"])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    if not native_available():
        sys.exit("outlines_core._native is not built (no C compiler at install time): nothing to compare")
    cases = {case["name"]: case for case in bench_compare.cases()}
    saved = config.NATIVE_TRIE_WALK
    try:
        for tokenizer in args.tokenizers:
            vocabulary = load_vocabulary(tokenizer)
            print(f"\n{tokenizer} ({vocabulary.size:,} tokens)")
            print(f"{'case':<10} {'batches':>7} {'nodes':>7} {'numpy us':>9} {'C us':>7} {'numpy/C':>8}")
            for name in CASES:
                case = cases[name]
                regex = case["constraint"] if case["kind"] == "regex" else json_schema_to_regex(case["constraint"])
                index = Index(regex, vocabulary)
                states = np.arange(1, index.num_states)
                restrictive = states[~index._permissive[states]]
                numpy_times, c_times, nodes = [], [], []
                for begin in range(0, len(restrictive), 32):
                    batch = restrictive[begin : begin + 32]
                    per_walk = {True: [], False: []}
                    for _ in range(args.repeat):
                        for native in (True, False):
                            seconds, masks, depths = timed_walk(index, batch, native)
                            per_walk[native].append(seconds)
                            if native:
                                c_result = (masks, depths)
                            else:
                                assert np.array_equal(masks, c_result[0]) and np.array_equal(depths, c_result[1])
                    c_times.append(np.median(per_walk[True]))
                    numpy_times.append(np.median(per_walk[False]))
                    out = np.zeros((len(batch), index._trie_walk.num_words), dtype=np.int32)
                    from outlines_core import _native

                    nodes.append(_native.trie_masks(*index._trie_walk._native_tables, batch.astype(np.int64), out,
                                                    np.zeros(len(batch), dtype=np.int64), 10**12))
                numpy_us, c_us = np.median(numpy_times) * 1e6, np.median(c_times) * 1e6
                print(f"{name:<10} {len(c_times):>7} {int(np.median(nodes)):>7,} {numpy_us:>9.0f} {c_us:>7.0f}"
                      f" {numpy_us / c_us:>8.1f}")
    finally:
        config.NATIVE_TRIE_WALK = saved


if __name__ == "__main__":
    main()
