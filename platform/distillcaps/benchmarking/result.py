"""A benchmark's result: the JSON written to ``<output dir>/<name>.json``, its table and its check.

The JSON holds the machine, the package versions, the settings, every repetition and the medians,
so a number can always be traced to how it was made; ``validate_result`` checks its structure
(never its speed) for the tests and ``benchmarks/run_all.py``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distillcaps.benchmarking.machine import DEFAULT_VERSIONS, load_note, machine_info, package_versions
from distillcaps.benchmarking.timing import Case

SCHEMA_VERSION = 1


@dataclass
class BenchmarkResult:
    name: str  # the script's name: benchmarks/<name>.py writes <name>.json
    args: argparse.Namespace  # the script's parsed flags (base_parser's, argv included)
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
        print_table(self)
        print(f"\nwrote {path}")
        return path


# ---------------------------------------------------------------------------------------------
# The table a run prints


def print_table(result: BenchmarkResult) -> None:
    args = result.args
    print(
        f"\n== {result.name} ({'quick' if args.quick else 'full'}, {args.repeats} reps, "
        f"{args.threads} thread(s)) =="
    )
    rows = [("case", "median rate", "unit/s", "per CPU-s", "median s", "min s", "max s", "extra")]
    for c in result.cases:
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
    if ratios := result.ratios:
        print()
        _print_rows(
            [("ratio", "median", "per repetition")]
            + [(r["name"], _fmt(r["median"]), " ".join(map(_fmt, r["per_repetition"]))) for r in ratios]
        )
    for f in result.findings:
        print(f"* {f}")
    for s in result.skipped:
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
# The schema, checked


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
    problems = [
        f"top-level {key!r} missing or not {kind.__name__}"
        for key, kind in REQUIRED_KEYS.items()
        if not isinstance(data.get(key), kind)
    ]
    machine = data.get("machine", {})
    problems += [f"machine.{k} missing" for k in ("cpu_count", "cpu_model", "device") if k not in machine]
    for i, case in enumerate(data.get("cases", [])):
        problems += _case_problems(i, case, data.get("repeats"))
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


def _case_problems(i: int, case: dict[str, Any], repeats: Any) -> list[str]:
    problems = []
    for key, kind in CASE_KEYS.items():
        value = case.get(key)
        if kind is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, kind):
            problems.append(f"cases[{i}].{key} missing or not {kind.__name__}")
    reps = case.get("repetitions_s", [])
    if len(reps) != repeats:
        problems.append(f"cases[{i}] ({case.get('name')}) has {len(reps)} repetitions, expected {repeats}")
    if any((not isinstance(x, int | float)) or x < 0 for x in reps):
        problems.append(f"cases[{i}] ({case.get('name')}) has a negative or non-numeric repetition")
    return problems
