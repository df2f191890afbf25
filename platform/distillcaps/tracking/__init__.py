"""distillcaps.tracking: MLflow store location, runs, and what every run records."""

from distillcaps.tracking.runs import (
    RunLogger,
    config_params,
    create_run,
    end_run,
    experiment_id,
    git_commit,
    log_config,
    reopen_run,
    run_tags,
    start_run,
    tracking_uri,
)

__all__ = [
    "RunLogger",
    "config_params",
    "create_run",
    "end_run",
    "experiment_id",
    "git_commit",
    "log_config",
    "reopen_run",
    "run_tags",
    "start_run",
    "tracking_uri",
]
