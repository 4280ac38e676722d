"""Our engine side by side with xgrammar, llguidance and outlines-core (Rust), on the same tokenizers,
constraints and token walks.

    python benchmarks/bench_compare.py --setup-peers          # once: one venv per peer
    python benchmarks/bench_compare.py [--tokenizers llama-bpe qwen2 | /path/to/hf-folder] [--repeat 3]
    python benchmarks/bench_compare.py --write-docs           # the same run, written to docs/benchmarks.md

Every engine runs in a process of its own (the Rust outlines-core is also imported as ``outlines_core``),
the peers each in their own venv (``--peers-dir``, default ~/.cache/outlines_core/peers/<engine>). This
process builds our Vocabulary once per tokenizer to get the vocabulary size, the EOS id, the exact token
bytes (handed to the Rust outlines-core) and the walks: the token ids of a valid instance of each case,
encoded by the tokenizer itself without a dummy prefix. Runners get them as JSON and return JSON timings
(benchmarks/peers/common.py has the measuring loop and defines every column).

Columns: compile_ms = constraint text -> first mask (engine caches off; the tokenizer's preprocessing
is vocab_ms, once per tokenizer); p50/mean/max_us = one step (fill mask + advance) over the walk just after
compiling (first visits included), median over --repeat walks; peak_mb = peak RSS growth over the first
compile + walk; disk_ms (ours) = time to first mask in a second process with the on-disk index cache warm;
ours/peer = our value divided by the peer's (below 1: we are faster).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))  # this checkout's engine, whatever an editable install elsewhere points to

from bench_json_schema import CASES as SCHEMA_CASES  # noqa: E402
from bench_regex_index import CASES as REGEX_CASES  # noqa: E402

PEERS_DIR = Path.home() / ".cache" / "outlines_core" / "peers"
RUNNERS = ROOT / "benchmarks" / "peers"
ENGINES = ("ours", "xgrammar", "llguidance", "outlines-core")
#: What --setup-peers installs in each peer's venv (torch pinned: an open range pulls GBs of CUDA).
PEER_PACKAGES = {
    "xgrammar": ["xgrammar==0.2.8", "torch==2.13.0", "transformers>=4.45", "numpy"],
    "llguidance": ["llguidance==1.9.1", "transformers>=4.45", "numpy"],
    "outlines-core": ["outlines-core==0.2.14", "numpy"],
}
DEFAULT_TOKENIZERS = ("gpt-2", "llama-bpe", "llama-spm", "qwen2", "phi-3")
SENTENCE = (r"[A-Z][a-z ,]{10,200}\.", "The quick brown fox, jumps over the lazy dog and then runs far, far away.")


def cases() -> list[dict]:
    """The regexes of the core issue, the 200-char sentence, the JSON Schemas (flat, nested with formats,
    $defs/anyOf, 30 fields) of the output-types issue: (name, kind, constraint, instance text)."""
    chosen = [(name, "regex", *REGEX_CASES[name]) for name in ("ipv4", "number", "email", "datetime")]
    chosen.append(("sentence{10,200}", "regex", *SENTENCE))
    for name, (schema, instance) in SCHEMA_CASES.items():
        chosen.append((name, "schema", schema, json.dumps(instance, separators=(",", ":"), ensure_ascii=False)))
    return [{"name": n, "kind": k, "constraint": c, "instance": i} for n, k, c, i in chosen]


# -- peers' venvs ------------------------------------------------------------------------------------
def peer_python(peers_dir: Path, engine: str) -> Path:
    return peers_dir / engine / "bin" / "python"


def setup_peers(peers_dir: Path, engines) -> None:
    """Create (or complete) one venv per peer and install the pinned packages into it."""
    for engine in engines:
        if engine == "ours":
            continue
        venv = peers_dir / engine
        if not peer_python(peers_dir, engine).exists():
            print(f"creating {venv}", flush=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        command = [str(peer_python(peers_dir, engine)), "-m", "pip", "install", "-q", *PEER_PACKAGES[engine]]
        print(" ".join(command), flush=True)
        subprocess.run(command, check=True)


def available_engines(peers_dir: Path, requested) -> list[str]:
    found = []
    for engine in requested:
        if engine == "ours" or peer_python(peers_dir, engine).exists():
            found.append(engine)
        else:
            print(f"[skip] {engine}: no venv at {peers_dir / engine} (run with --setup-peers)", file=sys.stderr)
    return found


# -- one tokenizer -------------------------------------------------------------------------------------
def tokenizer_folder(name: str) -> Path:
    from conftest import TOKENIZERS_DIR

    path = Path(name)
    return path if path.is_dir() else TOKENIZERS_DIR / name


def make_job(name: str, workdir: Path, selected: list[dict], repeat: int) -> dict:
    """The job every runner of this tokenizer gets: the walks are computed and checked here, once."""
    import transformers

    from conftest import load_encoder_without_dummy_prefix
    from outlines_core import Guide, Index, Vocabulary
    from outlines_core.types import json_schema_to_regex

    folder = tokenizer_folder(name)
    vocabulary = Vocabulary.from_transformers(transformers.AutoTokenizer.from_pretrained(str(folder)))
    encoder = load_encoder_without_dummy_prefix(str(folder))
    tokens_file = workdir / f"{folder.name}-tokens.json"
    tokens_file.write_text(json.dumps([None if t is None else t.hex() for t in vocabulary.tokens]))
    job_cases = []
    for case in selected:
        walk = encoder.encode(case["instance"], add_special_tokens=False).ids
        regex = case["constraint"] if case["kind"] == "regex" else json_schema_to_regex(case["constraint"])
        guide = Guide(Index(regex, vocabulary))
        for token in walk:  # the walk must be valid for our engine (peers report their own rejections)
            guide.advance(token)
        if not guide.is_accepting():
            raise SystemExit(f"{name} {case['name']}: the instance is not a complete match")
        job_cases.append({**case, "walk": walk})
    return {
        "tokenizer": folder.name,
        "tokenizer_dir": str(folder),
        "vocab_size": vocabulary.size,
        "eos": list(vocabulary.eos_token_ids),
        "tokens_file": str(tokens_file),
        "repeat": repeat,
        "cases": job_cases,
    }


def run_runner(engine: str, job: dict, workdir: Path, peers_dir: Path, mode: str = "cold", env=None) -> dict:
    job_file = workdir / f"{job['tokenizer']}-{engine}-{mode}-job.json"
    out_file = workdir / f"{job['tokenizer']}-{engine}-{mode}-out.json"
    job_file.write_text(json.dumps({**job, "mode": mode}))
    python = sys.executable if engine == "ours" else str(peer_python(peers_dir, engine))
    script = RUNNERS / f"run_{engine.replace('-', '_')}.py"
    started = time.perf_counter()
    process = subprocess.run([python, str(script), str(job_file), str(out_file)], capture_output=True, text=True,
                             env={**os.environ, **(env or {})}, cwd=str(workdir))
    if process.returncode != 0:
        print(f"[error] {engine} on {job['tokenizer']}: {process.stderr[-2000:]}", file=sys.stderr)
        return {"engine": engine, "error": process.stderr[-500:], "cases": {}}
    result = json.loads(out_file.read_text())
    print(f"  {engine:<14} {mode:<5} {time.perf_counter() - started:6.1f} s", file=sys.stderr, flush=True)
    return result


def run_tokenizer(name, selected, engines, repeat, peers_dir, workdir) -> dict:
    print(f"{name}: preparing walks", file=sys.stderr, flush=True)
    job = make_job(name, workdir, selected, repeat)
    results = {engine: run_runner(engine, job, workdir, peers_dir) for engine in engines}
    if "ours" in engines:  # disk cache: a first process fills it, a second one is measured
        cache = workdir / f"indexes-{job['tokenizer']}"
        env = {"OUTLINES_CORE_CACHE_DIR": str(cache)}
        run_runner("ours", {**job, "repeat": 1}, workdir, peers_dir, "disk", env)
        results["ours-disk"] = run_runner("ours", job, workdir, peers_dir, "disk", env)
        shutil.rmtree(cache, ignore_errors=True)
    return {"tokenizer": job["tokenizer"], "vocab_size": job["vocab_size"],
            "steps": {c["name"]: len(c["walk"]) + 1 for c in job["cases"]}, "engines": results}


# -- tables ----------------------------------------------------------------------------------------------
def fmt(value, digits=1):
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def ratio(ours, peer):
    if ours is None or peer is None or peer <= 0:
        return "-"
    return f"{ours / peer:.2f}"


def table(run: dict) -> list[str]:
    engines = run["engines"]
    ours = engines.get("ours", {}).get("cases", {})
    disk = engines.get("ours-disk", {}).get("cases", {})
    vocab = ", ".join(f"{e} {fmt(r.get('vocab_ms'), 0)}" for e, r in engines.items() if e != "ours-disk")
    lines = [f"### {run['tokenizer']} ({run['vocab_size']:,} tokens)", "",
             f"Tokenizer preprocessing, once per tokenizer (ms): {vocab}.", "",
             "| case | engine | compile ms | p50 us | mean us | max us | peak MB | ours/peer compile | ours/peer p50 | ours/peer mean |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for case, steps in run["steps"].items():
        for engine, result in engines.items():
            if engine == "ours-disk":
                continue
            data = result.get("cases", {}).get(case)
            label = f"{case} ({steps} steps)" if engine == "ours" or "ours" not in engines else ""
            if data is None or "error" in data:
                reason = (data or {}).get("error", result.get("error", "not run"))
                lines.append(f"| {label} | {engine} | {reason[:90]} | | | | | | | |")
                continue
            compile_text = fmt(data["compile_ms"], 2)
            if engine == "ours" and case in disk and "compile_ms" in disk[case]:
                compile_text += f" (disk {fmt(disk[case]['compile_ms'], 2)})"
            mine = ours.get(case, {})
            ratios = ["", "", ""] if engine == "ours" or "error" in mine else [
                ratio(mine.get("compile_ms"), data["compile_ms"]), ratio(mine.get("p50_us"), data["p50_us"]),
                ratio(mine.get("mean_us"), data["mean_us"])]
            lines.append(f"| {label} | {engine} | {compile_text} | {fmt(data['p50_us'])} | {fmt(data['mean_us'])} | "
                         f"{fmt(data['max_us'], 0)} | {fmt(data['peak_mb'])} | {' | '.join(ratios)} |")
    return lines


def targets(run: dict) -> list[str]:
    """The issue's targets, checked case by case on this run."""
    engines = run["engines"]
    ours = engines.get("ours", {}).get("cases", {})
    misses = []
    for case in run["steps"]:
        mine = ours.get(case)
        if not mine or "error" in mine:
            misses.append(f"{case}: ours failed")
            continue
        llg = engines.get("llguidance", {}).get("cases", {}).get(case, {})
        xgr = engines.get("xgrammar", {}).get("cases", {}).get(case, {})
        if "compile_ms" in llg and mine["compile_ms"] > llg["compile_ms"]:
            misses.append(f"{case}: compile {mine['compile_ms']:.2f} ms > llguidance {llg['compile_ms']:.2f} ms")
        for key in ("p50_us", "mean_us"):
            if key in xgr and mine[key] > xgr[key]:
                misses.append(f"{case}: step {key[:-3]} {mine[key]:.1f} us > xgrammar {xgr[key]:.1f} us")
        if mine["max_us"] > 1000:
            misses.append(f"{case}: max step {mine['max_us']:.0f} us > 1 ms")
        disk = engines.get("ours-disk", {}).get("cases", {}).get(case, {})
        if "compile_ms" in disk and disk["compile_ms"] > 10:
            misses.append(f"{case}: warm disk cache first mask {disk['compile_ms']:.1f} ms > 10 ms")
    nested = ours.get("nested-8", {})
    if nested.get("peak_mb") is not None and nested["peak_mb"] >= 50:
        misses.append(f"nested-8: peak {nested['peak_mb']:.1f} MB >= 50 MB")
    return misses


