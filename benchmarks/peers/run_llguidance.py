"""llguidance runner (in its own venv): LLTokenizer from the HF tokenizer (llguidance.hf), an LLMatcher
per walk from grammar_from_regex / grammar_from_json_schema (compact separators, no flexible
whitespace), fill_next_token_bitmask + consume_token per step."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402


def prepare(job):
    import llguidance
    import llguidance.hf
    import llguidance.numpy
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(job["tokenizer_dir"])
    lltokenizer = llguidance.hf.from_tokenizer(tokenizer, n_vocab=job["vocab_size"], eos_token=job["eos"][0])
    bitmask = llguidance.numpy.allocate_token_bitmask(1, job["vocab_size"])
    return {"llguidance": llguidance, "tokenizer": lltokenizer, "bitmask": bitmask}


def compile_case(context, case):
    llguidance = context["llguidance"]
    if case["kind"] == "regex":
        grammar = llguidance.LLMatcher.grammar_from_regex(case["constraint"])
    else:
        options = {"whitespace_flexible": False, "item_separator": ",", "key_separator": ":"}
        grammar = llguidance.LLMatcher.grammar_from_json_schema(case["constraint"], overrides=options)
    matcher = llguidance.LLMatcher(context["tokenizer"], grammar, log_level=0)
    if matcher.is_error():
        raise RuntimeError(matcher.get_error())
    bitmask = context["bitmask"]
    fill_mask = llguidance.numpy.fill_next_token_bitmask

    def advance(token):
        if not matcher.consume_token(token):
            raise RuntimeError(f"token {token} rejected: {matcher.get_error()}")

    return (lambda: fill_mask(matcher, bitmask, 0)), advance


if __name__ == "__main__":
    from importlib.metadata import version

    common.run("llguidance", version("llguidance"), prepare, compile_case)
