"""MLflow layout of an experiment: one parent run per invocation, child runs under it (logging
itself goes through distillcaps.tracking.RunLogger, like every run's).

Runs are made through ``MlflowClient`` rather than the fluent ``mlflow.start_run`` stack, so the
parent never sits "active" in this process while ``distillcaps.training.train`` opens its own run
(which the fluent API would refuse without ``nested=True``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from distillcaps.config import Config
from distillcaps.tracking import RunLogger, experiment_id, tracking_uri
from distillcaps.tracking.runs import PARENT_RUN_TAG, mlflow_client

PARENT_TAG = PARENT_RUN_TAG  # what MLflow's UI nests children by
KIND_TAG = "distillcaps.kind"  # "experiment" (parent) | "row" | "trial" | ... (children)


class ExperimentTracker:
    """Creates and closes the parent and child runs of one invocation in one MLflow experiment."""

    def __init__(self, cfg: Config) -> None:
        self.uri = tracking_uri(cfg)
        self.client = mlflow_client(self.uri)
        self.experiment_id = experiment_id(cfg)  # created with artifacts beside the store

    @staticmethod
    def uri_of(cfg: Config) -> str:
        return tracking_uri(cfg)

    def start_parent(self, script: str, run_name: str, tags: Mapping[str, str] | None = None) -> str:
        run = self.client.create_run(
            self.experiment_id,
            run_name=run_name,
            tags={KIND_TAG: "experiment", "script": script, **(tags or {})},
        )
        return run.info.run_id

    def start_child(self, parent_run_id: str, run_name: str, tags: Mapping[str, Any]) -> str:
        run = self.client.create_run(
            self.experiment_id,
            run_name=run_name,
            tags={PARENT_TAG: parent_run_id, **{k: str(v) for k, v in tags.items()}},
        )
        return run.info.run_id

    def log_metrics(self, run_id: str, metrics: Mapping[str, float | None], prefix: str = "") -> None:
        RunLogger(self.uri, run_id).log_metrics({prefix + key: value for key, value in metrics.items()})

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        RunLogger(self.uri, run_id).log_params(params)

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        RunLogger(self.uri, run_id).log_artifact(path, artifact_path)

    def log_dict(self, run_id: str, data: Any, name: str) -> None:
        self.client.log_text(run_id, json.dumps(data, indent=2, default=str), name)

    def end(self, run_id: str, ok: bool) -> None:
        self.client.set_terminated(run_id, "FINISHED" if ok else "FAILED")

    def children(self, parent_run_id: str) -> list[Any]:
        return self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}'", max_results=5000
        )
