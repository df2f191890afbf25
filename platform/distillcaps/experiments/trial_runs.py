"""The sweep driver's Tune callback: each trial's epochs go into the trial's MLflow run, and the run
of a trial that Tune stopped or that failed is closed.

    tune.RunConfig(callbacks=[TrialRunLogger(tracker, parent_run_id)])

Why the driver and not the Train worker (which logs epochs itself outside sweeps):
- A worker's first MLflow call costs 6-8 CPU-seconds (importing MLflow and opening the SQL store,
  measured in fresh processes that had imported torch and transformers already): once per sweep
  trial, on a 2-core machine whose cores the trials already fill. The driver has paid it once.
- ASHA stops a weak trial by ending its process, so the trial's own ``train()`` never closes its
  run, and nothing else would. Here it is closed as KILLED.

A trial's run is found by its tags (``trial_id`` under the sweep's parent run), which the trial sets
when it opens the run, before its first epoch is reported.
"""

from __future__ import annotations

from typing import Any

from ray.tune import Callback

from distillcaps.experiments.tracking import ExperimentTracker
from distillcaps.tracking.runs import PARENT_RUN_TAG, RunLogger
from distillcaps.training.checkpoints import SCORE_KEY, TRAINING_KEY

# What a trial reports besides its epoch metrics: Tune's own bookkeeping and ours (the training's
# index in its group, and Ray's ranking of checkpoints).
NOT_EPOCH_METRICS = {TRAINING_KEY, SCORE_KEY, "checkpoint_path", "trial_id", "done"}


class TrialRunLogger(Callback):
    """Tune callback: epochs into each trial's run; runs of stopped or failed trials closed."""

    def __init__(self, tracker: ExperimentTracker, parent_run_id: str) -> None:
        self.tracker = tracker
        self.parent_run_id = parent_run_id
        self.run_ids: dict[str, str] = {}  # Tune trial id -> MLflow run id

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        epoch = result.get("epoch")
        if epoch is None:  # the trial's last report: its best metric and where its checkpoint is
            return
        run_id = self.run_of(trial.trial_id)
        if run_id is not None:  # None: the trial has not opened its run yet
            RunLogger(self.tracker.uri, run_id).log_metrics(epoch_metrics(result), step=int(epoch))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.close_if_running(trial.trial_id, "KILLED")  # finished trials closed theirs themselves

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.close_if_running(trial.trial_id, "FAILED")

    def run_of(self, trial_id: str) -> str | None:
        if trial_id not in self.run_ids:
            wanted = f"tags.trial_id = '{trial_id}' and tags.`{PARENT_RUN_TAG}` = '{self.parent_run_id}'"
            found = self.tracker.client.search_runs(
                [self.tracker.experiment_id], filter_string=wanted, max_results=1
            )
            if not found:
                return None
            self.run_ids[trial_id] = found[0].info.run_id
        return self.run_ids[trial_id]

    def close_if_running(self, trial_id: str, status: str) -> None:
        run_id = self.run_of(trial_id)
        if run_id is not None and self.tracker.client.get_run(run_id).info.status == "RUNNING":
            self.tracker.client.set_terminated(run_id, status)


def epoch_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The numbers a trial's Train worker reported for one epoch, without Tune's own keys."""
    from ray.tune.result import AUTO_RESULT_KEYS

    return {
        key: value
        for key, value in result.items()
        if key not in AUTO_RESULT_KEYS
        and key not in NOT_EPOCH_METRICS
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
    }
