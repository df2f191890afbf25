"""Shared harness for the benchmark scripts: side-by-side timing, machine facts, the result JSON.

Every script measures its sides *alternately* (A B, B A, A B, ...) after a warm-up, so that a
neighbour's burst of load on a shared machine hits both sides rather than one, and ratios are taken
per repetition pair before the median. The JSON written to ``benchmarks/results/<name>.json`` holds
the machine, the package versions, the settings, every repetition and the medians, so a number can
always be traced to how it was made.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
SCHEMA_VERSION = 1

# Offline, quiet defaults for every script (the machine has no internet; telemetry stays off).
for _key, _value in (
    ("HF_HUB_OFFLINE", "1"),
    ("MLFLOW_DISABLE_TELEMETRY", "true"),
    ("RAY_USAGE_STATS_ENABLED", "0"),
    ("TOKENIZERS_PARALLELISM", "false"),
):
    os.environ.setdefault(_key, _value)

DEFAULT_VERSIONS = ("torch", "numpy", "faiss-cpu", "faiss-gpu", "torchaudio", "soundfile", "transformers")


# ---------------------------------------------------------------------------------------------
# Command line


def base_parser(description: str) -> argparse.ArgumentParser:
    """Flags every benchmark takes; scripts add their own size flags on top."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="smaller sizes: all scripts within ~10 min")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions per side (>= 5 for ratios)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per side before timing")
    parser.add_argument("--threads", type=int, default=1, help="torch/faiss threads (1 = per-core figures)")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR, help="where <name>.json goes")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the same scripts run on a GPU)")
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """parse_args that remembers the argument list, so the JSON records the exact command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    return args


def set_threads(threads: int) -> None:
    """Pin intra-op threads so that a figure means 'per N cores' and not 'whatever was free'."""
    import torch

    torch.set_num_threads(threads)
    try:
        import faiss

        faiss.omp_set_num_threads(threads)
    except ImportError:
        pass


def start_benchmark_ray(num_cpus: int, attempts: int = 3) -> None:
    """A small local Ray (256 MB object store, no dashboard) through distillcaps.ray_runtime, which
    picks explicit agent ports, retries a start that misses Ray's window on a loaded machine and
    ends the processes of a failed attempt. RAY_SERVE_* variables reach the workers too."""
    from distillcaps.ray_runtime import ensure_ray

    ensure_ray(
        num_cpus=num_cpus,
        object_store_mb=256,
        attempts=attempts,
        forward_prefixes=("RAY_SERVE_",),
        log_to_driver=False,
    )


# ---------------------------------------------------------------------------------------------
# Timing


@dataclass
class Case:
    """One measured side: seconds per repetition and how much work (items) one repetition does."""

    name: str
    unit: str  # what items are: "queries", "clips", "captions", "steps", "samples", "requests"
    items_per_repetition: float
    params: dict[str, Any] = field(default_factory=dict)
    repetitions_s: list[float] = field(default_factory=list)  # wall seconds
    # This process's CPU seconds per repetition: on a shared machine the wall clock includes time
    # spent waiting for a core, CPU time does not (it misses work done in other processes: Ray).
    cpu_repetitions_s: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. recall, latency percentiles

    @property
    def median_s(self) -> float:
        return statistics.median(self.repetitions_s)

    @property
    def rates(self) -> list[float]:
        return [self.items_per_repetition / s if s > 0 else float("inf") for s in self.repetitions_s]

    @property
    def median_rate(self) -> float:
        return statistics.median(self.rates)

    @property
    def median_rate_per_cpu_s(self) -> float | None:
        if not self.cpu_repetitions_s:
            return None
        return statistics.median(self.items_per_repetition / max(s, 1e-9) for s in self.cpu_repetitions_s)

    def record(self, wall_s: float, cpu_s: float | None = None) -> None:
        self.repetitions_s.append(wall_s)
        if cpu_s is not None:
            self.cpu_repetitions_s.append(cpu_s)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "items_per_repetition": self.items_per_repetition,
            "params": self.params,
            "repetitions_s": self.repetitions_s,
            "rates_per_s": self.rates,
            "median_s": self.median_s,
            "median_rate_per_s": self.median_rate,
            "cpu_repetitions_s": self.cpu_repetitions_s,
            "median_rate_per_cpu_s": self.median_rate_per_cpu_s,
            **({"extra": self.extra} if self.extra else {}),
        }


def time_call(fn: Callable[[], Any], sync: Callable[[], None] | None = None) -> tuple[float, float]:
    """(wall, process CPU) seconds of one call; ``sync`` waits for a GPU before the clock stops."""
    cpu_start = time.process_time()
    start = time.perf_counter()
    fn()
    if sync is not None:
        sync()
    return time.perf_counter() - start, time.process_time() - cpu_start


def measure_alternating(
    sides: Sequence[tuple[Case, Callable[[], Any]]],
    repeats: int,
    warmup: int,
    sync: Callable[[], None] | None = None,
) -> None:
    """Warm every side up, then time them in turn, reversing the order on odd repetitions.

    Appends one duration per repetition to each Case, so repetition i of every side was measured
    within the same short window of the machine's (noisy) life.
    """
    for _ in range(warmup):
        for _case, fn in sides:
            fn()
    for rep in range(repeats):
        order = list(sides) if rep % 2 == 0 else list(reversed(sides))
        for case, fn in order:
            case.record(*time_call(fn, sync))


def paired_ratio(name: str, faster: Case, slower: Case, *, what: str = "rate") -> dict[str, Any]:
    """Ratio ``faster.rate / slower.rate`` per repetition pair (measured side by side), then its median."""
    if len(faster.repetitions_s) != len(slower.repetitions_s):
        raise ValueError(f"ratio {name}: {faster.name} and {slower.name} have different repetition counts")
    scale = faster.items_per_repetition / slower.items_per_repetition
    per_rep = [s_slow / s_fast * scale for s_fast, s_slow in zip(faster.repetitions_s, slower.repetitions_s)]
    ratio = {
        "name": name,
        "numerator": faster.name,
        "denominator": slower.name,
        "what": what,
        "per_repetition": per_rep,
        "median": statistics.median(per_rep),
    }
    if faster.cpu_repetitions_s and len(faster.cpu_repetitions_s) == len(slower.cpu_repetitions_s):
        # The same ratio on this process's CPU seconds: less sensitive to neighbours' load.
        per_rep_cpu = [
            s_slow / max(s_fast, 1e-9) * scale
            for s_fast, s_slow in zip(faster.cpu_repetitions_s, slower.cpu_repetitions_s)
        ]
        ratio["per_repetition_cpu"] = per_rep_cpu
        ratio["median_cpu"] = statistics.median(per_rep_cpu)
    return ratio


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank-with-interpolation percentile (q in [0, 100]) without numpy."""
    if not values:
        raise ValueError("percentile of an empty list")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


