"""Tokens per second on vLLM (CPU) for a batch of 16: unconstrained, constrained by our logits processor,
and constrained by vLLM's built-in structured outputs (``StructuredOutputsParams``, xgrammar).

    python benchmarks/bench_vllm.py [--batch 16] [--max-tokens 64] [--repeat 3]

Runs in vLLM's environment (``python -m backends.vllm setup-venv``; the script re-launches itself with that
environment's python). One ``vllm.LLM`` serves every mode, created with our processor (so vLLM tracks
output tokens in every mode alike). Two workloads:

- ``same-length``: every row generates exactly ``--max-tokens`` tokens (unconstrained rows ignore EOS; the
  constraint ``[a-z ]{1000}`` cannot end sooner), so tokens/s compare the cost of masking alone;
- ``json``: the seeds' ``Character`` schema, rows ending when their object is complete (tokens/s over the
  tokens actually generated). ``vllm-xgrammar`` gets our compact regex for the schema, so under greedy
  decoding both engines produce the same text and tokens/s compare like for like; ``vllm-xgrammar-json``
  is xgrammar's own JSON grammar (different whitespace, so different text and lengths).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHARACTER = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 10},
        "age": {"type": "integer"},
        "armor": {"enum": ["leather", "chainmail", "plate"]},
        "strength": {"type": "integer"},
    },
    "required": ["name", "age", "armor", "strength"],
    "additionalProperties": False,
}
LETTERS = "[a-z ]{1000}"


class _Validator:
    def is_valid(self, value) -> bool:
        import jsonschema

        return jsonschema.Draft202012Validator(CHARACTER).is_valid(value)


CHARACTER_VALIDATOR = _Validator()


def relaunch_in_vllm_env() -> None:
    try:
        import vllm  # noqa: F401
    except ImportError:
        from backends.vllm import default_venv

        python = default_venv() / "bin" / "python"
        if not python.exists():
            sys.exit(f"no vLLM environment at {python.parent.parent}: run `python -m backends.vllm setup-venv`")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        os.execve(str(python), [str(python), *sys.argv], env)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workloads", default="same-length,json", help="comma-separated: same-length, json")
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the converted SmolLM2-135M-Instruct)")
    args = parser.parse_args()

    import torch
    import vllm
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    from backends.transformers import default_cache_dir
    from backends.vllm import OutlinesLogitsProcessor
    from outlines_core.generator import regex_of
    from outlines_core.types import JsonSchema

    folder = args.model or str(default_cache_dir())
    llm = vllm.LLM(
        model=folder, dtype="float32", enforce_eager=True, gpu_memory_utilization=0.3, max_model_len=1024,
        logits_processors=[OutlinesLogitsProcessor], max_num_seqs=max(16, args.batch),
    )
    tokenizer = llm.get_tokenizer()
    topics = ["a knight", "a wizard", "a thief", "an archer", "a healer", "a giant", "a dwarf", "an elf"]
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": f"Describe {topics[i % len(topics)]} (character {i}) as JSON."}],
            add_generation_prompt=True, tokenize=False,
        )
        for i in range(args.batch)
    ]
    character_regex = regex_of(JsonSchema(CHARACTER))
    n = args.max_tokens
    workloads = {
        "same-length": {
            "none": SamplingParams(max_tokens=n, temperature=0, ignore_eos=True),
            "ours": SamplingParams(max_tokens=n, temperature=0, extra_args={"regex": LETTERS}),
            "vllm-xgrammar": SamplingParams(max_tokens=n, temperature=0, structured_outputs=StructuredOutputsParams(regex=LETTERS)),
        },
        "json": {
            "none": SamplingParams(max_tokens=n, temperature=0, ignore_eos=True),
            "ours": SamplingParams(max_tokens=4 * n, temperature=0, extra_args={"regex": character_regex}),
            # the same regex, so both engines allow the same tokens and greedy decoding gives the same text
            "vllm-xgrammar": SamplingParams(
                max_tokens=4 * n, temperature=0, structured_outputs=StructuredOutputsParams(regex=character_regex)
            ),
            # xgrammar's own JSON grammar (it puts spaces after ':' and ',', so the text differs)
            "vllm-xgrammar-json": SamplingParams(
                max_tokens=4 * n, temperature=0, structured_outputs=StructuredOutputsParams(json=json.dumps(CHARACTER))
            ),
        },
    }
    print(f"vLLM {vllm.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}")
    for workload, modes in workloads.items():
        if workload not in args.workloads.split(","):
            continue
        for params in modes.values():  # warm up: compile every constraint once
            llm.generate(prompts[:2], params, use_tqdm=False)
        rates: dict[str, list[float]] = {mode: [] for mode in modes}
        outputs: dict[str, list[str]] = {}
        finish_reasons: dict[str, list[str]] = {}
        for _ in range(args.repeat):
            for mode, params in modes.items():  # interleaved, so drift hits every mode alike
                started = time.perf_counter()
                results = llm.generate(prompts, params, use_tqdm=False)
                elapsed = time.perf_counter() - started
                tokens = sum(len(r.outputs[0].token_ids) for r in results)
                rates[mode].append(tokens / elapsed)
                outputs[mode] = [r.outputs[0].text for r in results]
                finish_reasons[mode] = [r.outputs[0].finish_reason for r in results]
        median = {mode: statistics.median(values) for mode, values in rates.items()}
        print(f"\n{workload} (tokens/s, median of {args.repeat}):")
        print(f"| mode | tokens/s | ratio to none | ratio to vllm-xgrammar |")
        print("|---|---:|---:|---:|")
        for mode, rate in median.items():
            print(f"| {mode} | {rate:.0f} | {rate / median['none']:.2f} | {rate / median['vllm-xgrammar']:.2f} |")
        if workload == "json":
            for mode in ("ours", "vllm-xgrammar", "vllm-xgrammar-json"):
                stopped = [text for text, reason in zip(outputs[mode], finish_reasons[mode]) if reason == "stop"]
                for text in stopped:  # a row the constraint ended is a complete document
                    assert CHARACTER_VALIDATOR.is_valid(json.loads(text)), text
                cut = [text for text, reason in zip(outputs[mode], finish_reasons[mode]) if reason != "stop"]
                print(f"{mode}: {len(stopped)}/{args.batch} rows ended with a complete, valid object; "
                      f"{len(cut)} cut by max_tokens" + (f", e.g. {cut[0][:120]!r}" if cut else ""))
            same = sum(a == b for a, b in zip(outputs["ours"], outputs["vllm-xgrammar"]))
            print(f"ours and xgrammar produced the same text for {same}/{args.batch} rows")


if __name__ == "__main__":
    relaunch_in_vllm_env()
    main()
