"""The runner's MLflow parent/child layout, outputs and failure handling, with stand-in train/evaluate.

The stand-ins keep the contract of interface 8 (train -> TrainResult-like, evaluate -> EvalResult-like)
so this checks the experiment plumbing without training a model; the real end-to-end run is in
test_scripts_quick.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient

from distillcaps.config import Config
from distillcaps.experiments.tables import run_table_experiment, table_arg_parser
from distillcaps.experiments.tracking import PARENT_TAG, ExperimentTracker


def fake_train(cfg: Config, *, run_name: str, parent_run_id: str, tags: dict) -> SimpleNamespace:
    if cfg.train.mode == "rag+auto" and cfg.seed == 1:
        raise RuntimeError("worker died")
    tracker = ExperimentTracker(cfg)
    run_id = tracker.start_child(parent_run_id, run_name, tags)
    tracker.end(run_id, True)
    ckpt = Path(cfg.run_dir) / run_name.replace("/", "_")
    ckpt.mkdir(parents=True)
    (ckpt / "mode.txt").write_text(cfg.train.mode)
    return SimpleNamespace(
        run_id=run_id, output_dir=ckpt, best_checkpoint=ckpt, last_checkpoint=ckpt,
        history=[{"epoch": 1, "val_loss_student": 1.5, "val_loss_teacher": 1.25 + cfg.seed}],
    )  # fmt: skip


def fake_evaluate(checkpoint: Path, cfg: Config, *, subset: str, rag: bool, output_dir: Path, **_: object):
    mode = (checkpoint / "mode.txt").read_text()
    score = (
        {"baseline": 0.2, "rag": 0.3, "distill": 0.4, "rag+auto": 0.35}[mode] + 0.1 * rag + 0.01 * cfg.seed
    )
    # The "rag" model says one thing for every clip. Like the cross-domain evaluator, no diversity
    # figures are returned: the runner reads them off predictions.csv.
    captions = ["a dog barks"] * 16 if mode == "rag" else [f"sound number {i}" for i in range(16)]
    output_dir.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"clip{i}.wav,{caption}\n" for i, caption in enumerate(captions))
    (output_dir / "predictions.csv").write_text("file_name,caption_predicted\n" + rows)
    return SimpleNamespace(
        metrics={"bleu_1": score + 0.2, "cider_d": score},
        unavailable={"spice": "jars missing", "spider": "needs SPICE"},
        num_clips=16,
        rag=rag,
        predictions_csv=output_dir / "predictions.csv",
        baselines={"most_frequent": {"cider_d": 0.05}, "top1_retrieved": {"cider_d": 0.15}},
    )


@pytest.mark.parametrize("parallel", [1, 3], ids=["sequential", "three-at-once"])
def test_ablate_dda_layout_outputs_and_a_failed_training(tmp_path: Path, parallel: int) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = [
        "--seeds", "0,1", "--output", str(tmp_path / "out"), "--parallel", str(parallel),
        f"tracking.tracking_uri={uri}", f"run_dir={tmp_path / 'runs'}",
    ]  # fmt: skip
    args = table_arg_parser("ablate_dda.py", "t").parse_args(argv)
    code = run_table_experiment("ablate_dda", args, train_fn=fake_train, evaluate_fn=fake_evaluate)
    assert code == 1  # one training failed -> non-zero exit, outputs still written

    out = tmp_path / "out"
    data = json.loads((out / "results.json").read_text())
    assert {f["name"] for f in data["failures"]} == {"rag+auto", "rag+auto/no-rag", "rag+auto/rag"}
    rows = {r["name"]: r for r in data["rows"]}
    per_seed = rows["distill/no-rag"]["per_seed"]
    assert per_seed["0"] == pytest.approx({"bleu_1": 0.6, "cider_d": 0.4})
    assert per_seed["1"] == pytest.approx({"bleu_1": 0.61, "cider_d": 0.41})
    assert rows["distill/rag"]["mean"]["cider_d"] == pytest.approx(0.505)
    assert rows["distill/rag"]["std"]["cider_d"] == pytest.approx(0.00707, abs=1e-5)
    assert list(rows["rag+auto/rag"]["per_seed"]) == ["0"]  # seed 1 failed, seed 0 kept
    assert rows["baseline:most_frequent"]["mean"]["cider_d"] == pytest.approx(0.05)
    assert rows["rag/rag"]["diversity"]["1"]["distinct_captions"] == 1
    assert rows["distill/rag"]["diversity"]["0"] == pytest.approx(
        {"distinct_captions": 16, "top_caption_share": 0.0625, "top_caption": "sound number 0",
         "top_caption_count": 1, "collapsed": False, "num_clips": 16}
    )  # fmt: skip
    assert len([t for t in data["trainings"] if t["status"] == "ok"]) == 7  # 4 + 3 (one failed)
    for t in data["trainings"]:  # each training's last validation losses, student and teacher
        if t["status"] == "ok":
            assert (t["val_loss_student"], t["val_loss_teacher"]) == (1.5, 1.25 + t["seed"])
    md = (out / "results.md").read_text()
    assert "| distill | ✓ | ✓ | ✗ | ours (2/2 seeds) | 60.5 ± 0.7 |" in md
    assert "Failed runs (3)" in md and "RuntimeError: worker died" in md
    assert "| rag | ✗ | ✓ | ✓ | ours (2/2 seeds) ⚠ collapsed |" in md
    assert "- rag/no-rag, seed 0: 1 distinct of 16 captions" in md
    assert (out / "results.png").stat().st_size > 1000

    client = MlflowClient(uri)
    parent = client.get_run(data["parent_run_id"])
    assert parent.info.status == "FAILED" and parent.data.tags["script"] == "ablate_dda"
    assert parent.data.metrics["distill/no-rag/cider_d/mean"] == pytest.approx(0.405)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"results.json", "results.md", "results.png"} <= artifacts
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'", max_results=100
    )
    rows_runs = [c for c in children if c.data.tags.get("distillcaps.kind") == "row"]
    train_runs = [c for c in children if c.data.tags.get("distillcaps.kind") == "training"]
    assert len(rows_runs) == 7 * 2 - 2  # rows of the failed training are not started
    assert len(train_runs) == 7
    student = [c for c in rows_runs if c.data.tags["row"] == "distill/no-rag" and c.data.tags["seed"] == "1"]
    assert student[0].data.metrics["cider_d"] == pytest.approx(0.41)
    assert student[0].data.metrics["distinct_captions"] == 16
    assert student[0].data.tags["script"] == "ablate_dda"
    assert student[0].data.tags["training_run_id"] in {t.info.run_id for t in train_runs}


def test_trainings_a_failed_group_never_reached_run_in_a_new_group(tmp_path: Path) -> None:
    """With the default grouping a seed's four trainings go to train_group_fn together; when the
    second fails and the group stops, the two it never reached are passed on in a second group."""
    from distillcaps.experiments.plan import PLANS
    from distillcaps.experiments.runner import ConfigSource, run_plan
    from distillcaps.training.group import GroupOutcome

    calls: list[list[str]] = []

    def fake_group(cfgs, *, run_names, parent_run_id, tags, group_name):
        calls.append([cfg.train.mode for cfg in cfgs])
        outcome = GroupOutcome(results=[None] * len(cfgs), seconds=1.0)
        for index, (cfg, name, member_tags) in enumerate(zip(cfgs, run_names, tags)):
            if len(calls) == 1 and index == 1:
                outcome.failed[index] = "RuntimeError: worker group died"
                outcome.not_started = list(range(index + 1, len(cfgs)))
                break
            outcome.results[index] = fake_train(
                cfg, run_name=name, parent_run_id=parent_run_id, tags=member_tags
            )
            outcome.member_seconds[index] = 0.5
        return outcome

    source = ConfigSource(
        "tiny", [f"tracking.tracking_uri=sqlite:///{tmp_path / 'm.db'}", f"run_dir={tmp_path}"]
    )
    results = run_plan(
        PLANS.get("ablate_dda")(), source, [0], tmp_path / "out",
        train_group_fn=fake_group, evaluate_fn=fake_evaluate, log=lambda line: None,
    )  # fmt: skip

    assert calls == [["baseline", "rag", "distill", "rag+auto"], ["distill", "rag+auto"]]
    status = {t["key"]: t["status"] for t in results.trainings}
    assert status == {"baseline": "ok", "rag": "failed", "distill": "ok", "rag+auto": "ok"}
    assert {f.name for f in results.failures} == {"rag", "rag/no-rag", "rag/rag"}
    rows = {r.name: r for r in results.rows}
    assert rows["distill/rag"].per_seed[0]["cider_d"] == pytest.approx(0.5)
    assert rows["rag/rag"].per_seed == {}