def report(runs: list[dict], meta: dict) -> str:
    lines = []
    for run in runs:
        lines += table(run)
        misses = targets(run)
        lines += ["", f"Targets on {run['tokenizer']}: " + ("all met." if not misses else f"{len(misses)} missed:"), ""]
        lines += [f"- {miss}" for miss in misses]
        lines.append("")
    return "\n".join(lines)


def write_docs(text: str, meta: dict, path: Path) -> None:
    versions = ", ".join(f"{engine} {version}" for engine, version in meta["versions"].items())
    header = f"""# Benchmarks: our engine beside xgrammar, llguidance and outlines-core

Generated by `{meta['command']}` on {meta['date']} ({meta['machine']}); engines: {versions}.

**Load**: load average {meta['load_before']} before the run and {meta['load_after']} after it (1, 5, 15 min;
{meta['cpus']} cores). The machine is shared with other engineers' builds and tests: absolute times are
noisy; the ratios compare engines measured in the same run, one after the other, each in its own process.

How it is measured (`benchmarks/bench_compare.py`, runners in `benchmarks/peers/`):

- Same inputs for every engine: the tokenizer folder, the constraint, and the walk (token ids of a valid
  instance encoded by the tokenizer itself, computed once and passed as JSON). JSON Schemas are compiled by
  each engine's own schema compiler with compact separators; the regex cases are the same text for all.
  The Rust outlines-core gets the exact token bytes our Vocabulary derived; xgrammar and llguidance read
  the Hugging Face tokenizer themselves.
- **compile ms**: constraint text -> compiled form -> first mask filled, engine caches off (xgrammar:
  `cache_enabled=False`, `max_threads` = cores; ours: DFA cache cleared, disk cache off); median of
  {meta['repeat']} runs. "(disk ...)": ours through `Index.cached` in a second process whose on-disk cache a
  first process filled. Tokenizer preprocessing (once per tokenizer) is listed separately.
- **p50 / mean / max us**: one step = fill the bitmask + advance by the walk's next token (EOS last), over
  the walk right after compiling, so first visits of lazy states count in the mean and max; each
  statistic is the median over the {meta['repeat']} walks.
- **peak MB**: peak RSS growth (Linux VmHWM, reset through `/proc/self/clear_refs` before the case) over
  the first compile and walk of the case: native and Python memory alike. Memory released by earlier
  cases and reused is not counted again.
- **ours/peer**: our number divided by the peer's; below 1.00 we are faster.

"""
    path.write_text(header + text + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizers", nargs="*", default=list(DEFAULT_TOKENIZERS),
                        help="names under ../shared/tokenizers or paths of Hugging Face tokenizer folders")
    parser.add_argument("--engines", nargs="*", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--cases", nargs="*", default=None, help="case names (default: all)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--peers-dir", type=Path, default=PEERS_DIR)
    parser.add_argument("--setup-peers", action="store_true", help="create the peers' venvs, then exit")
    parser.add_argument("--write-docs", action="store_true", help="also write docs/benchmarks.md")
    parser.add_argument("--json", type=Path, default=Path.home() / ".cache" / "outlines_core" / "bench_compare.json",
                        help="where the raw results go")
    parser.add_argument("--from-json", type=Path, help="print (and --write-docs) a previous run's results")
    args = parser.parse_args()
    if args.setup_peers:
        setup_peers(args.peers_dir, args.engines)
        return
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        runs, meta = saved["runs"], saved["meta"]
    else:
        selected = [c for c in cases() if not args.cases or c["name"] in args.cases]
        engines = available_engines(args.peers_dir, args.engines)
        meta = {"command": "python benchmarks/bench_compare.py " + " ".join(sys.argv[1:]),
                "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
                "cpus": os.cpu_count(), "repeat": args.repeat,
                "load_before": ", ".join(f"{x:.2f}" for x in os.getloadavg())}
        runs = []
        with tempfile.TemporaryDirectory(prefix="bench_compare-") as workdir:
            for name in args.tokenizers:
                runs.append(run_tokenizer(name, selected, engines, args.repeat, args.peers_dir, Path(workdir)))
        meta["load_after"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        meta["versions"] = {e: r.get("version", "?") for e, r in runs[0]["engines"].items() if e != "ours-disk"}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"runs": runs, "meta": meta}))
    text = report(runs, meta)
    print(text)
    if args.write_docs:
        write_docs(text, meta, ROOT / "docs" / "benchmarks.md")
        print(f"wrote {ROOT / 'docs' / 'benchmarks.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
