"""Runs in vLLM's environment (see tests/vllm/test_vllm.py): one ``vllm.LLM`` with our logits processor on
SmolLM2-135M-Instruct, then every offline check, written as JSON for the tests to assert on.

    VLLM_PYTHON tests/vllm/vllm_session.py MODEL_FOLDER REQUESTS.json OUT.json

REQUESTS.json holds the batch: ``[{"prompt": [...messages], "extra_args": {...} | null, "max_tokens": N}]``.
"""

from __future__ import annotations

import json
import sys
import time


def main(folder: str, requests_path: str, out_path: str) -> None:
    import vllm
    from vllm import SamplingParams

    from backends.vllm import OutlinesLogitsProcessor, from_vllm
    from outlines_core import Generator
    from outlines_core.types import Regex

    started = time.perf_counter()
    llm = vllm.LLM(
        model=folder,
        dtype="float32",
        enforce_eager=True,
        gpu_memory_utilization=0.3,
        max_model_len=1024,
        logits_processors=[OutlinesLogitsProcessor],
    )
    result: dict = {"load_s": time.perf_counter() - started}
    tokenizer = llm.get_tokenizer()
    requests = json.load(open(requests_path))
    prompts = [tokenizer.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=False) for r in requests]
    params = [SamplingParams(max_tokens=r["max_tokens"], temperature=0, extra_args=r["extra_args"]) for r in requests]

    def record(outputs):
        return [
            {"text": o.outputs[0].text, "finish_reason": o.outputs[0].finish_reason, "tokens": len(o.outputs[0].token_ids)}
            for o in outputs
        ]

    # One generate call: every request in one batch, each with its own constraint.
    result["batch"] = record(llm.generate(prompts, params, use_tqdm=False))
    # Each request alone: the batch's rows must not have disturbed each other.
    result["alone"] = [record(llm.generate([p], [s], use_tqdm=False))[0] for p, s in zip(prompts, params)]

    # Generator on vLLM: call, batch, stream, chat messages.
    model = from_vllm(llm)
    ask = [{"role": "user", "content": "Give me an IPv4 address."}]
    ipv4 = Regex(requests[0]["extra_args"]["regex"])
    generator = Generator(model, ipv4)
    result["generator"] = {
        "call": generator(ask, max_new_tokens=30),
        "batch": generator([ask, "Another address:"], max_new_tokens=30),
        "stream": list(generator.stream(ask, max_new_tokens=30)),
        "int": Generator(model, int)("Pick a number.", max_new_tokens=12),
        "sampled": Generator(model, ipv4)(ask, max_new_tokens=30, temperature=0.8, seed=3),
        "sampled_again": Generator(model, ipv4)(ask, max_new_tokens=30, temperature=0.8, seed=3),
    }

    # Bad constraints are refused by validate_params, before anything runs.
    errors = {}
    bad = {
        "bad_regex": {"regex": "(("},
        "two_constraints": {"regex": "a", "choice": ["a"]},
        "bad_schema_json": {"json_schema": "{not json"},
        "unsupported_keyword": {"json_schema": json.dumps({"type": "string", "contentEncoding": "base64x", "not": {"type": "string"}})},
        "bad_grammar": {"grammar": "start: ("},
        "empty_choice": {"choice": []},
    }
    for name, extra_args in bad.items():
        try:
            llm.generate(["x"], SamplingParams(max_tokens=2, extra_args=extra_args), use_tqdm=False)
            errors[name] = None
        except Exception as error:  # noqa: BLE001 - the test inspects the type and message
            errors[name] = f"{type(error).__name__}: {error}"
    result["errors"] = errors
    # The engine still serves after refusing them.
    result["after_errors"] = record(llm.generate([prompts[3]], [params[3]], use_tqdm=False))[0]
    json.dump(result, open(out_path, "w"), indent=1)


if __name__ == "__main__":  # vLLM spawns its engine process: the guard is required
    main(*sys.argv[1:4])
