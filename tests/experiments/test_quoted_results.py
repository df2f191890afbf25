"""Figures the docs quote from committed result files are the files' figures (a rerun that changes
results.json without the prose fails here)."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cider(row: dict) -> str:
    """'mean ± std (seed 0, seed 1, seed 2)' of a results.json row's CIDEr-D, in %."""
    seeds = ", ".join(f"{100 * row['per_seed'][s]['cider_d']:.1f}" for s in sorted(row["per_seed"]))
    return f"{100 * row['mean']['cider_d']:.1f} ± {100 * row['std']['cider_d']:.1f} ({seeds})"


def test_the_cross_domain_figures_in_the_docs_are_those_of_its_results_json():
    rows = {
        r["name"]: r
        for r in json.loads((ROOT / "docs/results/cross_domain/results.json").read_text())["rows"]
    }
    experiments = (ROOT / "docs/experiments.md").read_text()
    for direction in ("outdoor->indoor", "indoor->outdoor"):
        cells = [
            cider(rows[f"{direction}/{row}"])
            for row in ("baseline/no-rag", "distill/no-rag", "rag/rag", "distill/rag")
        ]
        source, target = direction.split("->")
        assert f"| {source} → {target} | " + " | ".join(cells) + " |" in experiments


def test_the_soak_figures_in_the_docs_are_those_of_its_json():
    soak = json.loads((ROOT / "benchmarks/results/soak/serve_load.json").read_text())["results"]
    statuses = soak["status_counts"]
    four_xx = sum(v for k, v in statuses.items() if k.startswith("4"))
    peak = soak["serve_peak_rss_mb"]
    model_mb = round(peak["ray::ServeReplica:distillcaps:CaptionModel"])
    ingress_mb = round(peak["ray::ServeReplica:distillcaps:CaptionIngress"])
    row = (
        f"| {soak['responses']} | {soak['bad_uploads']} | {statuses['200']} | {four_xx} | {soak['num_5xx']} "
        f"| {soak['throughput_rps']:.1f} req/s | {soak['latency_ms']['p50']:.0f} ms "
        f"| {soak['latency_ms']['p99']:.0f} ms "
        f"| {model_mb} / {ingress_mb} MB |"
    )
    assert row in (ROOT / "docs/serving.md").read_text()
    assert four_xx == soak["bad_uploads"]  # every malformed upload got a 4xx, no good one did


def test_the_inference_time_figures_in_the_docs_are_those_of_its_results_json():
    data = json.loads((ROOT / "docs/results/inference_time/results.json").read_text())
    rows = {r["name"]: r for r in data["rows"]}
    without, with_ = (
        f"{rows[n]['mean']['seconds']:.1f} ± {rows[n]['std']['seconds']:.1f} s"
        for n in ("without_retrieval", "with_retrieval")
    )
    ratio = data["extra"]["ratio_with_over_without_paired_median"]
    quoted = f"**{without} without retrieval vs {with_} with it: {ratio:.2f}×**"
    assert quoted in " ".join((ROOT / "docs/experiments.md").read_text().split())


def test_the_fft_figures_in_the_docs_are_those_of_its_results_json():
    rows = {
        r["name"]: r for r in json.loads((ROOT / "docs/results/ablate_fft/results.json").read_text())["rows"]
    }
    lines = (ROOT / "docs/experiments.md").read_text().splitlines()
    for variant in ("none", "paper", "released", "spectral"):
        line = next(line for line in lines if line.strip().startswith(f"| `{variant}` ("))
        cells = [cell.strip().replace("**", "") for cell in line.strip().strip("|").split("|")[1:]]
        assert cells == [cider(rows[f"{variant}/no-rag"]), cider(rows[f"{variant}/rag"])], line
