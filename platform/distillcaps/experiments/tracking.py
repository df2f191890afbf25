"""MLflow layout of an experiment: one parent run per invocation, child runs under it.

Runs are made through ``MlflowClient`` rather than the fluent ``mlflow.start_run`` stack, so the
parent never sits "active" in this process while ``distillcaps.training.train`` opens its own run
(which the fluent API would refuse without ``nested=True``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from distillcaps.config import Config
from distillcaps.tracking import experiment_id, tracking_uri
from distillcaps.tracking.runs import PARENT_RUN_TAG

PARENT_TAG = PARENT_RUN_TAG  # what MLflow's UI nests children by
BATCH = 100  # MLflow's per-request limit for params
KIND_TAG = "distillcaps.kind"  # "experiment" (parent) | "row" | "trial" | ... (children)


class ExperimentTracker:
    """Creates and closes the parent and child runs of one invocation in one MLflow experiment."""

    def __init__(self, cfg: Config) -> None:
        self.uri = tracking_uri(cfg)
        self.client = MlflowClient(tracking_uri=self.uri)
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
        now = int(time.time() * 1000)
        batch = [
            Metric(_safe_key(prefix + key), float(value), now, 0)
            for key, value in metrics.items()
            if value is not None
        ]
        for start in range(0, len(batch), BATCH):  # one transaction per batch, not per metric
            self.client.log_batch(run_id, metrics=batch[start : start + BATCH])

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        batch = [Param(_safe_key(key), str(value)[:6000]) for key, value in params.items()]
        for start in range(0, len(batch), BATCH):
            self.client.log_batch(run_id, params=batch[start : start + BATCH])

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path)

    def log_dict(self, run_id: str, data: Any, name: str) -> None:
        self.client.log_text(run_id, json.dumps(data, indent=2, default=str), name)

    def end(self, run_id: str, ok: bool) -> None:
        self.client.set_terminated(run_id, "FINISHED" if ok else "FAILED")

    def children(self, parent_run_id: str) -> list[Any]:
        return self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}'", max_results=5000
        )


def _safe_key(key: str) -> str:
    # MLflow keys allow alphanumerics, _ - . space / : ; other characters become _
    return "".join(c if c.isalnum() or c in "_-. /:" else "_" for c in key)
