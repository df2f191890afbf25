"""Training that survives faults, through Ray, on a tiny set: a Train worker killed mid-epoch, a Ray
node removed mid-epoch and replaced, a crashed run resumed with ``distillcaps train --resume`` past a
damaged newest checkpoint, a NaN loss at a given step.

Every run takes a step checkpoint every 3 optimizer steps (train.checkpoint_every_steps). The runs
that must end where an uninterrupted one ends train one worker, whose data order Ray Data keeps
(preserve_order) and whose local shuffle is seeded, and are compared with one uninterrupted
reference run (module fixture): same optimizer step count, same final weights.

The module's runs share one data root, so the synthetic set, tiny CLAP, tiny LLM, retrieval and
feature caches are built once.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_train_ray import SLOW_TIMEOUT_S, SMALL

from distillcaps.config import load_config
from distillcaps.model.checkpoint import WEIGHTS_NAME
from distillcaps.training.checkpoints import latest_checkpoint, training_checkpoints
from distillcaps.training.fault_injection import KILL_ENV, NAN_ENV
from distillcaps.training.train_state import MODEL_DIR, read_train_state

# 16 clips x 5 captions = 80 rows -> one worker, batches of 8: 10 optimizer steps per epoch.
STEPS_PER_EPOCH = 10
EVERY = 3  # step checkpoints at global steps 3, 6, 9 | 12, 15, 18 (none at an epoch's last step)
FAULTS = [
    "train.num_workers=1",
    "train.cpus_per_worker=1",
    "train.epochs=2",
    "train.evaluate_after=false",
    "train.context_diagnostic_captions=0",
    f"train.checkpoint_every_steps={EVERY}",
]
# A fault test is one or two fits of a tiny model: 35-60 s each on the shared 2-core host with
# other work running. The two-node test, with its cluster's start-up and a restart on a fresh node,
# took 3 to 7 minutes there.
TIMEOUT_S = 600
CLUSTER_TIMEOUT_S = 900


def fault_config(tmp_path: Path, data_root: Path, *overrides: str):
    return load_config(
        "tiny",
        [
            f"run_dir={tmp_path / 'runs'}",
            # explicit: a train() earlier in the process leaves $MLFLOW_TRACKING_URI set
            f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
            f"data.data_root={data_root}",
            *SMALL,
            *FAULTS,
            *overrides,
        ],
    )


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    from distillcaps.ray_runtime import ensure_ray

    # The fault variables reach the workers: train() forwards DISTILLCAPS_* through the Train
    # workers' runtime_env, so one Ray instance serves every test.
    ensure_ray(object_store_mb=512)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def shared_data(tmp_path_factory):
    return tmp_path_factory.mktemp("fault-data")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, ray_cluster, shared_data):
    """The uninterrupted run every resumed one must end as."""
    from distillcaps.training.trainer import train

    result = train(fault_config(tmp_path_factory.mktemp("reference"), shared_data), run_name="reference")
    assert [h["global_step"] for h in result.history] == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
    return result


def final_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / WEIGHTS_NAME))


def assert_same_weights(model_dir: Path, reference_dir: Path) -> None:
    got, want = final_weights(model_dir), final_weights(reference_dir)
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.timeout(TIMEOUT_S)
def test_a_worker_killed_mid_epoch_resumes_at_its_last_step_checkpoint(
    tmp_path, ray_cluster, shared_data, reference, monkeypatch
):
    from mlflow import MlflowClient

    from distillcaps.tracking import tracking_uri
    from distillcaps.training.trainer import train

    marker = tmp_path / "killed"
    # The only worker kills itself (SIGKILL) after step 5 of epoch 2 (global step 15, before that
    # step's checkpoint), once; Ray restarts the worker group (train.max_failures=1), which continues
    # at the step checkpoint of global step 12.
    monkeypatch.setenv(KILL_ENV, f"0:1:4:{marker}")
    cfg = fault_config(tmp_path, shared_data)
    result = train(cfg, run_name="killed")

    assert marker.read_text().startswith("killed rank 0 at epoch 1 step 4")
    assert [h["global_step"] for h in result.history] == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
    final = read_train_state(latest_checkpoint(result.output_dir))
    assert final.resumed_at == [12]  # 3 steps redone (the cadence), not the epoch's 5
    assert_same_weights(result.last_checkpoint, reference.last_checkpoint)
    # the epoch's loss covers its 10 steps (its sums up to step 12 came with the checkpoint)
    assert result.history[1]["train_loss"] == pytest.approx(reference.history[1]["train_loss"], rel=1e-4)
    # epoch 1 was trained and logged once, before the kill
    logged = MlflowClient(tracking_uri(cfg)).get_metric_history(result.run_id, "train_loss")
    assert [m.step for m in logged] == [1, 2]


@pytest.mark.timeout(TIMEOUT_S)
def test_a_crashed_run_resumes_with_the_cli_past_a_damaged_newest_checkpoint(
    tmp_path, ray_cluster, shared_data, reference, monkeypatch, capsys
):
    from mlflow import MlflowClient
    from ray.train import TrainingFailedError

    from distillcaps.cli import main
    from distillcaps.tracking import tracking_uri
    from distillcaps.training.trainer import train

    # The run dies after global step 17 and may not restart: step checkpoints 12 and 15 were taken.
    monkeypatch.setenv(KILL_ENV, f"0:1:6:{tmp_path / 'killed'}")
    cfg = fault_config(tmp_path, shared_data, "train.max_failures=0")
    with pytest.raises(TrainingFailedError):
        train(cfg, run_name="crashed")
    monkeypatch.delenv(KILL_ENV)
    (run_dir,) = (tmp_path / "runs" / "train").iterdir()
    run_id = json.loads((run_dir / "run.json").read_text())["run_id"]

    # The newest checkpoint is cut off, as a copy into storage stopped by a crash would be.
    ray_dir = run_dir / "ray"
    newest = latest_checkpoint(run_dir)
    assert read_train_state(newest).global_step == 15
    weights = newest / MODEL_DIR / WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[:-8])
    # the one to fall back to: the newest left (12, or epoch 1's end if Ray had already replaced 12)
    fallback = max(state.global_step for _, state in training_checkpoints(ray_dir))
    assert fallback in (STEPS_PER_EPOCH, 12)
    capsys.readouterr()

    assert main(["train", "--resume", str(run_dir)]) == 0
    assert f"skipping the damaged checkpoint {newest}" in capsys.readouterr().out
    history = json.loads((run_dir / "history.json").read_text())
    assert [h["global_step"] for h in history] == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
    assert read_train_state(latest_checkpoint(run_dir)).resumed_at == [fallback]
    assert_same_weights(run_dir / "checkpoints" / "last", reference.last_checkpoint)
    client = MlflowClient(tracking_uri(cfg))
    assert [m.step for m in client.get_metric_history(run_id, "train_loss")] == [1, 2]  # the same run
    assert client.get_run(run_id).info.status == "FINISHED"


@pytest.mark.timeout(TIMEOUT_S)
def test_a_nan_loss_stops_the_run_naming_the_step_its_clips_and_the_last_step_checkpoint(
    tmp_path, ray_cluster, shared_data, monkeypatch
):
    from ray.train import TrainingFailedError

    from distillcaps.training.trainer import train

    monkeypatch.setenv(NAN_ENV, "17")  # the loss of global step 17 (epoch 2, step 7) is NaN
    cfg = fault_config(tmp_path, shared_data, "train.max_failures=0")
    with pytest.raises(TrainingFailedError) as failed:
        train(cfg, run_name="nan")

    message = str(failed.value)
    assert "NonFiniteLoss" in message and "the loss is nan at global step 17 (epoch 2)" in message
    clips = message.split("the batch's clips: ", 1)[1].split(". Last good checkpoint", 1)[0].split(", ")
    assert len(clips) == 8 and all(clip.endswith(".wav") for clip in clips)  # one batch of 8 rows
    (run_dir,) = (tmp_path / "runs" / "train").iterdir()
    last = latest_checkpoint(run_dir)
    assert read_train_state(last).global_step == 15
    label = f"the step checkpoint at global step 15 (epoch 2, step 5) ({last})"
    assert f"Last good checkpoint: {label}" in message


@pytest.mark.slow
@pytest.mark.timeout(SLOW_TIMEOUT_S)
def test_a_finished_run_continues_with_more_epochs(tmp_path, ray_cluster, shared_data):
    from mlflow import MlflowClient

    from distillcaps.cli import main
    from distillcaps.tracking import tracking_uri
    from distillcaps.training.trainer import train

    cfg = fault_config(tmp_path, shared_data)
    run_dir = train(cfg, run_name="finished").output_dir
    # `distillcaps train --resume RUN_DIR key=value`: the run's own config.yaml, plus the override
    assert main(["train", "--resume", str(run_dir), "train.epochs=3"]) == 0
    history = json.loads((run_dir / "history.json").read_text())
    assert [h["global_step"] for h in history] == [STEPS_PER_EPOCH * e for e in (1, 2, 3)]
    run_id = json.loads((run_dir / "run.json").read_text())["run_id"]
    logged = MlflowClient(tracking_uri(cfg)).get_metric_history(run_id, "train_loss")
    assert [m.step for m in logged] == [1, 2, 3]


RAY_STOCK_HEALTH_CHECKS = {
    "RAY_health_check_period_ms": "3000",
    "RAY_health_check_timeout_ms": "10000",
    "RAY_health_check_failure_threshold": "5",
}


@pytest.fixture
def two_node_cluster(monkeypatch):
    """A head (no CPUs: the driver, Train's controller, Ray Data's coordinators) and two 1-CPU
    nodes, one Train worker each; this process connected to it (any other Ray instance shut first)."""
    import ray
    from ray.cluster_utils import Cluster

    from distillcaps.ray_runtime import ensure_ray

    ray.shutdown()
    # Ray's own health checks (a node is dead after 5 missed 3 s checks), not the patient ones that
    # an earlier local start in this process set (process_env.RAY_PATIENT_START: 30 missed 10 s
    # checks), which would leave the removed node "alive" for five minutes before Train restarts.
    for name, value in RAY_STOCK_HEALTH_CHECKS.items():
        monkeypatch.setenv(name, value)
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "include_dashboard": False, "object_store_memory": 256 * 1024**2},
        # no exit hooks: they set a SIGTERM handler, which a node added from the test's thread cannot
        shutdown_at_exit=False,
    )
    for _ in range(2):
        cluster.add_node(num_cpus=1, object_store_memory=150 * 1024**2)
    cluster.wait_for_nodes()
    monkeypatch.setenv("RAY_ADDRESS", cluster.address)
    ensure_ray()  # the job's runtime_env forwards this process's DISTILLCAPS_* and HF variables
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def replace_node_when_held(cluster, marker: Path, replaced: list, done) -> None:
    """Wait for the held worker's marker (its node id), remove that node, add a fresh 1-CPU one."""
    while not marker.is_file() or not marker.read_text():
        if done.wait(0.2):  # the training ended without holding: nothing to do
            return
    node_id = marker.read_text().strip()
    (node,) = [n for n in cluster.worker_nodes if n.node_id == node_id]
    cluster.remove_node(node, allow_graceful=False)
    replaced.append(cluster.add_node(num_cpus=1, object_store_memory=150 * 1024**2))


