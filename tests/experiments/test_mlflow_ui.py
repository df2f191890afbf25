"""The MLflow comparison UI as a user meets it: an ablation's store served by `mlflow server`, its runs
page opened in headless Chromium, with one key per quantity on the row runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from test_runner_layout import fake_evaluate, fake_train

from distillcaps.experiments.tables import run_table_experiment, table_arg_parser
from distillcaps.experiments.tracking import KIND_TAG, PARENT_TAG
from distillcaps.tracking.ui import runs_page_url

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def ablation_store(tmp_path_factory) -> str:
    """An ablate_dda store made by the real runner and tracker, with stand-in train/evaluate."""
    tmp = tmp_path_factory.mktemp("ui")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    argv = ["--seeds", "0", "--output", str(tmp / "out"), f"tracking.tracking_uri={uri}", f"run_dir={tmp}"]
    args = table_arg_parser("ablate_dda.py", "t").parse_args(argv)
    assert run_table_experiment("ablate_dda", args, train_fn=fake_train, evaluate_fn=fake_evaluate) == 0
    return uri


def test_row_runs_carry_one_key_per_quantity_and_the_experiment_is_model_training(ablation_store):
    client = MlflowClient(ablation_store)
    experiment = client.get_experiment_by_name("distillcaps")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    parent = client.search_runs([experiment.experiment_id], f"tags.`{KIND_TAG}` = 'experiment'")[0]
    children = f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'"
    rows = client.search_runs([experiment.experiment_id], f"{children} and tags.`{KIND_TAG}` = 'row'")
    assert len(rows) == 7
    for run in rows:
        assert {"cider_d", "distinct_captions"} <= set(run.data.metrics)
        assert not [key for key in run.data.metrics if key.startswith("eval_") or "baseline" in key]
        assert run.data.tags["rag_test"] in {"True", "False"}
    assert "baseline:most_frequent/cider_d/mean" in parent.data.metrics  # data baselines: once, on the parent


def test_runs_page_link_switches_the_ui_to_model_training():
    url = runs_page_url("7", search_filter="tags.`distillcaps.kind` = 'row'")
    assert url.startswith("http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning&")
    assert "searchFilter=tags.%60distillcaps.kind%60+%3D+%27row%27" in url


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed (scripts/install-browser.sh)"
)
def test_mlflow_server_shows_the_runs_table_with_the_row_metrics(ablation_store, tmp_path):
    png = tmp_path / "runs.png"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "mlflow_ui_screenshot.py"), "--store", ablation_store,
         "--output", str(png)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr  # names what the page showed instead
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
