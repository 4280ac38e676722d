"""Where a compile goes, stage by stage, on the cases of bench_compare.py.

    python benchmarks/bench_compile_stages.py [--tokenizer llama-bpe] [--repeat 7] [--cases flat-3 nested-8]

Each stage is timed after a full collection (as bench_compare.py's compile: caches cold) and the caches of
compiled DFAs and encoded sets cleared; medians over --repeat. Columns (ms):
  regex     schema -> regex (0 for the regex cases)
  nfa_py    regex -> NFA by the Python parser and Thompson builder (regex/parser.py, regex/nfa.py): the
            reference, run in the same process
  nfa_c     the same NFA by the C front end (nfa.native_nfa); py/c is their ratio
  dfa       regex -> minimized DFA as compile_dfa makes it (front end, determinization, minimization)
  index     Index(dfa): setup, mask classes, the start state's mask and the eager pass
  total     schema -> Index -> first mask filled, the whole compile
  classes   mask classes computed by the end of construction, of all
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
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from bench_compare import cases  # noqa: E402
from conftest import load_vocabulary  # noqa: E402

from outlines_core import Guide, Index  # noqa: E402
from outlines_core.regex import clear_caches, compile_dfa  # noqa: E402
from outlines_core.regex.nfa import build_nfa, native_nfa  # noqa: E402
from outlines_core.regex.parser import parse  # noqa: E402
from outlines_core.types import json_schema_to_regex  # noqa: E402


def timed(function) -> tuple[float, object]:
    gc.collect()
    clear_caches()
    started = time.perf_counter()
    result = function()
    return (time.perf_counter() - started) * 1e3, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", default="llama-bpe")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--cases", nargs="*")
    args = parser.parse_args()
    vocabulary = load_vocabulary(args.tokenizer)
    vocabulary.trie, vocabulary.token_table, vocabulary.fingerprint  # once per tokenizer, not a compile's
    row = np.zeros((vocabulary.size + 31) // 32, dtype=np.int32)
    gc.disable()
    print(f"{args.tokenizer}: {vocabulary.size} tokens; ms, median of {args.repeat}")
    print(f"{'case':<18} {'regex':>6} {'nfa_py':>7} {'nfa_c':>6} {'py/c':>5} {'dfa':>6} {'index':>6} {'total':>6}  classes")
    for case in cases():
        if args.cases and case["name"] not in args.cases:
            continue
        to_regex = (lambda: case["constraint"]) if case["kind"] == "regex" else (
            lambda: json_schema_to_regex(case["constraint"])
        )
        regex = to_regex()
        Guide(Index(regex, vocabulary)).fill_bitmask(row)  # a kind's first compile builds its text runs
        times: dict[str, list[float]] = {key: [] for key in ("regex", "nfa_py", "nfa_c", "dfa", "index", "total")}
        for _ in range(args.repeat):
            times["regex"].append(timed(to_regex)[0] if case["kind"] == "schema" else 0.0)
            times["nfa_py"].append(timed(lambda: build_nfa(parse(regex), pattern=regex))[0])
            times["nfa_c"].append(timed(lambda: native_nfa(regex))[0])
            seconds, dfa = timed(lambda: compile_dfa(regex))
            times["dfa"].append(seconds)
            seconds, index = timed(lambda: Index(dfa, vocabulary))
            times["index"].append(seconds)
            times["total"].append(timed(lambda: Guide(Index(to_regex(), vocabulary)).fill_bitmask(row))[0])
        median = {key: statistics.median(values) for key, values in times.items()}
        print(
            f"{case['name']:<18} {median['regex']:6.2f} {median['nfa_py']:7.2f} {median['nfa_c']:6.3f} "
            f"{median['nfa_py'] / median['nfa_c']:5.0f} {median['dfa']:6.2f} {median['index']:6.2f} "
            f"{median['total']:6.2f}  {len(index.computed_class_masks)}/{index.num_mask_classes - 1}"
        )


if __name__ == "__main__":
    main()
