"""Our engine's runner (the repo's own Python): the same loop as the peers, in a process of its own.

Compile = (schema -> regex) + Index + Guide + first mask, with the DFA cache cleared and the on-disk
cache off (``mode=cold``), or through ``Index.cached`` with the on-disk cache in ``OUTLINES_CORE_CACHE_DIR``
(``mode=disk``: run twice, the second process measures a warm cache). Each step: fill_bitmask + advance."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# This checkout's engine, whatever an editable install elsewhere points to.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import common  # noqa: E402


def prepare(job):
    import numpy as np
    import transformers

    from outlines_core import Vocabulary

    tokenizer = transformers.AutoTokenizer.from_pretrained(job["tokenizer_dir"])
    vocabulary = Vocabulary.from_transformers(tokenizer, size=job["vocab_size"])
    vocabulary.prepare()  # the tables every constraint reads, as the backends build them at load (part of vocab_ms)
    row = np.zeros((vocabulary.size + 31) // 32, dtype=np.int32)
    return {"vocabulary": vocabulary, "row": row, "disk": job.get("mode") == "disk"}


def compile_case(context, case):
    from outlines_core import Guide, Index
    from outlines_core.regex import clear_caches
    from outlines_core.types import json_schema_to_regex

    if context["disk"]:
        regex = case["constraint"] if case["kind"] == "regex" else json_schema_to_regex(case["constraint"])
        index = Index.cached(regex, context["vocabulary"])
    else:
        clear_caches()
        regex = case["constraint"] if case["kind"] == "regex" else json_schema_to_regex(case["constraint"])
        index = Index(regex, context["vocabulary"])
    guide = Guide(index)
    row = context["row"]
    return (lambda: guide.fill_bitmask(row)), guide.advance


if __name__ == "__main__":
    import outlines_core

    assert os.path.dirname(os.path.dirname(outlines_core.__file__)) == sys.path[0], outlines_core.__file__
    common.run("ours", outlines_core.__version__, prepare, compile_case)
