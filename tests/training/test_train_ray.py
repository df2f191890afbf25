"""End to end through Ray: train the tiny preset on a small synthetic set with 2 workers, evaluate,
find the run in MLflow; a worker killed mid-run; a crashed run resumed with ``distillcaps train
--resume``; resuming with another model config.

The slow tests share one data root (module fixture), so the synthetic set, tiny CLAP, tiny LLM,
retrieval and feature caches are built once for the module, not once per run.
"""

from __future__ import annotations

import json
import os

import pytest

from distillcaps.config import ConfigError, load_config

SMALL = [
    "data.synth.num_train=16",
    "data.synth.num_val=6",
    "data.synth.num_eval=8",
    "data.synth.clip_seconds=3.0",
    "data.max_seconds=3.0",
    "retrieval.tiny.epochs=2",
    "model.llm.pretrain_steps=20",
    "model.generation.max_new_tokens=8",
    "train.num_workers=2",
    "train.cpus_per_worker=0.5",
    "train.batch_size=8",
    "train.object_store_mb=512",
    # No JVM in the default suite: BLEU/ROUGE-L/CIDEr-D only (METEOR is tested in tests/evaluation).
    "eval.metrics=[bleu_1,bleu_4,rouge_l,cider_d]",
    "eval.java_path=/nonexistent/java",
]


# 16 clips x 5 captions = 80 rows -> 40 per worker -> 10 optimizer steps of 4 rows per epoch: what an
# uninterrupted run takes (test_train_two_workers... checks it on a real run).
STEPS_PER_EPOCH = 10

# The slow tests are end-to-end runs on a shared 2-core host: minutes each, more under load.
SLOW_TIMEOUT_S = 1800


def small_config(tmp_path, *overrides, data_root=None):
    data_root = data_root or tmp_path / "data"
    return load_config(
        "tiny", [f"run_dir={tmp_path / 'runs'}", f"data.data_root={data_root}", *SMALL, *overrides]
    )


@pytest.fixture(scope="module")
def shared_data(tmp_path_factory):
    """One data root for the module's runs: its caches are computed by the first run only."""
    return tmp_path_factory.mktemp("shared-data")


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    import ray

    from distillcaps.ray_runtime import ensure_ray

    # The kill test's environment variable must reach the workers: train() forwards DISTILLCAPS_*
    # through the Train workers' runtime_env, so one cluster serves all tests.
    ensure_ray(object_store_mb=512)
    yield
    ray.shutdown()


@pytest.mark.slow
@pytest.mark.timeout(SLOW_TIMEOUT_S)
def test_train_two_workers_evaluate_and_find_everything_in_mlflow(tmp_path, ray_cluster, shared_data, capsys):
    from mlflow import MlflowClient

    from distillcaps.tracking import tracking_uri
    from distillcaps.training.trainer import train

    cfg = small_config(tmp_path, "train.epochs=2", data_root=shared_data)
    result = train(cfg, run_name="e2e")

    assert [h["epoch"] for h in result.history] == [1, 2]
    assert [h["global_step"] for h in result.history] == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
    assert (result.best_checkpoint / "trainable.safetensors").is_file()
    assert (result.last_checkpoint / "trainable.safetensors").is_file()
    printed = capsys.readouterr().out
    assert f"MLflow run id: {result.run_id}" in printed and "output folder:" in printed

    student, rag = result.evaluations["student"], result.evaluations["student_rag"]
    assert student.num_clips == 8 and not student.rag and rag.rag
    # only the requested metrics are computed (SMALL asks for no METEOR)
    assert set(student.metrics) == {"bleu_1", "bleu_4", "rouge_l", "cider_d"}
    assert {"most_frequent_caption", "top1_retrieved"} <= set(student.baselines)
    lines = student.predictions_csv.read_text().splitlines()
    assert lines[0] == "file_name,caption_predicted" and len(lines) == 9

    client = MlflowClient(tracking_uri(cfg))
    run = client.get_run(result.run_id)
    assert run.data.params["train.num_workers"] == "2"
    assert {"mode", "dataset", "preset", "seed", "git_commit"} <= set(run.data.tags)
    for key in ("train_loss_auto", "train_loss_rag", "train_loss_dda", "val_loss_student", "lr"):
        assert [m.step for m in client.get_metric_history(result.run_id, key)] == [1, 2], key
    assert "eval_cider_d" in run.data.metrics and "eval_rag_cider_d" in run.data.metrics
    assert "eval_baseline_most_frequent_caption_cider_d" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"checkpoint", "eval", "config.json", "history.json"} <= artifacts
    eval_files = {a.path for a in client.list_artifacts(result.run_id, "eval/eval")}
    assert {"eval/eval/predictions.csv", "eval/eval/metrics.json", "eval/eval/samples.json"} <= eval_files

    metrics = json.loads((result.output_dir / "eval" / "metrics.json").read_text())
    assert set(metrics) >= {"metrics", "unavailable", "num_clips", "rag"}


