"""The sweep driver logs each trial's epochs into its MLflow run and closes the runs of stopped trials."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from distillcaps.config import load_config
from distillcaps.experiments.tracking import ExperimentTracker
from distillcaps.experiments.trial_runs import TrialRunLogger, epoch_metrics


@pytest.fixture()
def sweep(tmp_path: Path):
    cfg = load_config("tiny", [f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}"])
    tracker = ExperimentTracker(cfg)
    parent = tracker.start_parent("sweep", "sweep")
    return tracker, parent, TrialRunLogger(tracker, parent)


def trial_run(tracker: ExperimentTracker, parent: str, trial_id: str) -> str:
    """A trial's run as ``train()`` opens it: a child of the sweep, tagged with the trial id."""
    return tracker.start_child(parent, f"trial_{trial_id}", {"trial_id": trial_id})


def epoch_result(epoch: int, loss: float) -> dict:
    """What Tune hands the driver for one epoch: the worker's metrics plus Tune's own keys."""
    return {
        "epoch": epoch,
        "val_loss_student": loss,
        "val_loss_teacher": None,  # not computed for this mode: never logged
        "training_index": 0,
        "checkpoint_path": "/ckpt",
        "training_iteration": epoch,
        "time_total_s": 12.5,
        "pid": 4242,
        "done": False,
        "config": {"train.lr": 0.001},
    }


def test_each_epoch_lands_in_the_trials_run_at_its_step(sweep) -> None:
    tracker, parent, logger = sweep
    run_id = trial_run(tracker, parent, "t1")
    other = trial_run(tracker, parent, "t2")
    for epoch, loss in ((1, 4.2), (2, 4.1)):
        logger.on_trial_result(epoch, [], SimpleNamespace(trial_id="t1"), epoch_result(epoch, loss))
    # the trial's last report (its best metric, where its checkpoint is) has no epoch: not an epoch
    logger.on_trial_result(3, [], SimpleNamespace(trial_id="t1"), {"val_loss_student": 4.1, "pid": 1})

    history = tracker.client.get_metric_history(run_id, "val_loss_student")
    assert [(m.step, m.value) for m in history] == [(1, 4.2), (2, 4.1)]
    logged = tracker.client.get_run(run_id).data.metrics
    assert set(logged) == {"epoch", "val_loss_student"}
    assert tracker.client.get_run(other).data.metrics == {}


def test_a_result_before_the_trial_opened_its_run_is_skipped(sweep) -> None:
    tracker, parent, logger = sweep
    logger.on_trial_result(1, [], SimpleNamespace(trial_id="early"), epoch_result(1, 4.0))
    run_id = trial_run(tracker, parent, "early")  # found on the next result
    logger.on_trial_result(2, [], SimpleNamespace(trial_id="early"), epoch_result(2, 3.9))
    assert [m.step for m in tracker.client.get_metric_history(run_id, "val_loss_student")] == [2]


def test_stopped_and_failed_trials_runs_are_closed_finished_ones_kept(sweep) -> None:
    tracker, parent, logger = sweep
    stopped = trial_run(tracker, parent, "stopped")
    failed = trial_run(tracker, parent, "failed")
    finished = trial_run(tracker, parent, "finished")
    tracker.end(finished, ok=True)  # a trial that ran to its end closed its run itself

    logger.on_trial_complete(1, [], SimpleNamespace(trial_id="stopped"))  # ASHA stopped it
    logger.on_trial_error(1, [], SimpleNamespace(trial_id="failed"))
    logger.on_trial_complete(1, [], SimpleNamespace(trial_id="finished"))
    logger.on_trial_complete(1, [], SimpleNamespace(trial_id="never-opened-a-run"))

    runs = {"stopped": stopped, "failed": failed, "finished": finished}
    status = {name: tracker.client.get_run(run).info.status for name, run in runs.items()}
    assert status == {"stopped": "KILLED", "failed": "FAILED", "finished": "FINISHED"}


def test_epoch_metrics_are_the_workers_numbers_only() -> None:
    assert epoch_metrics(epoch_result(2, 4.1)) == {"epoch": 2, "val_loss_student": 4.1}
