"""Tracking section of the config: where MLflow stores runs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrackingConfig:
    tracking_uri: str = ""  # empty -> $MLFLOW_TRACKING_URI, else sqlite:///<abs run_dir>/mlflow.db
    experiment: str = "distillcaps"
