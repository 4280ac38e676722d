"""Compile time and per-step mask time of regex constraints on the real tokenizers.

    python benchmarks/bench_regex_index.py [--tokenizers llama-bpe qwen2] [--repeat 5]

For each tokenizer and case it prints:
  vocab_ms   building the Vocabulary and its byte trie (once per tokenizer, shared by every constraint)
  dfa_ms     regex -> minimized byte DFA; iregex_ms is interegular's parse + to_fsm on the same pattern,
             a reference run in the same process (it builds a character-level FSM, not minimized)
  compile_ms regex -> Index -> first mask (the DFA cache cleared first): what a new request waits
  cold p50/max  per-step mask (fill_bitmask + advance) walking a valid instance the first time
  warm p50/mean/max  the same walk again: every state cached, the steady state of a server
  copy_us    reference: np.copyto of one bitmask row of the same width (the floor of any mask step)
All times are medians over --repeat runs.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import TOKENIZER_NAMES, load_encoder_without_dummy_prefix, load_hf_tokenizer  # noqa: E402

from outlines_core import Guide, Index, Vocabulary  # noqa: E402
from outlines_core.regex import clear_caches, compile_dfa  # noqa: E402

CASES = {
    "ipv4": (r"((25[0-5]|2[0-4]\d|[01]?\d\d?)\.){3}(25[0-5]|2[0-4]\d|[01]?\d\d?)", "192.168.100.254"),
    "number": (r"(-)?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-][0-9]+)?", "-1234.5678e+09"),
    "email": (r"[a-zA-Z0-9._%+-]+@[a-zA-Z0-9-]+(\.[a-zA-Z0-9-]+)*\.[a-zA-Z]{2,}", "jane.doe+news@mail.example.org"),
    "datetime": (
        r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)",
        "2024-02-29T13:45:07.250+05:30",
    ),
    "csv{10,200}": (r"[a-z ,]{10,200}", "the quick brown fox, jumps over the lazy dog, again and again, and again"),
    "json_string": (
        r'"([^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"',
        '"Hello, world! \\"quoted\\" text with unicode é and 日本語 and a tab\\t."',
    ),
}


def timed(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def walk(index: Index, token_ids: list[int], row: np.ndarray) -> list[float]:
    guide = Guide(index)
    steps = []
    for token in [*token_ids, index.vocabulary.eos_token_ids[0]]:
        start = time.perf_counter()
        guide.fill_bitmask(row)
        guide.advance(token)
        steps.append(time.perf_counter() - start)
    return steps


def walk_timings(index: Index, token_ids: list[int], row: np.ndarray, repeat: int):
    """(cold steps, warm steps, copy reference steps) for walking ``token_ids`` through a fresh ``index``."""
    cold = walk(index, token_ids, row)
    warm = [step for _ in range(repeat) for step in walk(index, token_ids, row)]
    reference = np.full_like(row, -1)
    copies = []
    for _ in range(200):
        start = time.perf_counter()
        np.copyto(row, reference)
        copies.append(time.perf_counter() - start)
    return cold, warm, copies


def interegular_ms(pattern: str) -> float | None:
    try:
        import interegular
    except ImportError:
        return None
    elapsed, _ = timed(lambda: interegular.parse_pattern(pattern).to_fsm())
    return elapsed * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizers", nargs="*", default=list(TOKENIZER_NAMES))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    gc.disable()  # collection pauses would land on random steps
    header = (
        f"{'tokenizer':<10} {'case':<12} {'states':>6} {'dfa_ms':>7} {'iregex_ms':>9} {'compile_ms':>10} "
        f"{'cold_p50_us':>11} {'cold_max_ms':>11} {'warm_p50_us':>11} {'warm_mean_us':>12} {'warm_max_us':>11} "
        f"{'copy_us':>7}"
    )
    for name in args.tokenizers:
        tokenizer = load_hf_tokenizer(name)
        vocab_seconds, vocabulary = timed(lambda: Vocabulary.from_transformers(tokenizer))
        trie_seconds, _ = timed(lambda: vocabulary.trie)
        print(f"\n{name}: {vocabulary.size} tokens, vocabulary {vocab_seconds * 1e3:.0f} ms + trie "
              f"{trie_seconds * 1e3:.0f} ms (once per tokenizer)")
        print(header)
        encoder = load_encoder_without_dummy_prefix(name)
        row = np.zeros((vocabulary.size + 31) // 32, dtype=np.int32)
        for case, (pattern, instance) in CASES.items():
            dfa_times, iregex_times, compile_times = [], [], []
            token_ids = encoder.encode(instance, add_special_tokens=False).ids
            for _ in range(args.repeat):
                clear_caches()
                dfa_times.append(timed(lambda: compile_dfa(pattern))[0])
                iregex = interegular_ms(pattern)
                if iregex is not None:
                    iregex_times.append(iregex)
                clear_caches()
                compile_times.append(timed(lambda: Guide(Index(pattern, vocabulary)).fill_bitmask(row))[0])
            clear_caches()
            index = Index(pattern, vocabulary)
            cold, warm, copy_times = walk_timings(index, token_ids, row, args.repeat)
            print(
                f"{name:<10} {case:<12} {index.num_states:>6} {statistics.median(dfa_times) * 1e3:>7.2f} "
                f"{statistics.median(iregex_times) if iregex_times else float('nan'):>9.2f} "
                f"{statistics.median(compile_times) * 1e3:>10.2f} {statistics.median(cold) * 1e6:>11.1f} "
                f"{max(cold) * 1e3:>11.2f} {statistics.median(warm) * 1e6:>11.1f} "
                f"{statistics.mean(warm) * 1e6:>12.1f} {max(warm) * 1e6:>11.1f} "
                f"{statistics.median(copy_times) * 1e6:>7.1f}"
            )


if __name__ == "__main__":
    main()
