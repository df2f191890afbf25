"""The results of one experiment invocation, and its two text outputs: results.json and results.md.

results.json holds everything (every row, per-seed metrics, mean, std, caption diversity, failures);
results.md is the paper's table layout with the paper's own numbers on the lines below ours, for
reference only, and a marked row where the model collapsed (one caption for many clips) in any seed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distillcaps.evaluation.diversity import (
    ACCEPTANCE_CLIPS,
    MAX_TOP_CAPTION_SHARE,
    MIN_DISTINCT_CAPTIONS,
    is_collapsed,
)
from distillcaps.experiments.aggregate import Summary, format_mean_std, summarize

METRIC_LABELS = {
    "bleu_1": "BLEU-1",
    "bleu_4": "BLEU-4",
    "meteor": "METEOR",
    "rouge_l": "ROUGE-L",
    "cider_d": "CIDEr-D",
    "spice": "SPICE",
    "spider": "SPIDEr",
}

COLLAPSED_MARK = "⚠ collapsed"


@dataclass
class RunFailure:
    kind: str  # "train" | "evaluate" | "trial" | ...
    name: str  # training key or row name
    seed: int
    error: str  # one line: exception type and message

    def describe(self) -> str:
        return f"{self.kind} {self.name!r} (seed {self.seed}): {self.error}"


@dataclass
class RowResult:
    name: str
    columns: dict[str, str]
    training: str = ""
    rag: bool = False
    per_seed: dict[int, dict[str, float]] = field(default_factory=dict)  # seed -> metric -> value
    unavailable: dict[str, str] = field(default_factory=dict)  # metric -> why (never reported as 0)
    run_ids: dict[int, str] = field(default_factory=dict)  # seed -> MLflow child run
    paper: dict[str, dict[str, float | None]] = field(default_factory=dict)  # label -> paper's numbers (%)
    # seed -> evaluation.diversity figures plus "num_clips"; data baselines have none (not models)
    diversity: dict[int, dict[str, Any]] = field(default_factory=dict)

    def summary(self) -> Summary:
        return summarize(self.per_seed)

    def collapsed_seeds(self) -> list[int]:
        return [seed for seed, d in sorted(self.diversity.items()) if is_collapsed(d, d["num_clips"])]


@dataclass
class ExperimentResults:
    script: str
    title: str
    seeds: list[int]
    metrics: list[str]
    rows: list[RowResult] = field(default_factory=list)
    trainings: list[dict[str, Any]] = field(default_factory=list)  # key, seed, run_id, checkpoint, seconds
    failures: list[RunFailure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # shown above the table (data provenance, caveats)
    extra: dict[str, Any] = field(default_factory=dict)  # experiment-specific summary (e.g. a ratio)
    parent_run_id: str | None = None
    scale: float = 100.0  # scores are shown in percent like the paper; times use 1.0
    unit: str = "%"

    @property
    def ok(self) -> bool:
        return not self.failures

    def row(self, name: str) -> RowResult:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"no row {name!r}; rows: {[r.name for r in self.rows]}")

    def to_dict(self) -> dict[str, Any]:
        rows = []
        for r in self.rows:
            s = r.summary()
            rows.append(
                {
                    "name": r.name,
                    "columns": r.columns,
                    "training": r.training,
                    "rag": r.rag,
                    "per_seed": {str(seed): m for seed, m in sorted(r.per_seed.items())},
                    "mean": s.mean,
                    "std": s.std,
                    "n": s.n,
                    "unavailable": r.unavailable,
                    "run_ids": {str(seed): rid for seed, rid in sorted(r.run_ids.items())},
                    "diversity": {str(seed): d for seed, d in sorted(r.diversity.items())},
                    "paper": r.paper,
                }
            )
        return {
            "script": self.script,
            "title": self.title,
            "seeds": self.seeds,
            "metrics": self.metrics,
            "unit": self.unit,
            "ok": self.ok,
            "rows": rows,
            "trainings": self.trainings,
            "failures": [f.__dict__ for f in self.failures],
            "notes": self.notes,
            "extra": self.extra,
            "parent_run_id": self.parent_run_id,
        }


def write_results_json(results: ExperimentResults, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results.to_dict(), indent=2, ensure_ascii=False, default=str) + "\n")
    return path


def render_markdown(results: ExperimentResults) -> str:
    lead = list(results.rows[0].columns) if results.rows else []
    labels = [METRIC_LABELS.get(m, m) for m in results.metrics]
    n_seeds = len(results.seeds)
    lines = [f"# {results.title}", ""]
    lines += [f"- {note}" for note in results.notes]
    lines += [
        f"- Ours: mean ± sample std over {n_seeds} seed{'s' if n_seeds != 1 else ''} "
        f"({', '.join(map(str, results.seeds))}), in {results.unit}; one seed has no std.",
        "",
    ]
    lines.append("| " + " | ".join([*lead, "Source", *labels]) + " |")
    lines.append("|" + "---|" * (len(lead) + 1 + len(labels)))
    for r in results.rows:
        s = r.summary()
        cells = [
            ("n/a" if m in r.unavailable else format_mean_std(s.mean.get(m), s.std.get(m), results.scale))
            for m in results.metrics
        ]
        seeds_ok = len(r.per_seed)
        source = f"ours ({seeds_ok}/{n_seeds} seeds)"
        if r.collapsed_seeds():
            source += f" {COLLAPSED_MARK}"
        lines.append("| " + " | ".join([*(r.columns.get(c, "") for c in lead), source, *cells]) + " |")
        for label, numbers in r.paper.items():
            pcells = ["—" if numbers.get(m) is None else f"{numbers[m]:.1f}" for m in results.metrics]
            lines.append("| " + " | ".join([*("" for _ in lead), f"paper, {label}", *pcells]) + " |")
    lines.append("")
    lines += collapse_footnote(results.rows)
    unavailable = {m: why for r in results.rows for m, why in r.unavailable.items()}
    if unavailable:
        lines.append("Unavailable metrics (not computed, never reported as 0):")
        lines += [f"- {METRIC_LABELS.get(m, m)}: {why}" for m, why in sorted(unavailable.items())]
        lines.append("")
    for key, value in results.extra.items():
        lines.append(f"- {key}: {value}")
    if results.extra:
        lines.append("")
    if results.failures:
        lines.append(f"## Failed runs ({len(results.failures)})")
        lines += [f"- {f.describe()}" for f in results.failures]
        lines.append("")
    if results.parent_run_id:
        lines.append(f"MLflow parent run: `{results.parent_run_id}`")
        lines.append("")
    return "\n".join(lines)


def collapse_footnote(rows: list[RowResult]) -> list[str]:
    """Lines naming each collapsed row × seed with its distinct count and its repeated caption."""
    notes = []
    for r in rows:
        for seed in r.collapsed_seeds():
            d = r.diversity[seed]
            notes.append(
                f"- {r.name}, seed {seed}: {d['distinct_captions']} distinct of {d['num_clips']} captions; "
                f'"{d["top_caption"]}" on {d["top_caption_share"]:.0%} of the clips'
            )
    if not notes:
        return []
    bar = (
        f"The bar: at least {MIN_DISTINCT_CAPTIONS} distinct captions on {ACCEPTANCE_CLIPS} clips, "
        f"proportionally fewer on a smaller set, none on more than {MAX_TOP_CAPTION_SHARE:.0%} of the clips."
    )
    return [f"{COLLAPSED_MARK}: the model said one thing for many clips. {bar}", *notes, ""]


def write_results_md(results: ExperimentResults, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_markdown(results))
    return path
