"""One Ray Train fit: a ``TorchTrainer`` whose worker group trains a list of trainings in order.

    trainings = [loop_training(cfg, prepared, run_id) for cfg, run_id in members]
    fit(cfgs[0], prepared, storage_dir, trainings, uri, resume=latest_checkpoint(storage_dir))

Ray keeps its checkpoints in ``<storage_dir>/ray/`` (``distillcaps.training.checkpoints``). The
worker loop is ``distillcaps.training.loop.train_loop_per_worker``; the datasets are the prepared
ones (``distillcaps.training.prepare``), passed as ``datasets=`` so that Ray Train splits them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distillcaps.config import Config
from distillcaps.ray_runtime import forwarded_env
from distillcaps.training.checkpoints import RAY_DIR, SCORE_KEY
from distillcaps.training.prepare import PreparedData


def loop_training(cfg: Config, prepared: PreparedData, run_id: str | None) -> dict[str, Any]:
    """One entry of the worker loop's "trainings" list; run_id None: the worker logs no metrics."""
    from distillcaps.training.loop import steps_per_epoch  # lazy: imports torch

    return {
        "cfg": cfg.to_dict(),
        "steps_per_epoch": steps_per_epoch(prepared.num_train_rows, cfg),
        "run_id": run_id,
        "val_contexts": prepared.val_contexts,
    }


def fit(
    cfg: Config,
    prepared: PreparedData,
    storage_dir: Path,
    trainings: list[dict[str, Any]],
    uri: str,
    resume: Path | None = None,
    callbacks: list | None = None,
):
    """One TorchTrainer run that trains ``trainings`` one after another from ``resume`` (a checkpoint
    folder, or None); checkpoints in storage_dir/ray. cfg gives the run's scaling and failure
    settings (a group's members share them). -> Ray's Result; raises when the fit fails for good."""
    from ray.train import DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from distillcaps.training.loop import train_loop_per_worker  # lazy: imports torch

    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "trainings": trainings,
            "grid": list(prepared.grid) if prepared.grid else None,
            "tracking_uri": uri,
            "resume_dir": str(resume) if resume else None,
            "ray_dir": str(storage_dir / RAY_DIR),
        },
        scaling_config=ScalingConfig(
            num_workers=cfg.train.num_workers,
            use_gpu=cfg.train.use_gpu,
            resources_per_worker={"CPU": cfg.train.cpus_per_worker},
        ),
        run_config=RunConfig(
            name=RAY_DIR,
            storage_path=str(storage_dir),
            failure_config=FailureConfig(max_failures=cfg.train.max_failures),
            checkpoint_config=checkpoint_config(len(trainings)),
            worker_runtime_env={"env_vars": forwarded_env()},
            callbacks=callbacks,
        ),
        datasets=prepared.datasets,
        dataset_config=DataConfig(
            datasets_to_split=datasets_to_split(cfg.train.num_workers),
            execution_options={"train": ordered_ingest_options()},
        ),
    )
    return trainer.fit()


def keeps_every_checkpoint(count: int) -> bool:
    """Whether a fit of ``count`` trainings keeps all its checkpoints (pruned after the fit, per
    training: ``distillcaps.training.checkpoints.prune_checkpoints``): with several, Ray would rank
    one model's checkpoints against another's."""
    return count > 1


def checkpoint_config(count: int):
    """Ray's checkpoint keeping for a fit of ``count`` trainings."""
    from ray.train import CheckpointConfig

    if keeps_every_checkpoint(count):
        return CheckpointConfig(num_to_keep=None)
    # One training: keep the best by the score; Ray always keeps the latest too. The score is the
    # epoch's checkpoint_metric, checkpoints.UNSCORED for a step checkpoint (never the best), so that a
    # step checkpoint stays only while it is the latest, until the next one is complete.
    return CheckpointConfig(num_to_keep=1, checkpoint_score_attribute=SCORE_KEY, checkpoint_score_order="min")


def ordered_ingest_options():
    """Ray Data's ingest options with ``preserve_order``: the training rows reach each worker in the
    same order in every run (and its split across workers is the same), which a resume at a step
    needs to skip exactly the batches already trained on (the data stages run one task at a time,
    distillcaps.training.data_pipeline.map_stage, so little concurrency is given up)."""
    from ray.train import DataConfig

    options = DataConfig.default_ingest_options()
    options.preserve_order = True
    return options


def datasets_to_split(num_workers: int) -> str | list[str]:
    """Split every dataset across several workers; none for one. A split dataset gets a split
    coordinator, one more actor process per dataset (~6 CPU-seconds each to start on 2 cores),
    which for a single worker splits nothing: its pass then runs in the worker itself."""
    return "all" if num_workers > 1 else []
