"""Row plans, mean ± std aggregation and the results writers, on synthetic metric dicts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from distillcaps.evaluation.diversity import diversity_report
from distillcaps.experiments import paper_numbers
from distillcaps.experiments.aggregate import format_mean_std, summarize
from distillcaps.experiments.plan import PLANS, ExperimentPlan, RowSpec, TrainingSpec
from distillcaps.experiments.plots import plot_inference_time, plot_results
from distillcaps.experiments.results import (
    COLLAPSED_MARK,
    ExperimentResults,
    RowResult,
    RunFailure,
    render_markdown,
    write_results_json,
)
from distillcaps.experiments.tables import PAPER_LOOKUPS


def test_table5_plan_has_five_paper_rows_plus_the_control_and_shares_trainings() -> None:
    plan = PLANS.get("ablate_dda")()
    assert [t.key for t in plan.trainings] == ["baseline", "rag", "distill", "rag+auto"]
    assert len(plan.rows) == 7
    triples = [
        (r.columns["Distillation"], r.columns["RAG train"], r.columns["RAG test"], r.training, r.rag)
        for r in plan.rows
    ]
    assert triples[:5] == [
        ("✗", "✗", "✗", "baseline", False),
        ("✗", "✓", "✗", "rag", False),
        ("✗", "✓", "✓", "rag", True),
        ("✓", "✓", "✗", "distill", False),
        ("✓", "✓", "✓", "distill", True),
    ]
    assert [(r.training, r.rag) for r in plan.rows[5:]] == [("rag+auto", False), ("rag+auto", True)]
    assert all(r.paper_key is None for r in plan.rows[5:])
    assert {t.key: t.overrides for t in plan.trainings}["rag+auto"] == ("train.mode=rag+auto",)


def test_table5_paper_numbers_are_attached_to_the_matching_rows() -> None:
    plan = PLANS.get("ablate_dda")()
    lookup = PAPER_LOOKUPS.get("ablate_dda")
    student = next(r for r in plan.rows if r.name == "distill/no-rag")
    assert lookup(student)["Clotho"]["cider_d"] == 41.7
    assert lookup(student)["AudioCaps"]["spider"] == 47.3
    baseline = next(r for r in plan.rows if r.name == "baseline/no-rag")
    assert lookup(baseline)["Clotho"]["bleu_1"] == 54.3
    assert lookup(next(r for r in plan.rows if r.name == "rag+auto/rag")) == {}
    # every Table 5 row holds all seven metrics for both datasets
    for row in paper_numbers.TABLE5.values():
        for numbers in row.values():
            assert list(numbers) == list(paper_numbers.METRICS)
    assert paper_numbers.figure5_ratio("Clotho") == pytest.approx(3.35, abs=0.01)
    assert paper_numbers.figure5_ratio("AudioCaps") == pytest.approx(5.42, abs=0.01)


def test_fft_and_cross_domain_plans() -> None:
    fft = PLANS.get("ablate_fft")()
    assert [t.key for t in fft.trainings] == ["none", "paper", "released", "spectral"]
    assert all("train.mode=distill" in t.overrides for t in fft.trainings)
    assert ("model.adapter.variant=spectral") in fft.trainings[3].overrides
    assert len(fft.rows) == 8
    cross = PLANS.get("cross_domain")()
    assert len(cross.trainings) == 6
    row = next(r for r in cross.rows if r.name == "outdoor->indoor/distill/rag")
    assert row.training == "outdoor/distill" and row.rag
    assert row.eval_overrides == ("data.synth.domain=indoor",)
    assert PAPER_LOOKUPS.get("cross_domain")(row)["AudioCaps→Clotho"]["cider_d"] == 23.4


def test_a_plan_rejects_rows_without_their_training() -> None:
    with pytest.raises(ValueError, match="unknown training 'missing'"):
        ExperimentPlan("x", "x", (TrainingSpec("a", ()),), (RowSpec("r", "missing", False),))


def test_summary_is_mean_and_sample_std_skipping_missing_metrics() -> None:
    s = summarize({0: {"cider_d": 0.1, "spice": 0.2}, 1: {"cider_d": 0.3}, 2: {"cider_d": 0.2}})
    assert s.mean["cider_d"] == pytest.approx(0.2)
    assert s.std["cider_d"] == pytest.approx(0.1)  # sample std (ddof=1) of 0.1, 0.3, 0.2
    assert s.n == {"cider_d": 3, "spice": 1}
    assert s.mean["spice"] == pytest.approx(0.2) and s.std["spice"] is None  # one seed: no std
    assert format_mean_std(0.417, 0.003) == "41.7 ± 0.3"
    assert format_mean_std(0.417, None) == "41.7"
    assert format_mean_std(None, None) == "—"
    assert not summarize({0: {"x": math.nan}}).mean


def _results() -> ExperimentResults:
    results = ExperimentResults(
        script="ablate_dda",
        title="Table 5",
        seeds=[0, 1],
        metrics=list(paper_numbers.METRICS),
        notes=["Data: synthetic."],
    )
    results.rows = [
        RowResult(
            "baseline/no-rag",
            {"Distillation": "✗", "RAG test": "✗"},
            "baseline",
            False,
            per_seed={0: {"cider_d": 0.2, "bleu_1": 0.5}, 1: {"cider_d": 0.4, "bleu_1": 0.7}},
            unavailable={"spice": "no SPICE jars", "spider": "needs SPICE"},
            paper={"Clotho": paper_numbers.TABLE5[(False, False, False)]["Clotho"]},
        ),
        RowResult("distill/no-rag", {"Distillation": "✓", "RAG test": "✗"}, "distill", False),
    ]
    results.failures.append(RunFailure("train", "distill", 1, "RuntimeError: boom"))
    return results


def test_results_json_holds_rows_per_seed_mean_std_and_failures(tmp_path: Path) -> None:
    data = json.loads(write_results_json(_results(), tmp_path / "results.json").read_text())
    assert data["ok"] is False and data["seeds"] == [0, 1]
    row = data["rows"][0]
    assert row["per_seed"]["1"]["cider_d"] == 0.4
    assert row["mean"]["cider_d"] == pytest.approx(0.3) and row["std"]["cider_d"] == pytest.approx(
        0.1414, abs=1e-4
    )
    assert row["unavailable"]["spice"] == "no SPICE jars"
    assert data["rows"][1]["per_seed"] == {} and data["rows"][1]["mean"] == {}
    assert data["failures"] == [
        {"kind": "train", "name": "distill", "seed": 1, "error": "RuntimeError: boom"}
    ]


def test_results_md_puts_the_paper_below_ours_and_names_failures() -> None:
    text = render_markdown(_results())
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| Distillation"))
    assert header.split("|")[3:6] == [" Source ", " BLEU-1 ", " BLEU-4 "]
    ours = next(i for i, line in enumerate(lines) if "ours (2/2 seeds)" in line)
    assert "30.0 ± 14.1" in lines[ours] and "| n/a |" in lines[ours]  # CIDEr-D in percent; SPICE n/a
    assert "paper, Clotho" in lines[ours + 1] and "| 54.3 |" in lines[ours + 1]
    assert "ours (0/2 seeds)" in text
    assert "train 'distill' (seed 1): RuntimeError: boom" in text
    assert "SPICE: no SPICE jars" in text
    assert "Data: synthetic." in text


def _diversity(captions: list[str]) -> dict:
    return {**diversity_report(captions), "num_clips": len(captions)}


def test_results_md_flags_a_collapsed_model_row_and_json_holds_the_figures(tmp_path: Path) -> None:
    results = _results()
    healthy = [f"sound number {i}" for i in range(16)]
    results.rows[0].diversity = {0: _diversity(healthy), 1: _diversity(healthy)}
    results.rows[1].per_seed = {0: {"cider_d": 0.3}, 1: {"cider_d": 0.1}}
    results.rows[1].diversity = {0: _diversity(healthy), 1: _diversity(["A dog barks."] * 16)}
    # a data baseline says one caption for every clip by design: it has no diversity, never flagged
    results.rows.append(RowResult("baseline:most_frequent_caption", {"Distillation": "data baseline"}))

    lines = render_markdown(results).splitlines()
    flagged = [line for line in lines if "ours (" in line and COLLAPSED_MARK in line]
    assert len(flagged) == 1 and flagged[0].startswith("| ✓ | ✗ | ours (2/2 seeds) ⚠ collapsed |")
    footnote = '- distill/no-rag, seed 1: 1 distinct of 16 captions; "a dog barks" on 100% of the clips'
    assert footnote in lines
    assert not any("baseline/no-rag, seed" in line for line in lines)

    data = json.loads(write_results_json(results, tmp_path / "results.json").read_text())
    rows = {r["name"]: r for r in data["rows"]}
    collapsed = rows["distill/no-rag"]["diversity"]["1"]
    assert collapsed["distinct_captions"] == 1 and collapsed["top_caption_share"] == 1.0
    assert collapsed["top_caption"] == "a dog barks" and collapsed["collapsed"] is True
    assert rows["baseline/no-rag"]["diversity"]["0"]["distinct_captions"] == 16
    assert rows["baseline:most_frequent_caption"]["diversity"] == {}


def test_plots_are_written(tmp_path: Path) -> None:
    png = plot_results(_results(), tmp_path / "results.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    png = plot_inference_time(
        {"no retrieval": [1.0, 1.2], "retrieval": [3.0, 3.3]}, 2.8, tmp_path / "t.png", "t"
    )
    assert png.stat().st_size > 1000
