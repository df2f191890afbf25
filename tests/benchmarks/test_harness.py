"""The harness (distillcaps.benchmarking): alternating measurement, paired ratios, percentiles, the
JSON validator, and summarize.py's tables from a result."""

from __future__ import annotations

import argparse
import json

from distillcaps.benchmarking import (
    BenchmarkResult,
    Case,
    load_note,
    measure_alternating,
    paired_ratio,
    percentile,
    validate_result,
)


def test_alternating_order_reverses_each_repetition():
    calls = []
    a, b = Case("a", "items", 10), Case("b", "items", 10)
    measure_alternating([(a, lambda: calls.append("a")), (b, lambda: calls.append("b"))], repeats=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, then AB BA AB
    assert len(a.repetitions_s) == len(b.repetitions_s) == 3
    assert len(a.cpu_repetitions_s) == 3


def test_paired_ratio_is_per_repetition_then_median():
    fast, slow = Case("fast", "q", 100), Case("slow", "q", 100)
    fast.repetitions_s, slow.repetitions_s = [1.0, 1.0, 2.0], [2.0, 3.0, 2.0]
    ratio = paired_ratio("fast/slow", fast, slow)
    assert ratio["per_repetition"] == [2.0, 3.0, 1.0]
    assert ratio["median"] == 2.0
    # different work per repetition is accounted for: rates, not times, are compared
    half = Case("half", "q", 50)
    half.repetitions_s = [1.0, 1.0, 1.0]
    assert (
        paired_ratio("half/fast", half, Case("x", "q", 100, repetitions_s=[1.0, 1.0, 1.0]))["median"] == 0.5
    )


def test_percentile_interpolates():
    assert percentile([1, 2, 3, 4, 5], 50) == 3
    assert percentile([1, 2, 3, 4, 5], 100) == 5
    assert abs(percentile(list(range(101)), 99) - 99) < 1e-9


def test_load_note_states_the_measured_load():
    idle = load_note({"load_average_1_5_15": [0.4, 0.3, 0.2], "cpu_affinity": 2})
    busy = load_note({"load_average_1_5_15": [3.1, 2.0, 1.0], "cpu_affinity": 2})
    assert "0.40 on 2 cores" in idle and "(not busy)" in idle and "provisional" not in idle
    assert "3.10 on 2 cores" in busy and "(busy)" in busy and "provisional" in busy
    assert "unknown" in load_note({"load_average_1_5_15": None, "cpu_count": 2}).lower()


def test_result_json_validates_and_validator_catches_problems(tmp_path):
    args = argparse.Namespace(quick=True, repeats=2, warmup=0, threads=1, output_dir=tmp_path, device="cpu")
    result = BenchmarkResult("demo", args, settings={"x": 1})
    a = result.add(Case("a", "items", 4, repetitions_s=[0.5, 0.25], cpu_repetitions_s=[0.5, 0.25]))
    b = result.add(Case("b", "items", 4, repetitions_s=[1.0, 1.0], cpu_repetitions_s=[1.0, 1.0]))
    result.ratios.append(paired_ratio("a/b", a, b))
    data = result.to_dict()
    assert validate_result(data) == []
    assert data["machine"]["cpu_count"] >= 1 and data["cases"][0]["median_rate_per_s"] == 12.0
    data["cases"][1]["repetitions_s"] = [1.0]
    data["ratios"][0]["denominator"] = "missing"
    problems = validate_result(data)
    assert any("expected 2" in p for p in problems) and any("not a case name" in p for p in problems)


def test_summarize_writes_tables_from_results(tmp_path, capsys, bench_script):
    args = argparse.Namespace(
        quick=True, repeats=2, warmup=0, threads=1, output_dir=tmp_path, device="cpu", argv=["--quick"]
    )
    result = BenchmarkResult("demo", args, settings={})
    a = result.add(Case("a", "items", 4, repetitions_s=[0.5, 0.25], cpu_repetitions_s=[0.5, 0.25]))
    b = result.add(Case("b", "items", 4, repetitions_s=[1.0, 1.0]))
    result.ratios.append(paired_ratio("a/b", a, b))
    result.findings.append("a is faster")
    (tmp_path / "demo.json").write_text(json.dumps(result.to_dict()))
    assert bench_script("summarize.py").main(["--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "### demo" in out and "`python benchmarks/demo.py --quick`" in out
    assert "| a/b | 3.00 |" in out and "- a is faster" in out
