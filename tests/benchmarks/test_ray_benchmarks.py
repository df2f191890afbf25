"""The Ray-based benchmarks (data pipeline, serving batching) and run_all: slow, they start Ray."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from distillcaps.benchmarking import validate_result

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO_ROOT / "benchmarks"


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_data_pipeline_quick_small(bench):
    data = bench(
        "data_pipeline.py",
        "--quick",
        "--clips",
        "2",
        "--captions-per-clip",
        "2",
        "--seconds",
        "1",
        "--batch",
        "2",
        "--repeats",
        "2",
        "--warmup",
        "0",
    )
    assert {c["name"] for c in data["cases"]} == {"pipeline", "training"}
    assert data["ratios"][0]["numerator"] == "pipeline"
    assert data["settings"]["rows_per_epoch"] == 4


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_precompute_engines_quick_small(bench):
    data = bench("precompute_engines.py", "--quick", "--clips", "4", "--repeats", "2", "--warmup", "0")
    assert {c["name"] for c in data["cases"]} == {"features/ray", "features/local", "clap/ray", "clap/local"}
    assert [r["numerator"] for r in data["ratios"]] == ["features/local", "clap/local"]
    assert all(c["items_per_repetition"] == 4 for c in data["cases"])


@pytest.mark.slow
@pytest.mark.timeout(3600)  # Serve replicas took >15 min to come up at load average ~20 on 2 cores
def test_serve_batching_quick_small(bench):
    data = bench(
        "serve_batching.py",
        "--quick",
        "--requests",
        "2",
        "--concurrency",
        "1",
        "2",
        "--seconds",
        "0.5",
        "--new-tokens",
        "2",
        "--repeats",
        "2",
        "--warmup",
        "0",
    )
    bare = f"bare/b{data['settings']['modes']['batched']['max_batch_size']}"
    names = {"batched/c1", "batched/c2", "unbatched/c1", "unbatched/c2", bare}
    assert {c["name"] for c in data["cases"]} == names
    for case in data["cases"]:
        if case["name"] == bare:
            continue
        # every request of both repetitions answered (the top concurrency sends 3 rounds: 6 requests)
        assert case["extra"]["status_counts"] == {"200": 2 * (6 if case["params"]["concurrency"] == 2 else 2)}
        if case["params"]["mode"] == "unbatched":
            assert set(case["extra"]["batch_size_counts"]) == {"1"}  # batching off really is off


@pytest.mark.slow
@pytest.mark.timeout(5400)
def test_run_all_quick(tmp_path):
    """What the README's table comes from: every script, --quick, real subprocesses."""
    proc = subprocess.run(
        [sys.executable, str(BENCH_DIR / "run_all.py"), "--quick", "--output-dir", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    for name in (
        "retrieval_index",
        "audio_frontend",
        "inference_speedup",
        "inference_limits",
        "train_step",
        "data_pipeline",
        "precompute_engines",
        "serve_batching",
    ):
        data = json.loads((tmp_path / f"{name}.json").read_text())
        assert validate_result(data) == [] and data["quick"] is True
