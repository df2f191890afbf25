"""Run a benchmark script's ``main(argv)`` in-process (imports are paid once per test session) and
read back its JSON; the scripts are also run as real subprocesses by the slow run_all test."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from distillcaps.benchmarking import validate_result

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO_ROOT / "benchmarks"


def load_script(script: str):
    """``benchmarks/<script>`` as a module named ``bench_<name>``, registered in sys.modules as an
    import would (dataclasses look their module up there)."""
    name = f"bench_{script.removesuffix('.py')}"
    spec = importlib.util.spec_from_file_location(name, BENCH_DIR / script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def run_benchmark(script: str, out_dir: Path, *args: str) -> dict:
    """Run ``benchmarks/<script>`` with ``--output-dir out_dir`` and return its validated JSON."""
    threads = torch.get_num_threads()
    try:
        assert load_script(script).main(["--output-dir", str(out_dir), *args]) == 0
    finally:
        torch.set_num_threads(threads)  # the scripts pin threads; leave the test process as found
    name = script.removesuffix(".py")
    data = json.loads((out_dir / f"{name}.json").read_text())
    assert validate_result(data) == [], validate_result(data)
    assert data["benchmark"] == name
    assert data["command"].startswith(f"python benchmarks/{script} --output-dir {out_dir}")
    return data


@pytest.fixture
def bench(tmp_path):
    return lambda script, *args: run_benchmark(script, tmp_path, *args)


@pytest.fixture
def bench_script():
    """``load_script`` as a fixture: importing it from ``conftest`` resolves to whichever
    conftest module pytest loaded first when several test folders run together."""
    return load_script
