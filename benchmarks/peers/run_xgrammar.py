"""xgrammar runner (in its own venv): TokenizerInfo from the HF tokenizer, a GrammarCompiler with its cache
off and max_threads = the machine's cores, compile_regex / compile_json_schema (compact separators), a
GrammarMatcher per walk, fill_next_token_bitmask + accept_token per step."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402


def prepare(job):
    import transformers
    import xgrammar

    tokenizer = transformers.AutoTokenizer.from_pretrained(job["tokenizer_dir"])
    info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=job["vocab_size"], stop_token_ids=job["eos"])
    bitmask = xgrammar.allocate_token_bitmask(1, job["vocab_size"])
    return {"xgrammar": xgrammar, "info": info, "bitmask": bitmask, "threads": os.cpu_count() or 1}


def compile_case(context, case):
    xgrammar = context["xgrammar"]
    compiler = xgrammar.GrammarCompiler(context["info"], max_threads=context["threads"], cache_enabled=False)
    if case["kind"] == "regex":
        compiled = compiler.compile_regex(case["constraint"])
    else:
        compiled = compiler.compile_json_schema(json.dumps(case["constraint"]), any_whitespace=False, separators=(",", ":"))
    matcher = xgrammar.GrammarMatcher(compiled)
    bitmask = context["bitmask"]
    return (lambda: matcher.fill_next_token_bitmask(bitmask)), matcher.accept_token


if __name__ == "__main__":
    from importlib.metadata import version

    common.run("xgrammar", version("xgrammar"), prepare, compile_case)
