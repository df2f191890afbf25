"""Write an experiment's three outputs (results.json, results.md, a plot) and close its parent run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from distillcaps.experiments.plots import plot_results
from distillcaps.experiments.results import (
    ExperimentResults,
    RowResult,
    write_results_json,
    write_results_md,
)
from distillcaps.experiments.tracking import ExperimentTracker
from distillcaps.tracking.ui import runs_page_url, ui_command

RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
RESULTS_PNG = "results.png"


def baselines_as_rows(results: ExperimentResults) -> None:
    """evaluate()'s data-only baselines become reference rows at the bottom of the table."""
    baselines = results.extra.pop("baselines", {}) or {}
    lead = list(results.rows[0].columns) if results.rows else ["Row"]
    for name, per_seed in baselines.items():
        columns = {c: "" for c in lead}
        columns[lead[0]] = f"data baseline: {name}"
        results.rows.append(
            RowResult(f"baseline:{name}", columns, per_seed={int(s): m for s, m in per_seed.items()})
        )


def write_outputs(results: ExperimentResults, output_dir: Path, plot: Callable | None = None) -> list[Path]:
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = [
        write_results_json(results, output_dir / RESULTS_JSON),
        write_results_md(results, output_dir / RESULTS_MD),
    ]
    paths.append((plot or plot_results)(results, output_dir / RESULTS_PNG))
    return paths


def finish_experiment(
    results: ExperimentResults,
    output_dir: Path,
    tracker: ExperimentTracker,
    parent_id: str,
    *,
    plot: Callable | None = None,
    log: Callable[[str], None] = print,
) -> None:
    """Write the outputs (even after failures), log them and the summary to the parent, close it."""
    baselines_as_rows(results)
    paths = write_outputs(results, output_dir, plot)
    try:
        for row in results.rows:
            s = row.summary()
            tracker.log_metrics(parent_id, {f"{row.name}/{k}/mean": v for k, v in s.mean.items()})
            tracker.log_metrics(parent_id, {f"{row.name}/{k}/std": v for k, v in s.std.items()})
        for key, value in results.extra.items():
            if isinstance(value, (int, float)):
                tracker.log_metrics(parent_id, {key: value})
        tracker.client.set_tag(parent_id, "failed_runs", str(len(results.failures)))
        for path in paths:
            tracker.log_artifact(parent_id, path)
    finally:
        tracker.end(parent_id, results.ok)
    log(f"[{results.script}] wrote {', '.join(str(p) for p in paths)}")
    log(
        f"[{results.script}] compare the runs: {ui_command(tracker.uri)}, then open "
        f"{runs_page_url(tracker.experiment_id)}"
    )
    if results.failures:
        log(f"[{results.script}] {len(results.failures)} run(s) failed:")
        for failure in results.failures:
            log(f"  - {failure.describe()}")
