"""docs/howto/add-an-experiment.md: its plan and lookup, run as written, through the real runner with
stand-in training and evaluation (as tests/experiments/test_runner_layout.py)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from howto_pages import registry_copy

from distillcaps.experiments import plan as plan_module
from distillcaps.experiments import tables
from distillcaps.experiments.tracking import ExperimentTracker


def stand_in_train(cfg, *, run_name, parent_run_id, tags):
    """A child run and a 'checkpoint' folder that holds the training's temperature."""
    tracker = ExperimentTracker(cfg)
    run_id = tracker.start_child(parent_run_id, run_name, tags)
    tracker.end(run_id, True)
    checkpoint = Path(cfg.run_dir) / run_name.replace("/", "_")
    checkpoint.mkdir(parents=True)
    (checkpoint / "temperature").write_text(str(cfg.train.temperature))
    return SimpleNamespace(
        run_id=run_id, output_dir=checkpoint, best_checkpoint=checkpoint, last_checkpoint=checkpoint,
        history=[{"epoch": 1, "val_loss_student": 1.5, "val_loss_teacher": 1.2}],
    )  # fmt: skip


def stand_in_evaluate(checkpoint, cfg, *, subset, rag, output_dir, **_):
    """CIDEr-D = temperature / 10, so each row's figure says which training it evaluated."""
    output_dir.mkdir(parents=True, exist_ok=True)
    csv = output_dir / "predictions.csv"
    csv.write_text("file_name,caption_predicted\n" + "".join(f"c{i}.wav,sound {i}\n" for i in range(4)))
    cider = float((checkpoint / "temperature").read_text()) / 10
    return SimpleNamespace(
        metrics={"cider_d": cider}, unavailable={}, num_clips=4, rag=rag, predictions_csv=csv, baselines={}
    )


def test_the_temperature_experiment_of_the_page_runs_one_row_per_temperature(run_page, monkeypatch, tmp_path):
    plans = registry_copy(plan_module.PLANS)
    monkeypatch.setattr(plan_module, "PLANS", plans)
    monkeypatch.setattr(tables, "PLANS", plans)
    monkeypatch.setattr(tables, "PAPER_LOOKUPS", registry_copy(tables.PAPER_LOOKUPS))
    run_page("add-an-experiment.md")

    plan = plans.get("ablate_temperature")()
    assert [t.key for t in plan.trainings] == ["T=0.5", "T=1", "T=2"]
    assert plan.trainings[0].overrides == ("train.mode=distill", "train.temperature=0.5")
    assert [(r.name, r.training, r.rag) for r in plan.rows][1] == ("T=1/no-rag", "T=1", False)

    argv = [
        "--seeds", "0", "--output", str(tmp_path / "out"),
        f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}", f"run_dir={tmp_path / 'runs'}",
    ]  # fmt: skip
    args = tables.table_arg_parser("ablate_temperature.py", "t").parse_args(argv)
    code = tables.run_table_experiment(
        "ablate_temperature", args, train_fn=stand_in_train, evaluate_fn=stand_in_evaluate
    )
    assert code == 0
    rows = {r["name"]: r for r in json.loads((tmp_path / "out" / "results.json").read_text())["rows"]}
    for t in ("0.5", "1", "2"):
        assert rows[f"T={t}/no-rag"]["mean"]["cider_d"] == pytest.approx(float(t) / 10)
    assert "| 2 | ours (1/1 seeds) |" in (tmp_path / "out" / "results.md").read_text()