@pytest.mark.timeout(CLUSTER_TIMEOUT_S)
def test_a_node_removed_mid_epoch_and_replaced_the_run_finishes_from_its_last_checkpoint(
    tmp_path, shared_data, two_node_cluster, monkeypatch
):
    import threading

    from mlflow import MlflowClient

    from distillcaps.tracking import tracking_uri
    from distillcaps.training.fault_injection import HOLD_ENV
    from distillcaps.training.trainer import train

    marker = tmp_path / "held"
    # Rank 1 stops after step 5 of epoch 2 (global step 15, before its checkpoint) and waits while the
    # test removes its node; rank 0 waits for it in DDP's all-reduce. Ray restarts the group on the
    # remaining node and the new one, from the step checkpoint of global step 12.
    monkeypatch.setenv(HOLD_ENV, f"1:1:4:{marker}")
    replaced: list = []
    done = threading.Event()
    thread = threading.Thread(
        target=replace_node_when_held, args=(two_node_cluster, marker, replaced, done), daemon=True
    )
    thread.start()
    # Two workers (batches of 4 rows each): 40 rows per worker, 10 steps per epoch as with one.
    cfg = fault_config(tmp_path, shared_data, "train.num_workers=2", "train.data_stage_cpus=0")
    try:
        result = train(cfg, run_name="node-lost")
    finally:
        done.set()
        thread.join()

    assert replaced, "the held worker's node was never removed"
    assert [h["global_step"] for h in result.history] == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
    assert read_train_state(latest_checkpoint(result.output_dir)).resumed_at == [12]
    client = MlflowClient(tracking_uri(cfg))
    assert client.get_run(result.run_id).info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(result.run_id, "train_loss")] == [1, 2]
