"""Compile time and per-step mask time of JSON Schema constraints on a real tokenizer.

    python benchmarks/bench_json_schema.py [--tokenizer llama-bpe] [--repeat 3]

Columns as in bench_regex_index.py: regex_ms (schema -> regex), dfa_ms (regex -> minimized DFA),
compile_ms (schema -> Index -> first mask, caches cleared), cold p50/max (first walk of a valid instance:
states computed on first visit), warm p50/mean/max (the same walk again), copy_us (np.copyto of one
bitmask row: the floor of any mask step, the in-process reference).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_regex_index import timed, walk_timings  # noqa: E402
from conftest import load_encoder_without_dummy_prefix, load_vocabulary  # noqa: E402

from outlines_core import Guide, Index  # noqa: E402
from outlines_core.regex import clear_caches, compile_dfa  # noqa: E402
from outlines_core.types import json_schema_to_regex  # noqa: E402

FLAT = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}, "active": {"type": "boolean"}},
    "required": ["name", "age", "active"],
    "additionalProperties": False,
}
NESTED = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "email": {"type": "string", "format": "email"},
        "created": {"type": "string", "format": "date-time"},
        "birthday": {"type": "string", "format": "date"},
        "score": {"type": "integer", "minimum": 0, "maximum": 100},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 16}, "maxItems": 5},
        "profile": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "ip": {"type": "string", "format": "ipv4"}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "role": {"enum": ["admin", "user", "guest"]},
    },
    "required": ["id", "email", "created", "birthday", "score", "tags", "profile", "role"],
    "additionalProperties": False,
}
UNION = {
    "$defs": {
        "card": {"type": "object", "properties": {"kind": {"const": "card"}, "number": {"type": "string", "pattern": "^[0-9]{16}$"}},
                 "required": ["kind", "number"], "additionalProperties": False},
        "bank": {"type": "object", "properties": {"kind": {"const": "bank"}, "iban": {"type": "string", "maxLength": 34}},
                 "required": ["kind", "iban"], "additionalProperties": False},
    },
    "type": "object",
    "properties": {"amount": {"type": "number", "minimum": 0}, "payment": {"anyOf": [{"$ref": "#/$defs/card"}, {"$ref": "#/$defs/bank"}]}},
    "required": ["amount", "payment"],
    "additionalProperties": False,
}
WIDE = {
    "type": "object",
    "properties": {f"field_{i:02d}": [{"type": "string"}, {"type": "integer"}, {"type": "boolean"}][i % 3] for i in range(30)},
    "required": [f"field_{i:02d}" for i in range(30)],
    "additionalProperties": False,
}
CASES = {
    "flat-3": (FLAT, {"name": "Ada Lovelace", "age": 36, "active": True}),
    "nested-8": (NESTED, {"id": "123e4567-e89b-12d3-a456-426614174000", "email": "ada@example.com",
                          "created": "2024-02-29T13:45:00Z", "birthday": "1815-12-10", "score": 97,
                          "tags": ["math", "poetry"], "profile": {"city": "London", "ip": "10.0.0.1"}, "role": "admin"}),
    "defs-anyOf": (UNION, {"amount": 12.5, "payment": {"kind": "bank", "iban": "GB33BUKB20201555555555"}}),
    "wide-30": (WIDE, {f"field_{i:02d}": ["value", 7, False][i % 3] for i in range(30)}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", default="llama-bpe")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    gc.disable()
    vocabulary = load_vocabulary(args.tokenizer)
    vocabulary.trie  # built once per tokenizer, not part of any schema's compile time
    encoder = load_encoder_without_dummy_prefix(args.tokenizer)
    row = np.zeros((vocabulary.size + 31) // 32, dtype=np.int32)
    print(f"{args.tokenizer}: {vocabulary.size} tokens")
    print(f"{'case':<11} {'states':>6} {'classes':>7} {'regex_ms':>8} {'dfa_ms':>7} {'compile_ms':>10} {'steps':>5} "
          f"{'cold_p50_us':>11} {'cold_max_ms':>11} {'warm_p50_us':>11} {'warm_mean_us':>12} {'warm_max_us':>11} {'copy_us':>7}")
    for case, (schema, instance) in CASES.items():
        text = json.dumps(instance, separators=(",", ":"), ensure_ascii=False)
        regex_times, dfa_times, compile_times = [], [], []
        for _ in range(args.repeat):
            seconds, regex = timed(lambda: json_schema_to_regex(schema))
            regex_times.append(seconds)
            clear_caches()
            dfa_times.append(timed(lambda: compile_dfa(regex))[0])
            clear_caches()
            compile_times.append(timed(lambda: Guide(Index(json_schema_to_regex(schema), vocabulary)).fill_bitmask(row))[0])
        clear_caches()
        index = Index(regex, vocabulary)
        tokens = encoder.encode(text, add_special_tokens=False).ids
        cold, warm, copies = walk_timings(index, tokens, row, args.repeat)
        print(f"{case:<11} {index.num_states:>6} {index.num_mask_classes:>7} {statistics.median(regex_times) * 1e3:>8.2f} "
              f"{statistics.median(dfa_times) * 1e3:>7.1f} {statistics.median(compile_times) * 1e3:>10.1f} {len(tokens) + 1:>5} "
              f"{statistics.median(cold) * 1e6:>11.1f} {max(cold) * 1e3:>11.2f} {statistics.median(warm) * 1e6:>11.1f} "
              f"{statistics.mean(warm) * 1e6:>12.1f} {max(warm) * 1e6:>11.1f} {statistics.median(copies) * 1e6:>7.1f}")


if __name__ == "__main__":
    main()
