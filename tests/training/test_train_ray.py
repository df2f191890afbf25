"""End to end through Ray: train the tiny preset on a small synthetic set with 2 workers, evaluate,
find the run in MLflow; resuming with another model config. Faults (a worker killed, a node lost, a
crashed run resumed with ``distillcaps train --resume``, a NaN loss) are in test_faults.py.

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
