"""Compile rate and acceptance rate of the JSON Schema corpus (benchmarks/schema_corpus.py, issue 4).

    python benchmarks/bench_schema_corpus.py [--tokenizer llama-bpe] [--limit N] [--seed 0] [--no-tokens]

For each schema: schema -> regex (timed), regex -> DFA, and (unless --no-tokens) regex -> Index on the
tokenizer. Prints the compile rate (refusals count as not compiled, reasons grouped), compile time
p50/p95/max, DFA states p50/max, and the acceptance rates: every valid instance, written compactly with keys
in schema order, must fully match the regex (``re.fullmatch``) and be walked token by token through a Guide
(then EOS allowed); every invalid instance must be rejected by the DFA. Failures are listed.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from schema_corpus import CorpusEntry, build_corpus  # noqa: E402

from outlines_core.errors import SchemaError  # noqa: E402
from outlines_core.regex import compile_dfa  # noqa: E402
from outlines_core.types import json_schema_to_regex  # noqa: E402


def canonical(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass
class Result:
    entry: CorpusEntry
    regex: str | None = None
    refusal: str | None = None  # "SchemaError: ..." / "DfaTooLargeError: ..."
    regex_s: float = 0.0
    dfa_s: float = 0.0
    index_s: float = 0.0
    states: int = 0
    valid_ok: int = 0
    invalid_ok: int = 0
    token_ok: int = 0
    failures: list = field(default_factory=list)  # (kind, text, detail)


def check_entry(entry: CorpusEntry, index_factory=None, walk=None) -> Result:
    """Regex-level checks (and token-level ones when index_factory/walk are given) for one corpus entry."""
    result = Result(entry)
    start = time.perf_counter()
    try:
        result.regex = json_schema_to_regex(entry.schema)
    except SchemaError as error:
        result.refusal = f"SchemaError: {error}"
        return result
    result.regex_s = time.perf_counter() - start
    start = time.perf_counter()
    try:
        dfa = compile_dfa(result.regex)
    except Exception as error:  # DfaTooLargeError and friends: not compiled
        result.refusal = f"{type(error).__name__}: {error}"
        return result
    result.dfa_s = time.perf_counter() - start
    result.states = dfa.num_states
    compiled = re.compile(result.regex)
    for value in entry.valid:
        text = canonical(value)
        if compiled.fullmatch(text) and dfa.matches(text.encode()):
            result.valid_ok += 1
        else:
            result.failures.append(("valid rejected by regex", text, ""))
    for value in entry.invalid:
        text = canonical(value)
        if not dfa.matches(text.encode()):
            result.invalid_ok += 1
        else:
            result.failures.append(("invalid accepted by DFA", text, ""))
    if index_factory is not None:
        start = time.perf_counter()
        try:
            index = index_factory(result.regex)
        except Exception as error:
            result.refusal = f"{type(error).__name__} (Index): {error}"
            return result
        result.index_s = time.perf_counter() - start
        for value in entry.valid:
            text = canonical(value)
            detail = walk(index, text)
            if detail is None:
                result.token_ok += 1
            else:
                result.failures.append(("valid rejected token by token", text, detail))
    return result


def pct(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", default="llama-bpe")
    parser.add_argument("--limit", type=int, default=None, help="only the first N schemas (spread over families)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-tokens", action="store_true", help="regex/DFA checks only, no tokenizer")
    args = parser.parse_args()

    corpus = build_corpus(seed=args.seed)
    if args.limit is not None and args.limit < len(corpus):
        step = len(corpus) / args.limit
        corpus = [corpus[int(i * step)] for i in range(args.limit)]

    index_factory = walk = None
    if not args.no_tokens:
        sys.path.insert(0, str(ROOT / "tests"))
        from conftest import load_encoder_without_dummy_prefix, load_vocabulary

        from outlines_core import Guide, Index

        vocabulary = load_vocabulary(args.tokenizer)
        encoder = load_encoder_without_dummy_prefix(args.tokenizer)

        def index_factory(regex):
            return Index(regex, vocabulary)

        def walk(index, text):
            guide = Guide(index)
            ids = encoder.encode(text, add_special_tokens=False).ids
            for position, token in enumerate(ids):
                allowed = guide.allowed_tokens()
                if token not in set(int(t) for t in allowed):
                    return f"token {position} ({encoder.id_to_token(token)!r}) not allowed"
                guide.advance(token)
            eos = index.vocabulary.eos_token_ids[0]
            if eos not in set(int(t) for t in guide.allowed_tokens()):
                return "EOS not allowed at the end"
            return None

    results = []
    start = time.perf_counter()
    for entry in corpus:
        results.append(check_entry(entry, index_factory, walk))
    total_s = time.perf_counter() - start

    supported = [r for r in results if not r.entry.expect_refusal]
    expected_refusals = [r for r in results if r.entry.expect_refusal]
    compiled = [r for r in supported if r.refusal is None]
    print(f"corpus: {len(results)} schemas (seed {args.seed}), {len(supported)} meant to compile, "
          f"{len(expected_refusals)} meant to be refused; tokenizer: {'none' if args.no_tokens else args.tokenizer}")
    print(f"compile rate: {len(compiled)}/{len(supported)} = {100 * len(compiled) / max(1, len(supported)):.1f}%")
    reasons = Counter((r.refusal or "").split(" at ")[0][:110] for r in supported if r.refusal)
    for reason, n in reasons.most_common():
        print(f"  refused x{n}: {reason}")
    refused_ok = [r for r in expected_refusals if r.refusal and r.refusal.startswith("SchemaError")]
    print(f"expected refusals raised SchemaError: {len(refused_ok)}/{len(expected_refusals)}")
    for reason, n in Counter(r.refusal.split(" at ")[0][:110] for r in refused_ok).most_common():
        print(f"  x{n}: {reason}")
    for r in expected_refusals:
        if r not in refused_ok:
            print(f"  NOT REFUSED: {r.entry.name}: {r.refusal}")
    # the Index compiles its own DFA from the regex: with tokens, compile time is schema->regex + Index
    compile_ms = [1e3 * (r.regex_s + (r.index_s if not args.no_tokens else r.dfa_s)) for r in compiled]
    regex_ms = [1e3 * r.regex_s for r in compiled]
    dfa_ms = [1e3 * r.dfa_s for r in compiled]
    states = [r.states for r in compiled]
    print(f"compile time ms (schema->regex + {'DFA' if args.no_tokens else 'Index'}): p50 {pct(compile_ms, .5):.1f}  "
          f"p95 {pct(compile_ms, .95):.1f}  max {max(compile_ms, default=0):.1f}")
    print(f"  schema->regex ms: p50 {pct(regex_ms, .5):.1f}  max {max(regex_ms, default=0):.1f};  "
          f"regex->DFA ms: p50 {pct(dfa_ms, .5):.1f}  max {max(dfa_ms, default=0):.1f}")
    print(f"DFA states: p50 {pct(states, .5)}  max {max(states, default=0)}")
    n_valid = sum(len(r.entry.valid) for r in compiled)
    n_invalid = sum(len(r.entry.invalid) for r in compiled)
    valid_ok = sum(r.valid_ok for r in compiled)
    invalid_ok = sum(r.invalid_ok for r in compiled)
    print(f"valid accepted (re.fullmatch + DFA): {valid_ok}/{n_valid} = {100 * valid_ok / max(1, n_valid):.1f}%")
    if not args.no_tokens:
        token_ok = sum(r.token_ok for r in compiled)
        print(f"valid accepted token by token ({args.tokenizer}, then EOS): {token_ok}/{n_valid} = "
              f"{100 * token_ok / max(1, n_valid):.1f}%")
    print(f"invalid rejected (DFA): {invalid_ok}/{n_invalid} = {100 * invalid_ok / max(1, n_invalid):.1f}%")
    print(f"total time: {total_s:.1f} s")
    failures = [(r.entry.name, *f) for r in compiled for f in r.failures]
    if failures:
        print(f"failures ({len(failures)}):")
        for name, kind, text, detail in failures:
            print(f"  {name}: {kind}: {text[:300]} {detail}")


if __name__ == "__main__":
    main()