@pytest.mark.slow
@pytest.mark.timeout(SLOW_TIMEOUT_S)
def test_killed_worker_resumes_from_last_checkpoint_with_same_step_count(
    tmp_path, ray_cluster, shared_data, monkeypatch
):
    from mlflow import MlflowClient

    from distillcaps.tracking import tracking_uri
    from distillcaps.training.loop import KILL_ENV
    from distillcaps.training.trainer import train

    marker = tmp_path / "killed"
    # Rank 1 kills itself (SIGKILL) at the first step of the second epoch, once; train.max_failures=1
    # lets Ray restart the worker group, which restores the checkpoint of epoch 1.
    monkeypatch.setenv(KILL_ENV, f"1:1:0:{marker}")
    cfg = small_config(tmp_path, "train.epochs=2", "train.evaluate_after=false", data_root=shared_data)
    restarted = train(cfg)

    assert marker.is_file()
    assert [h["epoch"] for h in restarted.history] == [1, 2]
    # the same optimizer steps as an uninterrupted run: the killed epoch was redone, nothing more
    assert [h["global_step"] for h in restarted.history] == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
    # From the checkpoint, not from scratch: epoch 1 ran (and was logged) once, before the kill,
    # and its metrics in the final history are the ones logged then.
    logged = MlflowClient(tracking_uri(cfg)).get_metric_history(restarted.run_id, "train_loss")
    assert [m.step for m in logged] == [1, 2]
    assert logged[0].value == pytest.approx(restarted.history[0]["train_loss"])


def test_resume_with_another_model_config_is_a_clear_error(tmp_path):
    import yaml

    from distillcaps.training.trainer import check_resumable

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg = small_config(tmp_path)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    (run_dir / "run.json").write_text(json.dumps({"run_id": "abc"}))
    assert check_resumable(run_dir, cfg) == "abc"
    other = small_config(tmp_path, "model.qformer.num_layers=3")
    with pytest.raises(ConfigError, match="model.qformer.num_layers"):
        check_resumable(run_dir, other)
    with pytest.raises(FileNotFoundError, match="not a training output folder"):
        check_resumable(tmp_path, cfg)


def test_unknown_checkpoint_metric_is_refused(tmp_path):
    from distillcaps.training.trainer import train

    with pytest.raises(ConfigError, match="train.checkpoint_metric"):
        train(small_config(tmp_path, "train.checkpoint_metric=bleu_9"))
    assert not os.path.exists(tmp_path / "runs" / "train")


@pytest.mark.slow
@pytest.mark.timeout(SLOW_TIMEOUT_S)
def test_resume_continues_a_stopped_run(tmp_path, ray_cluster, shared_data, monkeypatch):
    from mlflow import MlflowClient
    from ray.train import TrainingFailedError

    from distillcaps.cli import main
    from distillcaps.tracking import tracking_uri
    from distillcaps.training.loop import KILL_ENV
    from distillcaps.training.trainer import train

    # A 2-epoch run stops in its second epoch: a worker dies and no restart is allowed.
    monkeypatch.setenv(KILL_ENV, f"1:1:0:{tmp_path / 'killed'}")
    cfg = small_config(
        tmp_path,
        "train.epochs=2",
        "train.evaluate_after=false",
        "train.max_failures=0",
        data_root=shared_data,
    )
    with pytest.raises(TrainingFailedError):
        train(cfg, run_name="stopped")
    monkeypatch.delenv(KILL_ENV)
    (run_dir,) = (tmp_path / "runs" / "train").iterdir()
    run_id = json.loads((run_dir / "run.json").read_text())["run_id"]
    assert not (run_dir / "history.json").exists()

    # `distillcaps train --resume RUN_DIR` takes the run's own config.yaml and continues it.
    assert main(["train", "--resume", str(run_dir)]) == 0
    history = json.loads((run_dir / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert [h["global_step"] for h in history] == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
    assert (run_dir / "checkpoints" / "last" / "trainable.safetensors").is_file()
    # the same MLflow run, each epoch logged once
    logged = MlflowClient(tracking_uri(cfg)).get_metric_history(run_id, "train_loss")
    assert [m.step for m in logged] == [1, 2]

    # A finished run continues too, with more epochs given as an override.
    assert main(["train", "--resume", str(run_dir), "train.epochs=3"]) == 0
    history = json.loads((run_dir / "history.json").read_text())
    assert [h["global_step"] for h in history] == [STEPS_PER_EPOCH * e for e in (1, 2, 3)]
    logged = MlflowClient(tracking_uri(cfg)).get_metric_history(run_id, "train_loss")
    assert [m.step for m in logged] == [1, 2, 3]
