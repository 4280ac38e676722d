"""The nested 8-field schema walked with other valid instances than bench_compare.py's one.

    python benchmarks/bench_instances.py [--tokenizers llama-bpe llama-spm] [--repeat 3]

bench_compare.py walks one instance per case, so its largest step is that instance's: which first visits
the decode makes, and which of them the eager pass covered, depend on the text. Here the nested-8 schema
(an e-mail, a date-time, a list of short strings, a nested object...) is walked with instances that differ
in their free text: other e-mail addresses (more domain labels, hyphens), other tags and cities, strings with
escapes. Each is checked against the schema first, then compiled afresh (DFA cache cleared, after a full
collection, as in bench_compare.py) and walked; the step statistics are medians over ``--repeat`` walks, step
by step.

Columns: steps, mean / p50 / max us per step (fill mask + advance, EOS last), how many steps took over
1 ms, and the token of the largest step with the kind of state it left (a permissive state's first visit
is a loop walk; a restrictive one's a trie walk batched by lookahead).
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

#: Changes to bench_compare.py's nested-8 instance: each one a valid instance of the schema.
VARIANTS = {
    "as in bench_compare": {},
    "dotted local part, 4 labels": {"email": "john.smith-jones@mail.server-name.co.uk"},
    "plus and underscore": {"email": "x_y+z@sub.domain.example.org"},
    "long labels": {"email": "maria.garcia2024@university-of-somewhere.edu"},
    "6 one-letter labels": {"email": "ops@a.b.c.d.e.io"},
    "other tags and city": {"tags": ["rust", "ml", "x", "databases", "a-b"], "profile": {"city": "São Paulo"}},
    # Escapes (\", \t, \u0007): states the eager pass leaves to their first visit (Index._eager_candidates).
    "escapes in strings": {"tags": ['say "hi"', "tab\there"], "profile": {"city": 'Zürich "old town" \u0007'}},
}


def instances(case: dict) -> list[tuple[str, str]]:
    import jsonschema

    base = json.loads(case["instance"])
    out = []
    for label, changes in VARIANTS.items():
        instance = copy.deepcopy(base)
        instance.update(changes)
        jsonschema.validate(instance, case["constraint"], format_checker=jsonschema.FormatChecker())
        out.append((label, json.dumps(instance, separators=(",", ":"), ensure_ascii=False)))
    return out


def measure(tokenizer: str, repeat: int) -> list[dict]:
    import numpy as np
    import transformers

    import bench_compare
    from conftest import load_encoder_without_dummy_prefix
    from outlines_core import Guide, Index, Vocabulary
    from outlines_core.regex import compile_dfa
    from outlines_core.types import json_schema_to_regex

    folder = bench_compare.tokenizer_folder(tokenizer)
    vocabulary = Vocabulary.from_transformers(transformers.AutoTokenizer.from_pretrained(str(folder)))
    vocabulary.trie, vocabulary.token_table
    encoder = load_encoder_without_dummy_prefix(str(folder))
    case = next(c for c in bench_compare.cases() if c["name"] == "nested-8")
    regex = json_schema_to_regex(case["constraint"])
    bitmask = np.zeros((vocabulary.size + 31) // 32, dtype=np.int32)
    Guide(Index(regex, vocabulary)).fill_bitmask(bitmask)  # the process's one-time set-up, not a walk's
    rows = []
    gc.disable()
    for label, text in instances(case):
        walk = encoder.encode(text, add_special_tokens=False).ids + [vocabulary.eos_token_ids[0]]
        walks, visited = [], []
        for _ in range(repeat):
            gc.collect()
            compile_dfa.cache_clear()
            index = Index(regex, vocabulary)
            guide = Guide(index)
            steps, states = [], []
            for token in walk:
                states.append(guide.state)
                started = time.perf_counter()
                guide.fill_bitmask(bitmask)
                guide.advance(token)
                steps.append((time.perf_counter() - started) * 1e6)
            walks.append(steps)
            visited = states  # the same every walk: the walk's tokens decide them
        median = np.median(np.array(walks), axis=0)
        slowest = int(median.argmax())
        token = vocabulary.token_list[walk[slowest]] if walk[slowest] < len(vocabulary.token_list) else None
        permissive = bool(index._permissive[visited[slowest]])  # what kind of first visit it was
        rows.append({
            "tokenizer": tokenizer, "instance": label, "steps": len(walk), "mean": float(median.mean()),
            "p50": float(np.median(median)), "max": float(median.max()), "over_1ms": int((median > 1000).sum()),
            "slowest": f"{token!r} ({'loop walk' if permissive else 'trie walk'})",
        })
    gc.enable()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokenizers", nargs="+", default=["llama-bpe", "llama-spm"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print("| tokenizer | instance | steps | mean us | p50 us | max us | steps > 1 ms | largest step |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for tokenizer in args.tokenizers:
        for row in measure(tokenizer, args.repeat):
            print(f"| {row['tokenizer']} | {row['instance']} | {row['steps']} | {row['mean']:.1f} | {row['p50']:.1f} "
                  f"| {row['max']:,.0f} | {row['over_1ms']} | {row['slowest']} |", flush=True)


if __name__ == "__main__":
    main()