# ---------------------------------------------------------------------------------------------
# Machine and versions


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """Cores, CPU model, GPU (if any) and the load at the time of the run (the machine is shared)."""
    info: dict[str, Any] = {
        "hostname_hash": hash(platform.node()) & 0xFFFF,  # tells runs apart without naming the host
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(),
        "memory_gb": _memory_gb(),
        "load_average_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "device": device,
        "gpu": None,
    }
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = {
                "name": torch.cuda.get_device_name(0),
                "count": torch.cuda.device_count(),
                "memory_gb": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
                "cuda": torch.version.cuda,
            }
    except ImportError:
        pass
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def package_versions(names: Sequence[str] = DEFAULT_VERSIONS) -> dict[str, str]:
    """Installed versions of the packages that matter to a figure (absent ones are left out)."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    try:
        versions["distillcaps"] = importlib.metadata.version("distillcaps")
    except importlib.metadata.PackageNotFoundError:
        pass
    versions["git_commit"] = _git_commit()
    return versions


def _git_commit() -> str:
    head = REPO_ROOT / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            return (REPO_ROOT / ".git" / ref[5:]).read_text().strip()[:12]
        return ref[:12]
    except OSError:
        return "unknown"


# ---------------------------------------------------------------------------------------------
# Result


def load_note(machine: dict[str, Any]) -> str:
    """What the load average at the end of the run says about how far the absolute times can be trusted.

    A busy machine stretches wall times of both sides alike (they alternate), so the ratios hold;
    the absolute figures do not. "Busy" means more runnable processes than cores, the benchmark's own
    included (a 1-thread benchmark alone reads about 1).
    """
    load, cores = machine.get("load_average_1_5_15"), machine.get("cpu_affinity") or machine.get("cpu_count")
    if not load or not cores:
        return "Load unknown: treat the absolute figures as provisional; the side-by-side ratios hold."
    state = "busy" if load[0] > cores else "not busy"
    return (
        f"1-min load average {load[0]:.2f} on {cores} cores at the end of the run ({state}). "
        "Ratios were measured side by side (alternating) and are the more trustworthy numbers"
        + ("; treat the absolute figures as provisional." if state == "busy" else ".")
    )


@dataclass
class BenchmarkResult:
    name: str
    args: argparse.Namespace
    settings: dict[str, Any]
    cases: list[Case] = field(default_factory=list)
    ratios: list[dict[str, Any]] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)  # conclusions the numbers support, in words
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"what": ..., "why": ...}
    versions: Sequence[str] = DEFAULT_VERSIONS

    def add(self, case: Case) -> Case:
        self.cases.append(case)
        return case

    def skip(self, what: str, why: str) -> None:
        print(f"SKIPPED {what}: {why}", file=sys.stderr)
        self.skipped.append({"what": what, "why": why})

    def to_dict(self) -> dict[str, Any]:
        machine = machine_info(getattr(self.args, "device", "cpu"))
        return {
            "benchmark": self.name,
            "schema_version": SCHEMA_VERSION,
            "created_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "command": " ".join(
                ["python", f"benchmarks/{self.name}.py"]
                + [shlex.quote(a) for a in getattr(self.args, "argv", sys.argv[1:])]
            ),
            "quick": bool(getattr(self.args, "quick", False)),
            "repeats": self.args.repeats,
            "warmup": self.args.warmup,
            "threads": self.args.threads,
            "machine": machine,
            "versions": package_versions(self.versions),
            "settings": self.settings,
            "cases": [c.to_dict() for c in self.cases],
            "ratios": self.ratios,
            "findings": self.findings,
            "skipped": self.skipped,
            "note": load_note(machine),
        }

    def write(self) -> Path:
        out_dir = Path(self.args.output_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{self.name}.json"
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        self.print_table()
        print(f"\nwrote {path}")
        return path

    def print_table(self) -> None:
        print(
            f"\n== {self.name} ({'quick' if self.args.quick else 'full'}, {self.args.repeats} reps, "
            f"{self.args.threads} thread(s)) =="
        )
        rows = [("case", "median rate", "unit/s", "per CPU-s", "median s", "min s", "max s", "extra")]
        for c in self.cases:
            extra = ", ".join(f"{k}={_fmt(v)}" for k, v in c.extra.items() if not isinstance(v, list | dict))
            per_cpu = c.median_rate_per_cpu_s
            rows.append(
                (
                    c.name,
                    _fmt(c.median_rate),
                    c.unit,
                    "-" if per_cpu is None else _fmt(per_cpu),
                    _fmt(c.median_s),
                    _fmt(min(c.repetitions_s)),
                    _fmt(max(c.repetitions_s)),
                    extra,
                )
            )
        _print_rows(rows)
        if self.ratios:
            print()
            _print_rows(
                [("ratio", "median", "per repetition")]
                + [
                    (r["name"], _fmt(r["median"]), " ".join(_fmt(x) for x in r["per_repetition"]))
                    for r in self.ratios
                ]
            )
        for f in self.findings:
            print(f"* {f}")
        for s in self.skipped:
            print(f"! skipped {s['what']}: {s['why']}")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v == 0 or 1e-3 <= abs(v) < 1e5:
            return f"{v:.4g}"
        return f"{v:.3e}"
    return str(v)


def _print_rows(rows: list[tuple]) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip())


# ---------------------------------------------------------------------------------------------
# Validation (used by tests/benchmarks and run_all.py)


REQUIRED_KEYS = {
    "benchmark": str,
    "schema_version": int,
    "created_utc": str,
    "command": str,
    "quick": bool,
    "repeats": int,
    "warmup": int,
    "threads": int,
    "machine": dict,
    "versions": dict,
    "settings": dict,
    "cases": list,
    "ratios": list,
    "findings": list,
    "skipped": list,
}
CASE_KEYS = {
    "name": str,
    "unit": str,
    "params": dict,
    "repetitions_s": list,
    "rates_per_s": list,
    "median_s": float,
    "median_rate_per_s": float,
}


def validate_result(data: dict[str, Any]) -> list[str]:
    """Problems with a result JSON's structure (empty list = well-formed). Never checks speed."""
    problems = []
    for key, kind in REQUIRED_KEYS.items():
        if not isinstance(data.get(key), kind):
            problems.append(f"top-level {key!r} missing or not {kind.__name__}")
    for key in ("cpu_count", "cpu_model", "device"):
        if key not in data.get("machine", {}):
            problems.append(f"machine.{key} missing")
    for i, case in enumerate(data.get("cases", [])):
        for key, kind in CASE_KEYS.items():
            value = case.get(key)
            if kind is float and isinstance(value, int):
                value = float(value)
            if not isinstance(value, kind):
                problems.append(f"cases[{i}].{key} missing or not {kind.__name__}")
        reps = case.get("repetitions_s", [])
        if len(reps) != data.get("repeats"):
            problems.append(
                f"cases[{i}] ({case.get('name')}) has {len(reps)} repetitions, expected {data.get('repeats')}"
            )
        if any((not isinstance(x, int | float)) or x < 0 for x in reps):
            problems.append(f"cases[{i}] ({case.get('name')}) has a negative or non-numeric repetition")
    names = {c.get("name") for c in data.get("cases", [])}
    for i, ratio in enumerate(data.get("ratios", [])):
        for key in ("name", "numerator", "denominator", "per_repetition", "median"):
            if key not in ratio:
                problems.append(f"ratios[{i}].{key} missing")
        for side in ("numerator", "denominator"):
            if ratio.get(side) not in names:
                problems.append(f"ratios[{i}].{side} {ratio.get(side)!r} is not a case name")
    if not data.get("cases") and not data.get("skipped"):
        problems.append("no cases measured and nothing reported as skipped")
    return problems
