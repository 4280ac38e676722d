"""The measuring loop every engine runner shares (ours and the peers, each in its own process and venv).

A runner is started as ``python run_<engine>.py JOB.json OUT.json``. The job names the tokenizer folder,
the vocabulary size, the EOS ids, the cases (a regex or a JSON Schema, and the walk: token ids of a valid
instance, computed once by bench_compare.py so every engine walks the same ids) and the repeat count.
This module imports nothing but the standard library and numpy, so it runs in any venv.

Per case and repeat: compile = constraint text -> compiled form -> first mask filled (the engine's own
caches off or cleared); then the walk, timing each step as fill-mask + advance (EOS last). Memory: the
peak RSS growth over the first compile + walk of the case (Linux: VmHWM reset through
/proc/self/clear_refs, so one process stands in for a fresh process per case; memory freed by earlier
cases and reused by the allocator is not counted again).
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import time
import traceback


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak() -> int | None:
    """Reset the peak-RSS mark to the current RSS; returns the current RSS in kB (None: unsupported)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return None
    return _status_kb("VmRSS")


def peak_growth_mb(base_kb: int | None) -> float | None:
    if base_kb is None:
        return None
    return max(0, _status_kb("VmHWM") - base_kb) / 1024


WARM_UP = [
    {"name": "warm-up regex", "kind": "regex", "constraint": "[0-9]{1,3}", "walk": []},
    {"name": "warm-up schema", "kind": "schema", "walk": [],
     "constraint": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}},
]


def run(engine: str, version: str, prepare, compile_case) -> None:
    """``prepare(job) -> context`` (tokenizer preprocessing, timed once) and
    ``compile_case(context, case) -> (fill, advance)`` where ``fill()`` writes the current mask and
    ``advance(token_id)`` consumes a token (raising or returning False when the engine rejects it)."""
    job_path, out_path = sys.argv[1], sys.argv[2]
    with open(job_path) as handle:
        job = json.load(handle)
    gc.disable()  # collection pauses would land on random steps (the same for every engine)
    started = time.perf_counter()
    context = prepare(job)
    vocab_seconds = time.perf_counter() - started
    for warm_up in WARM_UP:  # first-use imports and one-time setup are not any constraint's compile time
        try:
            fill, _ = compile_case(context, warm_up)
            fill()
        except Exception:
            pass
    result = {"engine": engine, "version": version, "vocab_ms": vocab_seconds * 1e3, "cases": {}}
    for case in job["cases"]:
        if job.get("only") and case["name"] not in job["only"]:
            continue
        try:
            result["cases"][case["name"]] = measure(context, case, compile_case, job["repeat"], job["eos"])
        except Exception as error:  # a case an engine cannot compile or walk is reported, not fatal
            result["cases"][case["name"]] = {"error": f"{type(error).__name__}: {error}"[:300],
                                             "trace": traceback.format_exc()[-800:]}
        gc.collect()
    with open(out_path, "w") as handle:
        json.dump(result, handle)


def measure(context, case, compile_case, repeat: int, eos: list[int]) -> dict:
    walk = [*case["walk"], eos[0]]
    compiles, walks, memory = [], [], None
    for attempt in range(repeat):
        # A full collection also leaves the CPU caches cold: every compile starts as it would after other
        # work on a busy server (it costs a Python engine about 1 ms more than back-to-back compiles).
        gc.collect()
        base = reset_peak() if attempt == 0 else None
        started = time.perf_counter()
        fill, advance = compile_case(context, case)
        fill()  # the first mask: what a new request waits for
        compiles.append(time.perf_counter() - started)
        steps = []
        for position, token in enumerate(walk):
            started = time.perf_counter()
            fill()
            accepted = advance(token)
            steps.append(time.perf_counter() - started)
            if accepted is False:
                raise RuntimeError(f"the engine rejected token {token} at step {position} of {len(walk)}")
        if attempt == 0:
            memory = peak_growth_mb(base)
        walks.append(steps)
        del fill, advance
    # Every step is fill + advance (the first fill repeats the compile's, as a sampler would). Summaries
    # per repeat, then the median over repeats (one noisy repeat on a shared machine decides no max).
    summary = lambda f: statistics.median(f(steps) for steps in walks) * 1e6  # noqa: E731
    return {
        "compile_ms": statistics.median(compiles) * 1e3,
        "compile_ms_all": [c * 1e3 for c in compiles],
        "steps": len(walk),
        "p50_us": summary(statistics.median),
        "mean_us": summary(statistics.mean),
        "max_us": summary(max),
        "max_us_all": [max(steps) * 1e6 for steps in walks],
        "peak_mb": memory,
    }
