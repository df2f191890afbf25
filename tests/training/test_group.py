"""distillcaps.training.group: several trainings in one Ray Train worker group.

Without Ray: which configs may share a group, and how each member's checkpoints are picked and
pruned from the group's Ray folder. Through Ray: a group of two trainings gives each member what
train() gives it (its own folder, MLflow run, checkpoints) and the same model as training it alone;
a worker killed in the second member continues that member, not the group from the start (slow).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_train_ray import SLOW_TIMEOUT_S, SMALL

from distillcaps.config import ConfigError, load_config
from distillcaps.training.checkpoints import pick_checkpoints, prune_checkpoints
from distillcaps.training.group import check_members, group_key
from distillcaps.training.train_state import STATE_FILE, mark_complete

# One worker: Ray Data's split across workers is not guaranteed to hand out rows in the same order
# in two runs, and the comparison with a training alone needs the same data order.
ONE_WORKER = ["train.num_workers=1", "train.cpus_per_worker=1"]


def test_group_key_ignores_the_objective_and_seed_but_not_the_data() -> None:
    base = load_config("tiny")
    same = [
        load_config("tiny", ["train.mode=baseline", "seed=3", "train.lr=0.01", "model.llm.lora_r=4"]),
        load_config("tiny", ["model.adapter.variant=none", "train.epochs=2", "train.temperature=2.0"]),
    ]
    assert all(group_key(cfg) == group_key(base) for cfg in same)
    other_domain = load_config("tiny", ["data.synth.domain=indoor"])
    assert group_key(other_domain) != group_key(base)
    with pytest.raises(ConfigError, match=r"differ in data.*train these separately"):
        check_members([base, other_domain])
    with pytest.raises(ConfigError, match="train.batch_size"):
        check_members([base, load_config("tiny", ["train.batch_size=8"])])


def fake_checkpoint(ray_dir: Path, name: str, training: int, epoch: int, val: float) -> Path:
    folder = ray_dir / f"checkpoint_{name}"
    folder.mkdir(parents=True)
    history = [{"epoch": e, "val_loss_student": val if e == epoch else 9.0} for e in range(1, epoch + 1)]
    state = {"training": training, "epoch": epoch, "global_step": 10 * epoch, "history": history}
    (folder / "model").mkdir()  # whole weights: a damaged checkpoint would be skipped
    save_file({"epoch": torch.tensor([float(epoch)])}, str(folder / "model" / "trainable.safetensors"))
    (folder / STATE_FILE).write_text(json.dumps(state))
    mark_complete(folder)
    return folder


def test_each_member_gets_its_own_best_and_last_and_the_rest_is_pruned(tmp_path: Path) -> None:
    ray_dir = tmp_path / "ray"
    # member 0: epoch 2 is best, epoch 3 the last; member 1 (lower losses) finished 1 of 3 epochs
    a1 = fake_checkpoint(ray_dir, "01", training=0, epoch=1, val=2.0)
    a2 = fake_checkpoint(ray_dir, "02", training=0, epoch=2, val=1.0)
    a3 = fake_checkpoint(ray_dir, "03", training=0, epoch=3, val=1.5)
    b1 = fake_checkpoint(ray_dir, "04", training=1, epoch=1, val=0.1)
    best, last, state = pick_checkpoints(ray_dir, "val_loss_student", 0)
    assert (best, last, state.epoch) == (a2, a3, 3)  # member 1's lower loss does not count for member 0
    assert pick_checkpoints(ray_dir, "val_loss_student", 1)[:2] == (b1, b1)
    assert pick_checkpoints(ray_dir, "val_loss_student", 2) is None

    prune_checkpoints(ray_dir, keep={a2, a3})  # member 0 finished; member 1 did not
    assert sorted(p.name for p in ray_dir.iterdir()) == [a2.name, a3.name, b1.name]
    assert not a1.exists()


def small_group_configs(tmp_path: Path, data_root: Path, *modes: str, extra=()) -> list:
    return [
        load_config(
            "tiny",
            [
                f"run_dir={tmp_path / 'runs'}",
                # explicit: a train() earlier in the process leaves $MLFLOW_TRACKING_URI set
                # (mlflow.set_tracking_uri exports it), which the default store would follow
                f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
                f"data.data_root={data_root}",
                *SMALL,
                *ONE_WORKER,
                "train.epochs=2",
                "train.evaluate_after=false",
                f"train.mode={mode}",
                *extra,
            ],
        )
        for mode in modes
    ]


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    from distillcaps.ray_runtime import ensure_ray

    ensure_ray(object_store_mb=512)
    yield
    ray.shutdown()


@pytest.mark.timeout(SLOW_TIMEOUT_S)
def test_a_group_of_two_gives_each_member_its_run_and_the_model_it_gets_alone(
    tmp_path: Path, ray_cluster
) -> None:
    from mlflow import MlflowClient

    from distillcaps.tracking import tracking_uri
    from distillcaps.training.group import train_group
    from distillcaps.training.trainer import train

    data_root = tmp_path / "data"
    cfgs = small_group_configs(tmp_path, data_root, "baseline", "distill")
    outcome = train_group(cfgs, run_names=["g/baseline", "g/distill"], tags=[{"k": "a"}, {"k": "b"}])

    assert outcome.failed == {} and outcome.not_started == []
    client = MlflowClient(tracking_uri(cfgs[0]))
    for result, mode in zip(outcome.results, ("baseline", "distill")):
        assert [h["epoch"] for h in result.history] == [1, 2]
        assert (result.best_checkpoint / "trainable.safetensors").is_file()
        assert json.loads((result.output_dir / "history.json").read_text()) == result.history
        run = client.get_run(result.run_id)
        assert run.info.status == "FINISHED" and run.data.tags["mode"] == mode
        assert run.data.params["train.mode"] == mode
        assert [m.step for m in client.get_metric_history(result.run_id, "train_loss")] == [1, 2]
        assert "checkpoint" in {a.path for a in client.list_artifacts(result.run_id)}
    assert outcome.results[0].history[0]["train_loss_dda"] is None  # baseline: no KL term
    assert outcome.results[1].history[0]["train_loss_dda"] is not None
    # Only each member's best and last stay in the group's Ray folder (at most 2 x 2).
    assert 2 <= len(list((outcome.folder / "ray").glob("checkpoint_*"))) <= 4
    assert all(0 < s < outcome.seconds for s in outcome.member_seconds)

    # The second member trained as it would alone: same seed, same data order, same losses. Alone
    # it streams its batches (the group preloaded each epoch): reading ahead changes no number.
    streamed = small_group_configs(tmp_path, data_root, "distill", extra=["train.preload_epoch=false"])
    alone = train(streamed[0], run_name="alone")
    for key in ("train_loss", "val_loss_student", "val_loss_teacher"):
        assert [h[key] for h in outcome.results[1].history] == pytest.approx(
            [h[key] for h in alone.history], rel=1e-5
        ), key


@pytest.mark.slow
@pytest.mark.timeout(SLOW_TIMEOUT_S)
def test_a_worker_killed_in_the_second_member_continues_that_member(
    tmp_path: Path, ray_cluster, monkeypatch
) -> None:
    from mlflow import MlflowClient

    from distillcaps.tracking import tracking_uri
    from distillcaps.training.fault_injection import KILL_ENV, KILL_TRAINING_ENV
    from distillcaps.training.group import train_group

    marker = tmp_path / "killed"
    monkeypatch.setenv(KILL_ENV, f"0:1:0:{marker}")  # rank 0, epoch 2, first step ...
    monkeypatch.setenv(KILL_TRAINING_ENV, "1")  # ... of the second member
    cfgs = small_group_configs(tmp_path, tmp_path / "data", "baseline", "rag")
    outcome = train_group(cfgs, run_names=["k/baseline", "k/rag"])

    assert marker.is_file() and outcome.failed == {}
    baseline, rag = outcome.results
    for result in outcome.results:
        assert [h["global_step"] for h in result.history] == [10, 20]
    client = MlflowClient(tracking_uri(cfgs[0]))
    # The first member was not trained again after the kill: each of its epochs was logged once.
    assert [m.step for m in client.get_metric_history(baseline.run_id, "train_loss")] == [1, 2]
    # The second continued from its epoch-1 checkpoint, or from its start (epoch 1 then ran twice):
    # seen here once with the kill right after that report, apparently before Ray's controller had
    # collected it from the worker.
    logged = [m.step for m in client.get_metric_history(rag.run_id, "train_loss")]
    assert logged in ([1, 2], [1, 1, 2])


def test_a_failed_fit_keeps_the_finished_member_fails_the_running_one_and_drops_the_rest(
    tmp_path: Path, monkeypatch
) -> None:
    """Without Ray: the fit is replaced by one that reports member 0's two epochs and member 1's
    first, then fails, as a worker group does when a member crashes with no restarts left."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from distillcaps.tracking import tracking_uri
    from distillcaps.training import group
    from distillcaps.training.prepare import PreparedData

    def failing_fit(cfg, prepared, storage_dir, trainings, uri, *args):
        ray_dir = storage_dir / "ray"
        for name, training, epoch in (("a", 0, 1), ("b", 0, 2), ("c", 1, 1)):
            fake_checkpoint(ray_dir, name, training=training, epoch=epoch, val=1.0 / epoch)
        raise RuntimeError("worker group died in member 1")

    monkeypatch.setattr(group, "ensure_ray", lambda **kwargs: False)
    monkeypatch.setattr(group, "check_cluster_for_training", lambda cfg: None)
    monkeypatch.setattr(group, "prepare_data", lambda cfg: PreparedData({}, None, 80, []))
    monkeypatch.setattr(group, "fit", failing_fit)
    cfgs = small_group_configs(tmp_path, tmp_path / "data", "baseline", "rag", "distill")
    outcome = group.train_group(cfgs, run_names=["f/baseline", "f/rag", "f/distill"])

    assert outcome.results[0] is not None and outcome.results[1] is None and outcome.results[2] is None
    assert outcome.failed == {1: "RuntimeError: worker group died in member 1"}
    assert outcome.not_started == [2]
    first = outcome.results[0]
    assert [h["epoch"] for h in first.history] == [1, 2]
    assert load_file(str(first.best_checkpoint / "trainable.safetensors"))["epoch"].item() == 2.0
    client = MlflowClient(tracking_uri(cfgs[0]))
    assert client.get_run(first.run_id).info.status == "FINISHED"
    runs = client.search_runs([client.get_experiment_by_name(cfgs[0].tracking.experiment).experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["f/baseline", "f/rag"]  # f/distill's run deleted
    failed = next(r for r in runs if r.info.run_name == "f/rag")
    assert failed.info.status == "FAILED"
    # The running member keeps its checkpoint to look at; nothing is left of the one not started.
    assert len(list((outcome.folder / "ray").glob("checkpoint_*"))) == 2  # member 0's best=last, member 1's
    assert not list((tmp_path / "runs" / "train" / "f").glob("distill-*"))
    with pytest.raises(MlflowException):
        client.get_run("0" * 32)
