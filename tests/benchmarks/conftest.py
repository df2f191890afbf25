"""Helpers to run a benchmark script as a user would (a subprocess) and read back its JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO_ROOT / "benchmarks"
sys.path.insert(0, str(BENCH_DIR))

from _common import validate_result  # noqa: E402


def run_benchmark(script: str, out_dir: Path, *args: str, timeout: float = 600) -> dict:
    """Run ``benchmarks/<script>`` with ``--output-dir out_dir`` and return its validated JSON."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    cmd = [sys.executable, str(BENCH_DIR / script), "--output-dir", str(out_dir), *args]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    name = script.removesuffix(".py")
    data = json.loads((out_dir / f"{name}.json").read_text())
    assert validate_result(data) == [], validate_result(data)
    assert data["benchmark"] == name
    assert str(out_dir) in data["command"]  # the command that made the file is recorded verbatim
    return data


@pytest.fixture
def bench(tmp_path):
    return lambda script, *args, **kw: run_benchmark(script, tmp_path, *args, **kw)
