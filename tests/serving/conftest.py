"""Fixtures for the serving tests: a stand-in model registry and a small local Ray."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the stand-in backend and helpers live beside the tests
    sys.path.insert(0, str(HERE))

from serving_helpers import DATASTORE, MODEL_NAME  # noqa: E402
from standin_backend import write_standin_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def model_registry(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """An MLflow sqlite store with two stand-in versions of distillcaps-student; champion -> 1."""
    from distillcaps.serving.model_store import register_checkpoint

    root = tmp_path_factory.mktemp("registry")
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    cwd = os.getcwd()
    os.chdir(root)  # MLflow puts a sqlite store's artifacts under ./mlruns
    try:
        v1 = write_standin_checkpoint(root / "ckpt-v1", "v1")
        v2 = write_standin_checkpoint(root / "ckpt-v2", "v2", DATASTORE)
        assert register_checkpoint(v1, name=MODEL_NAME, alias="champion", tracking_uri=tracking_uri) == "1"
        assert register_checkpoint(v2, name=MODEL_NAME, alias=None, tracking_uri=tracking_uri) == "2"
    finally:
        os.chdir(cwd)
    return {"tracking_uri": tracking_uri, "cache": root / "cache", "v1": v1, "v2": v2}


@pytest.fixture(scope="module")
def local_ray(model_registry: dict):
    """A 2-CPU Ray whose workers can import the stand-in backend; shut down after the module."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    env_vars = {
        "PYTHONPATH": str(HERE),
        "DISTILLCAPS_MODEL_CACHE": str(model_registry["cache"]),
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    import psutil

    for attempt in range(2):  # a raylet can miss Ray's fixed 30 s start window on a busy 2-core box
        before = {p.pid for p in psutil.Process().children(recursive=True)}
        try:
            ray.init(
                num_cpus=2,
                object_store_memory=500 * 1024 * 1024,
                include_dashboard=False,
                runtime_env={"env_vars": env_vars},
            )
            break
        except Exception:
            ray.shutdown()
            for leftover in psutil.Process().children(recursive=True):  # what the failed start left
                if leftover.pid not in before:
                    leftover.kill()
            if attempt == 1:
                raise
    os.environ["DISTILLCAPS_MODEL_CACHE"] = str(model_registry["cache"])
    yield ray
    ray.shutdown()
