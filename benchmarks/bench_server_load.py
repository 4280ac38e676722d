"""Load check of our HTTP server: N concurrent clients, with and without constraints.

    python benchmarks/bench_server_load.py [--clients 1 4 16] [--requests 32] [--max-tokens 32]

Starts the server in this process (uvicorn on a loopback port, the default model), then for each N runs
``--requests`` requests from N client threads against ``/generate``, unconstrained and constrained (each
client its own JSON Schema, so rows of one batch carry different constraints). Prints requests/s,
generated tokens/s, p50/p99 latency and how many responses failed validation against their own schema
(must be 0: no lost or mixed-up responses). Throughput is compared per generated token, because
unconstrained rows may stop earlier or later than constrained ones.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402
import jsonschema  # noqa: E402

#: Constraints whose outputs are longer than --max-tokens, so constrained rows run exactly as long as
#: unconstrained ones: the tokens/s ratio of this run is the cost of the constraint itself.
LONG = [
    {"schema": {"type": "string", "minLength": 400, "maxLength": 400}},
    {"schema": {"type": "array", "items": {"type": "integer"}, "minItems": 200, "maxItems": 200}},
    {"regex": "[a-z ]{400}"},
    {"schema": {"type": "object", "properties": {"text": {"type": "string", "minLength": 400, "maxLength": 400}}, "required": ["text"]}},
]
SCHEMAS = [
    {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}, "population": {"type": "integer"}}, "required": ["city", "population"]},
    {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 999}, "minItems": 2, "maxItems": 4},
    {"type": "object", "properties": {"ok": {"type": "boolean"}, "score": {"type": "number"}}, "required": ["ok", "score"]},
    {"type": "string", "enum": ["red", "green", "blue", "yellow"]},
]


def run(url: str, clients: int, requests: int, max_tokens: int, mode: str):
    constrained = mode == "schemas"

    def one(i: int):
        schema = SCHEMAS[i % len(SCHEMAS)]
        body = {"prompt": f"Request {i}: answer in JSON.", "max_tokens": max_tokens}
        if constrained:
            body["schema"] = schema
        elif mode == "long":
            body.update(LONG[i % len(LONG)])
        start = time.perf_counter()
        response = httpx.post(f"{url}/generate", json=body, timeout=600)
        latency = time.perf_counter() - start
        payload = response.json()
        failed = response.status_code != 200
        if constrained and not failed and payload["finish_reason"] == "stop":
            try:
                jsonschema.validate(json.loads(payload["text"]), schema)
            except (ValueError, jsonschema.ValidationError):
                failed = True
        tokens = payload.get("usage", {}).get("completion_tokens", 0) if not failed else 0
        return latency, tokens, failed, payload.get("finish_reason")

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, range(requests)))
    elapsed = time.perf_counter() - start
    latencies = sorted(r[0] for r in results)
    return {
        "rps": requests / elapsed,
        "tokens_per_s": sum(r[1] for r in results) / elapsed,
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "failed": sum(r[2] for r in results),
        "cut": sum(r[3] == "length" for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--per-window", action="store_true", help="no joining of running batches (the old scheduler)")
    args = parser.parse_args()

    from conftest import RunningServer  # the tests' in-process server runner

    from backends.transformers import load_default_model
    from outlines_core.serve import create_app

    server = RunningServer(create_app(load_default_model(), max_batch=args.max_batch, window_ms=10, continuous=not args.per_window))
    try:
        for mode in ("schemas", "long"):
            run(server.url, 2, 4, 8, mode)  # warm up: compile the constraints, first batches
        print(f"{args.requests} requests per run, max_tokens={args.max_tokens}, default model, CPU")
        print("modes: none = unconstrained; schemas = 4 different JSON Schemas, validated; long = 4 constraints")
        print("longer than max_tokens (rows run as long as unconstrained ones: the ratio is the constraint's cost)")
        print(f"{'clients':>7} {'mode':>8} {'req/s':>7} {'tok/s':>7} {'p50 s':>7} {'p99 s':>7} {'failed':>6} {'cut':>4}")
        for clients in args.clients:
            rows = {}
            for mode in ("none", "schemas", "long"):
                result = rows[mode] = run(server.url, clients, args.requests, args.max_tokens, mode)
                print(
                    f"{clients:7d} {mode:>8} {result['rps']:7.2f} {result['tokens_per_s']:7.1f} "
                    f"{result['p50']:7.2f} {result['p99']:7.2f} {result['failed']:6d} {result['cut']:4d}"
                )
            print(
                f"{'':7} long/none tokens/s = {rows['long']['tokens_per_s'] / rows['none']['tokens_per_s']:.2f}; "
                f"schemas/none requests/s = {rows['schemas']['rps'] / rows['none']['rps']:.2f}"
            )
        engine = server.app.state.engine
        print(
            f"batches started: {engine.batches_run}, requests that joined a running batch: {engine.joined}, "
            f"largest batch: {engine.largest_batch}"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
