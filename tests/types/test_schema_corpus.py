"""The real-world-shaped JSON Schema corpus of issue 4 (benchmarks/schema_corpus.py), at the regex level.

Every schema of the corpus is turned into a regex; valid instances (compact, keys in schema order) must
fully match it with ``re.fullmatch`` and invalid instances must not. Compiling every regex to a DFA takes
about four minutes (p50 0.36 s per schema), so the DFA checks (compile rate counting ``DfaTooLargeError``,
invalid instances rejected by ``compile_dfa(regex).matches``) run on a deterministic stride of the corpus;
set ``OUTLINES_CORPUS_FULL=1`` to run them on all of it. The token-level walk is in
``benchmarks/bench_schema_corpus.py``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from schema_corpus import build_corpus  # noqa: E402

from outlines_core.errors import SchemaError  # noqa: E402
from outlines_core.regex import compile_dfa  # noqa: E402
from outlines_core.types import json_schema_to_regex  # noqa: E402

CORPUS = build_corpus(seed=0)
SUPPORTED = [e for e in CORPUS if not e.expect_refusal]
REFUSED = [e for e in CORPUS if e.expect_refusal]
DFA_STRIDE = 1 if os.environ.get("OUTLINES_CORPUS_FULL") else 8
DFA_SUBSET = SUPPORTED[::DFA_STRIDE]


def canonical(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def regex_of(entry):
    try:
        return json_schema_to_regex(entry.schema)
    except SchemaError:
        return None


def test_corpus_shape():
    assert len(CORPUS) >= 300
    assert 0.03 <= len(REFUSED) / len(CORPUS) <= 0.07
    assert all(e.valid and e.invalid for e in SUPPORTED)
    assert len({e.name for e in CORPUS}) == len(CORPUS)


def test_corpus_is_deterministic():
    again = build_corpus(seed=0)
    assert [(e.name, e.schema, e.valid, e.invalid) for e in again] == [(e.name, e.schema, e.valid, e.invalid) for e in CORPUS]


def test_compile_rate_and_regex_acceptance():
    compiled = 0
    failures = []
    for entry in SUPPORTED:
        regex = regex_of(entry)
        if regex is None:
            continue
        compiled += 1
        pattern = re.compile(regex)
        failures += [(entry.name, "valid rejected", canonical(v)) for v in entry.valid if not pattern.fullmatch(canonical(v))]
        failures += [(entry.name, "invalid accepted", canonical(v)) for v in entry.invalid if pattern.fullmatch(canonical(v))]
    assert compiled / len(SUPPORTED) >= 0.95, f"compile rate {compiled}/{len(SUPPORTED)}"
    assert not failures, "\n".join(map(str, failures[:20]))


@pytest.mark.parametrize("entry", DFA_SUBSET, ids=lambda e: e.name)
def test_dfa_accepts_valid_and_rejects_invalid(entry):
    regex = regex_of(entry)
    assert regex is not None, f"{entry.name} refused"
    dfa = compile_dfa(regex)  # DfaTooLargeError would fail here: counted as not compiled
    for value in entry.valid:
        assert dfa.matches(canonical(value).encode()), canonical(value)
    for value in entry.invalid:
        assert not dfa.matches(canonical(value).encode()), canonical(value)


@pytest.mark.parametrize("entry", REFUSED, ids=lambda e: e.name)
def test_unsupported_keywords_are_refused(entry):
    with pytest.raises(SchemaError):
        json_schema_to_regex(entry.schema)
