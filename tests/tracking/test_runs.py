"""MLflow tracking: store location, parent/child runs, params within MLflow's limits, metrics, artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest

from distillcaps.config import load_config
from distillcaps.tracking import (
    RunLogger,
    config_params,
    log_config,
    start_run,
    tracking_uri,
)


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    return load_config("tiny", ["run_dir=runs", "train.mode=distill", "seed=3"])


def test_default_store_is_sqlite_at_an_absolute_path_under_run_dir(cfg, tmp_path):
    assert tracking_uri(cfg) == f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"


def test_environment_and_config_override_the_store(cfg, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://head-node:5000")
    assert tracking_uri(cfg) == "http://head-node:5000"
    cfg.tracking.tracking_uri = "sqlite:////elsewhere/mlflow.db"
    assert tracking_uri(cfg) == "sqlite:////elsewhere/mlflow.db"


def test_params_respect_mlflow_value_limit(cfg):
    cfg.model.prompt.student = "x" * 7000
    params = config_params(cfg)
    assert len(params["model.prompt.student"]) == 6000
    assert params["model.prompt.student"].endswith("[7000 chars]")
    assert params["model.llm.lora_target_modules"].startswith('["q_proj", "k_proj", "v_proj"')
    assert params["train.mode"] == "distill"


def test_parent_and_child_runs_with_tags_params_metrics_artifacts(cfg, tmp_path):
    from mlflow import MlflowClient

    with start_run(cfg, "sweep") as parent:
        parent_id = parent.info.run_id
    experiment = MlflowClient(tracking_uri(cfg)).get_experiment(parent.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # the UI opens on runs
    with start_run(cfg, "trial-0", parent_run_id=parent_id, tags={"variant": "t=2"}) as child:
        child_id = child.info.run_id
    log_config(child_id, cfg)
    logger = RunLogger(tracking_uri(cfg), child_id)
    logger.log_metrics({"train_loss_auto": 2.0, "train_loss_dda": None}, step=0)
    logger.log_metrics({"train_loss_auto": 1.5}, step=1)
    logger.log_series("train_loss_by_step", [(10, 3.0), (20, 2.5), (25, 2.25)])
    note = tmp_path / "note.txt"
    note.write_text("hello")
    logger.log_artifact(note, "notes")
    logger.log_table({"caption": ["a"], "reference": ["b"]}, "samples.json")

    client = MlflowClient(tracking_uri(cfg))
    run = client.get_run(child_id)
    assert run.data.tags["mlflow.parentRunId"] == parent_id
    assert run.data.tags["variant"] == "t=2"
    assert {"mode", "dataset", "preset", "seed", "git_commit"} <= set(run.data.tags)
    assert run.data.tags["seed"] == "3" and run.data.tags["dataset"] == "synthetic-outdoor"
    assert run.data.params["train.mode"] == "distill"
    assert "train_loss_dda" not in run.data.metrics  # None means "not computed", never 0
    history = client.get_metric_history(child_id, "train_loss_auto")
    assert [(m.step, m.value) for m in history] == [(0, 2.0), (1, 1.5)]
    curve = client.get_metric_history(child_id, "train_loss_by_step")
    assert [(m.step, m.value) for m in curve] == [(10, 3.0), (20, 2.5), (25, 2.25)]
    artifacts = {a.path for a in client.list_artifacts(child_id)}
    assert {"config.json", "notes", "samples.json"} <= artifacts
    # Artifacts live beside the database, not in ./mlruns of the working directory.
    local = Path(client.download_artifacts(child_id, "notes/note.txt", str(tmp_path / "dl")))
    assert local.read_text() == "hello"
    assert (tmp_path / "runs" / "mlartifacts").is_dir() and not (tmp_path / "mlruns").exists()


def test_an_interrupted_run_ends_killed_and_a_failed_one_failed(cfg):
    from mlflow import MlflowClient

    ids = {}
    for name, error in (("interrupted", KeyboardInterrupt), ("failed", RuntimeError)):
        with pytest.raises(error), start_run(cfg, name) as run:
            ids[name] = run.info.run_id
            raise error()
    client = MlflowClient(tracking_uri(cfg))
    assert client.get_run(ids["interrupted"]).info.status == "KILLED"
    assert client.get_run(ids["failed"]).info.status == "FAILED"


def test_a_run_does_not_send_the_next_config_to_its_store(cfg, tmp_path):
    """MLflow 3's set_tracking_uri exports $MLFLOW_TRACKING_URI, which tracking_uri() honours: a
    second config (another run_dir) in the same process must still get its own store."""
    import os

    from mlflow import MlflowClient

    other = load_config("tiny", ["run_dir=other-runs"])
    with start_run(cfg, "first") as first:
        first_id = first.info.run_id
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert tracking_uri(other) == f"sqlite:///{tmp_path / 'other-runs' / 'mlflow.db'}"
    with start_run(other, "second") as second:
        second_id = second.info.run_id
    assert MlflowClient(tracking_uri(cfg)).get_run(first_id).info.run_name == "first"
    assert MlflowClient(tracking_uri(other)).get_run(second_id).info.run_name == "second"
