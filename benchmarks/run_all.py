"""Run every benchmark, one subprocess each, and print a summary of their headline ratios.

    python benchmarks/run_all.py --quick           # all of them within ~10 min on 2 idle cores
    python benchmarks/run_all.py                   # full sizes (retrieval at 1M: tens of minutes)
    python benchmarks/run_all.py --only retrieval_index audio_frontend

Each script writes ``benchmarks/results/<name>.json`` (or ``--output-dir``); a script that fails is
reported with the tail of its output and the others still run. Exit status 1 when any failed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from distillcaps.benchmarking import validate_result

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"

# Least dependent first: a failure late in the list leaves the earlier results written.
BENCHMARKS = [
    "retrieval_index",
    "audio_frontend",
    "inference_speedup",
    "inference_limits",
    "train_step",
    "data_pipeline",
    "precompute_engines",
    "serve_batching",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run just these")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per script before it is stopped")
    parser.add_argument("extra", nargs="*", help="passed to every script after --, e.g. -- --repeats 7")
    args = parser.parse_args(argv)

    failed = []
    summary = []
    started_all = time.perf_counter()
    for name in args.only or BENCHMARKS:
        cmd = [sys.executable, str(BENCH_DIR / f"{name}.py"), "--output-dir", shown_path(args.output_dir)]
        cmd += (["--quick"] if args.quick else []) + list(args.extra)
        print(f"\n### {name}: {' '.join(cmd[1:])}", flush=True)
        started = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=args.timeout)
            code, out = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as err:
            code, out = "timeout", f"{err.stdout or ''}{err.stderr or ''}"
        seconds = time.perf_counter() - started
        path = args.output_dir / f"{name}.json"
        if code != 0:
            failed.append(name)
            tail = out if isinstance(out, str) else out.decode(errors="replace")
            print(f"FAILED ({code}) after {seconds:.0f} s:\n{tail[-2500:]}", flush=True)
            summary.append((name, f"FAILED ({code})", f"{seconds:.0f}"))
            continue
        data = json.loads(path.read_text())
        problems = validate_result(data)
        if problems:
            failed.append(name)
            print(f"malformed result {path}: {problems}", flush=True)
        print(
            "\n".join(line for line in out.splitlines() if line.startswith(("*", "!", "wrote"))), flush=True
        )
        headline = "; ".join(f"{r['name']}: {r['median']:.2f}" for r in data["ratios"][:3])
        summary.append((name, headline, f"{seconds:.0f}"))
    total = time.perf_counter() - started_all
    print(f"\n=== summary ({total / 60:.1f} min, {'quick' if args.quick else 'full'}) ===")
    for name, headline, seconds in summary:
        print(f"{name:18s} {seconds:>5s} s  {headline}")
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


def shown_path(path: Path) -> str:
    """Relative to the repository when inside it, so the JSON's recorded command is portable."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


if __name__ == "__main__":
    raise SystemExit(main())
