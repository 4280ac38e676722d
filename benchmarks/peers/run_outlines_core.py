"""outlines-core (Rust, PyPI) runner, in its own venv (its import name is also ``outlines_core``).

Its Vocabulary is built from the exact token bytes our Vocabulary derived (bench_compare writes them as
hex to ``tokens_file``), so both engines see the same tokens. Compile = (schema -> regex with its own
build_regex_from_schema, compact) + Index (eager: every state x every token) + Guide + first mask.
Each step: write_mask_into + advance."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402


def prepare(job):
    import numpy as np
    import outlines_core

    with open(job["tokens_file"]) as handle:
        tokens = json.load(handle)
    by_bytes: dict[bytes, list[int]] = {}
    for token_id, token in enumerate(tokens):
        if token is not None and token_id not in job["eos"]:
            by_bytes.setdefault(bytes.fromhex(token), []).append(token_id)
    vocabulary = outlines_core.Vocabulary(job["eos"][0], by_bytes)
    row = np.zeros((job["vocab_size"] + 31) // 32, dtype=np.int32)
    return {"vocabulary": vocabulary, "row": row, "eos": job["eos"][0]}


def compile_case(context, case):
    import outlines_core
    from outlines_core.json_schema import build_regex_from_schema

    if case["kind"] == "regex":
        regex = case["constraint"]
    else:
        regex = build_regex_from_schema(json.dumps(case["constraint"]), whitespace_pattern="")
    guide = outlines_core.Guide(outlines_core.Index(regex, context["vocabulary"]))
    row = context["row"]
    pointer, words = row.ctypes.data, row.size

    eos = context["eos"]

    def advance(token):
        if token == eos and guide.is_finished():
            return  # its final states allow EOS but have no transition on it: the walk is over
        guide.advance(token, return_tokens=False)

    return (lambda: guide.write_mask_into(pointer, words, 4)), advance


if __name__ == "__main__":
    from importlib.metadata import version

    common.run("outlines-core", version("outlines_core"), prepare, compile_case)
