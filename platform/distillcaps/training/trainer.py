"""train(cfg): one training, a group of one on the one training path (distillcaps.training.group).

    result = train(load_config("tiny", ["train.epochs=3"]))
    result.run_id, result.output_dir, result.best_checkpoint, result.history

Output folder ``<run_dir>/train/<run name>-<time>/``:
    ray/checkpoint_*/            Ray Train's checkpoints (model + optimizer + scheduler + train state)
    checkpoints/best, last       model checkpoints (DistillCapsModel.load_checkpoint) of the best
                                 epoch (by train.checkpoint_metric, lower is better) and the last one
    config.yaml, run.json        the resolved config; the MLflow run id and tracking URI
    eval/, eval-rag/             final evaluation of the best checkpoint without / with retrieval
    history.json                 per-epoch metrics

Before Ray Train starts, the driver prepares everything that is computed once and cached
(distillcaps.training.prepare); workers then only read caches. ``resume_dir`` continues a stopped
run in its own folder and MLflow run, from its newest whole checkpoint.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml

from distillcaps.config import Config, ConfigError, from_dict
from distillcaps.training.checkpoints import RAY_DIR
from distillcaps.training.group import Member, TrainResult, train_members
from distillcaps.training.prepare import checked_config


def train(
    cfg: Config,
    *,
    run_name: str | None = None,
    parent_run_id: str | None = None,
    tags: dict[str, Any] | None = None,
    resume_dir: Path | None = None,
    callbacks: list | None = None,
    worker_logs_metrics: bool = True,
) -> TrainResult:
    """Train with Ray Train and log to MLflow; ``resume_dir`` continues a stopped run in its folder.
    Raises what stopped the training (the MLflow run then ends FAILED, or KILLED on Ctrl-C).

    ``callbacks`` go to the TorchTrainer's RunConfig (a Tune trial passes TuneReportCallback).
    ``worker_logs_metrics=False``: the Train worker does not log each epoch's metrics into the run;
    the caller does, from the reports (a sweep's driver: distillcaps.experiments.trial_runs).
    """
    cfg = checked_config(cfg)  # absolute paths: Ray workers need not share our working directory
    if resume_dir is not None:
        output_dir = Path(resume_dir).resolve()
        member = Member(cfg, output_dir.name, output_dir, tags or {}, check_resumable(output_dir, cfg))
    else:
        name = run_name or f"{cfg.train.mode}-{cfg.preset}"
        output_dir = (Path(cfg.run_dir) / "train" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
        member = Member(cfg, run_name or output_dir.name, output_dir, tags or {})
    outcome = train_members(
        [member], output_dir, parent_run_id=parent_run_id, callbacks=callbacks,
        worker_logs_metrics=worker_logs_metrics,
    )  # fmt: skip
    result = outcome.results[0]
    if result is None:
        raise outcome.errors.get(0) or RuntimeError(
            f"training reported no checkpoint of its last epoch (see {output_dir / RAY_DIR})"
        )
    return result


def check_resumable(run_dir: Path, cfg: Config) -> str:
    """The MLflow run id of a run folder that can be resumed with cfg, or a clear error."""
    from distillcaps.model.checkpoint import changed_model_keys  # lazy: imports torch

    if not (run_dir / "run.json").is_file() or not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{run_dir} is not a training output folder (no run.json / config.yaml)")
    saved = from_dict(Config, yaml.safe_load((run_dir / "config.yaml").read_text()))
    changed = changed_model_keys(saved, cfg)
    if changed:
        raise ConfigError(
            f"cannot resume {run_dir}: its checkpoints were trained with a different model config "
            f"({', '.join(changed)})"
        )
    return json.loads((run_dir / "run.json").read_text())["run_id"]
