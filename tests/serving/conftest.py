"""Fixtures for the serving tests: a stand-in model registry and a small local Ray."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from serving_helpers import DATASTORE, MODEL_NAME
from standin_backend import write_standin_checkpoint
from tiny_checkpoint import build_bases, write_rag_checkpoint, write_tiny_checkpoint

HERE = Path(__file__).resolve().parent  # the stand-in backend and helpers: on pythonpath (pyproject.toml)


@pytest.fixture(scope="session")
def checkpoint_bases(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(tiny LLM dir, tiny encoder dir): the frozen parts every real test checkpoint shares."""
    import torch

    torch.set_num_threads(1)
    return build_bases(tmp_path_factory.mktemp("bases"))


@pytest.fixture(scope="session")
def tiny_checkpoints(checkpoint_bases, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Checkpoint dirs (files only, no processes left running):

    v1, v2: real tiny DistillCaps checkpoints (same frozen bases, trainable parts from seeds 0 and 1);
    v3: the stand-in backend's checkpoint with a datastore, for the rag=true path.
    """
    root = tmp_path_factory.mktemp("checkpoints")
    llm_dir, encoder_dir = checkpoint_bases
    return {
        "v1": write_tiny_checkpoint(root / "ckpt-v1", llm_dir, encoder_dir, seed=0),
        "v2": write_tiny_checkpoint(root / "ckpt-v2", llm_dir, encoder_dir, seed=1),
        "v3": write_standin_checkpoint(root / "ckpt-v3", "v3", DATASTORE),
    }


@pytest.fixture(scope="session")
def rag_checkpoint(checkpoint_bases, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real tiny checkpoint whose config has a datastore (tiny-clap on a 24-clip synthetic set),
    with that datastore built: what ``retrieval: true`` deploys."""
    root = tmp_path_factory.mktemp("rag")
    return write_rag_checkpoint(root / "ckpt-rag", *checkpoint_bases, data_root=root)


@pytest.fixture(scope="module")
def model_registry(tiny_checkpoints: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """An MLflow sqlite store with versions 1, 2, 3 of distillcaps-student; champion -> 1."""
    from distillcaps.serving.model_store import register_checkpoint

    root = tmp_path_factory.mktemp("registry")
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    cwd = os.getcwd()
    os.chdir(root)  # MLflow puts a sqlite store's artifacts under ./mlruns
    try:
        for version in ("1", "2", "3"):
            alias = "champion" if version == "1" else None
            checkpoint = tiny_checkpoints[f"v{version}"]
            assert (
                register_checkpoint(checkpoint, name=MODEL_NAME, alias=alias, tracking_uri=tracking_uri)
                == version
            )
    finally:
        os.chdir(cwd)
    return {"tracking_uri": tracking_uri, **tiny_checkpoints}


@pytest.fixture(scope="session")
def local_ray(tmp_path_factory: pytest.TempPathFactory):
    """A 2-CPU Ray whose workers can import the stand-in backend; one per session (a start costs
    ~30 s on the loaded host), shut down at the end."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    cache = tmp_path_factory.mktemp("model-cache")  # where replicas download registry versions
    env_vars = {
        "PYTHONPATH": str(HERE),
        "DISTILLCAPS_MODEL_CACHE": str(cache),
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    from distillcaps.ray_runtime import ensure_ray

    ensure_ray(num_cpus=2, object_store_mb=500, env_vars=env_vars)
    os.environ["DISTILLCAPS_MODEL_CACHE"] = str(cache)
    yield ray
    ray.shutdown()
