"""A sweep trial that Tune stops mid-fit gives its Train worker's CPUs back to the next trials."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import ray

from distillcaps.config import load_config
from distillcaps.ray_runtime import ensure_ray


def stopped_fit(storage: str):
    """A Tune trial that fits a TorchTrainer (as the sweep's trials do) which never ends by itself.
    Nested functions: Ray pickles them by value (workers cannot import this test module)."""

    def reporting_forever(config: dict) -> None:
        import ray.train

        for step in range(10_000):
            ray.train.report({"step": step})
            time.sleep(0.2)

    def trial(config: dict) -> None:
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer
        from ray.tune.integration.ray_train import TuneReportCallback

        TorchTrainer(
            reporting_forever,
            scaling_config=ScalingConfig(num_workers=1, resources_per_worker={"CPU": 0.5}),
            run_config=RunConfig(storage_path=storage, callbacks=[TuneReportCallback()]),
        ).fit()

    return trial


@pytest.fixture()
def sweep_ray(tmp_path: Path):
    if ray.is_initialized():  # an earlier module's instance would be used as it is
        ray.shutdown()
    ensure_ray(
        object_store_mb=load_config("tiny").train.object_store_mb, include_dashboard=True
    )  # as sweep.py
    yield
    ray.shutdown()


def test_a_stopped_trials_worker_placement_group_is_removed(sweep_ray, tmp_path: Path) -> None:
    from ray import tune

    total = ray.cluster_resources()["CPU"]
    tuner = tune.Tuner(
        tune.with_resources(stopped_fit(str(tmp_path / "train")), {"cpu": 0.25}),
        tune_config=tune.TuneConfig(num_samples=1),
        # Tune stops the trial after its third report, as ASHA stops a weak one, by ending its process
        run_config=tune.RunConfig(storage_path=str(tmp_path / "tune"), stop={"step": 2}),
    )
    assert tuner.fit()[0].metrics["step"] == 2
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and ray.available_resources().get("CPU", 0.0) < total:
        time.sleep(1)
    held = [pg["bundles"] for pg in ray.util.placement_group_table().values() if pg["state"] == "CREATED"]
    assert held == [], f"placement groups still held after the trial stopped: {held}"
    assert ray.available_resources().get("CPU", 0.0) == total
