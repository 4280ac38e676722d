"""Memory per compiled constraint (ours): what compiling a case and walking its instance allocates.

    python benchmarks/bench_memory.py [--tokenizers llama-bpe ...]

bench_compare.py's peak-RSS column cannot see memory the allocator reuses from earlier cases; this
script counts allocations instead (tracemalloc, which numpy reports its buffers to): per case, the peak
of everything allocated while compiling (schema -> regex -> DFA -> Index) and walking the instance,
and what the compiled index still holds afterwards. The vocabulary's own tables (trie, token table),
built once per tokenizer and shared by every constraint, are listed apart.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from bench_compare import cases  # noqa: E402

MB = 2**20


def main() -> None:
    import numpy as np

    from conftest import load_encoder_without_dummy_prefix, load_vocabulary
    from outlines_core import Guide, Index
    from outlines_core.regex import clear_caches
    from outlines_core.types import json_schema_to_regex

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizers", nargs="*", default=["llama-bpe"])
    args = parser.parse_args()
    for name in args.tokenizers:
        tracemalloc.start()
        vocabulary = load_vocabulary(name)
        vocabulary.trie, vocabulary.token_table, vocabulary.token_table.ascii_only  # noqa: B018 - build once
        shared = tracemalloc.get_traced_memory()[0] / MB
        tracemalloc.stop()
        encoder = load_encoder_without_dummy_prefix(name)
        Index("[0-9]+", vocabulary)  # first-use setup is nobody's
        print(f"\n{name} ({vocabulary.size:,} tokens): vocabulary tables {shared:.1f} MB, shared by every constraint\n")
        print("| case | DFA states | peak MB (compile + walk) | retained MB |")
        print("|---|---:|---:|---:|")
        for case in cases():
            clear_caches()
            gc.collect()
            walk = encoder.encode(case["instance"], add_special_tokens=False).ids
            row = np.zeros((vocabulary.size + 31) // 32, dtype=np.int32)
            tracemalloc.start()
            regex = case["constraint"] if case["kind"] == "regex" else json_schema_to_regex(case["constraint"])
            index = Index(regex, vocabulary)
            guide = Guide(index)
            for token in walk:
                guide.fill_bitmask(row)
                guide.advance(token)
            clear_caches()  # the index holds its DFA; the cache's reference is not the case's
            current, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(f"| {case['name']} | {index.num_states:,} | {peak / MB:.1f} | {current / MB:.1f} |")
            del index, guide


if __name__ == "__main__":
    main()
