"""The README's results section, rendered from the committed result files (never typed by hand).

    python -m distillcaps.experiments.summary           # rewrite the block in README.md
    python -m distillcaps.experiments.summary --check   # exit 1 when README.md's block is stale

Every figure comes from ``docs/results/*/results.json``, ``docs/results/context_diagnostic/*.json``
or ``benchmarks/results/**.json``; every verdict on a paper claim is computed seed by seed, and an
ordering is called shown only when it holds in every seed and the mean gap exceeds the spread.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

BEGIN = "<!-- results: rendered by `python -m distillcaps.experiments.summary`; do not edit by hand -->"
END = "<!-- /results -->"


@dataclass(frozen=True)
class Claim:
    """ "``better`` scores above ``worse``" (CIDEr-D), as one of the paper's claims states it."""

    text: str
    better: str  # row name in results.json
    worse: str


TABLE5_ROWS = {  # row name -> what it is (paper Table 5 order, then the control and the data rows)
    "baseline/no-rag": "baseline (no distillation, no RAG)",
    "rag/no-rag": "RAG-trained, tested without retrieval",
    "rag/rag": "RAG-trained, tested with retrieval",
    "distill/no-rag": "**DistillCaps student** (no retrieval at test)",
    "distill/rag": "DistillCaps + retrieval at test",
    "rag+auto/no-rag": "control, not in the paper: both CE terms, no KL, without retrieval",
    "rag+auto/rag": "the same control with retrieval",
    "baseline:most_frequent_caption": "data: always the most frequent training caption",
    "baseline:top1_retrieved": "data: copy the top-1 retrieved caption",
}
TABLE5_CLAIMS = (
    Claim("the DistillCaps student beats the baseline", "distill/no-rag", "baseline/no-rag"),
    Claim(
        "the baseline beats the RAG-trained model tested without retrieval", "baseline/no-rag", "rag/no-rag"
    ),
    Claim("RAG-trained with retrieval beats the baseline", "rag/rag", "baseline/no-rag"),
    Claim("DistillCaps + retrieval beats RAG-trained with retrieval", "distill/rag", "rag/rag"),
    Claim(
        "(control) the KL term helps the student: distill beats rag+auto", "distill/no-rag", "rag+auto/no-rag"
    ),
)
FFT_CLAIMS = tuple(
    Claim(f"the paper's FFT adapter beats no adapter, {rag} retrieval", f"paper/{key}", f"none/{key}")
    for key, rag in (("no-rag", "without"), ("rag", "with"))
)
DIRECTIONS = ("outdoor->indoor", "indoor->outdoor")
CROSS_CLAIMS = tuple(
    Claim(f"{d.replace('->', ' → ')}: DistillCaps + retrieval beats RAG-trained with retrieval",
          f"{d}/distill/rag", f"{d}/rag/rag")
    for d in DIRECTIONS
)  # fmt: skip


@dataclass(frozen=True)
class Headline:
    """One benchmark ratio for the README: which file, which ratio (by name), what it means, and
    the target it is held to (``">= 2"``, ``"<= 1.3"``; met or not is computed)."""

    path: str  # under benchmarks/results/
    ratio: str
    label: str
    target: str = ""
    missed_because: str = ""  # the measured reason, shown only when the target is missed


HEADLINES = (
    Headline("trained/inference_limits.json", "time with retrieval / student, encoder pass shared @b32",
             "captioning time with retrieval / without, trained student, batch 32", "<= 1.3"),
    Headline("trained/inference_limits.json", "greedy generate / its bound @b32 (captions/s)",
             "greedy decoding / its bound (prefill + one KV-cached forward per token), batch 32", ">= 0.8"),
    Headline("trained/inference_limits.json", "beam generate / its bound @b32 (captions/s)",
             "beam-4 decoding / the same bound", ">= 0.8",
             "a quarter of beam `generate` is outside the LLM forwards: KV-cache reordering by beam"
             " and beam bookkeeping, by cProfile"),
    Headline("serve_batching.json", "batched / unbatched @c16 (requests/s)",
             "Ray Serve `@serve.batch` (16, 0.1 s) vs unbatched, concurrency 16", ">= 4",
             "run to run on a shared 2-core machine it measured 3.5–4.3×; batches averaged 12.9 of 16"),
    Headline("serve_batching.json", "serve batched @c16 / bare @b16 (captions/s)",
             "Ray Serve at concurrency 16 / the bare captioning function at batch 16", ">= 0.7",
             "per request ~100 ms is generate, the rest the batch wait, two actor hops, queueing and"
             " the HTTP proxy, all on the same 2 cores"),
    Headline("train_step.json", "baseline / distill_two_passes (steps/s): cost of a DistillCaps step",
             "a DistillCaps training step's cost vs the baseline's"),
    Headline("train_step.json", "epoch_cache / epoch_no_cache (rows/s)",
             "epoch with vs without the frozen-feature cache"),
    Headline("data_pipeline.json", "pipeline / training (rows/s): headroom",
             "Ray Data pipeline alone vs training's consumption", ">= 2"),
    Headline("retrieval_index.json", "torch_topk / faiss_flat @10000 batch 64 (q/s)",
             "retrieval at 10k captions, 64 queries: torch matmul+topk vs faiss flat"),
)  # fmt: skip


def target_met(value: float, target: str) -> bool:
    op, bound = target.split()
    return value <= float(bound) if op == "<=" else value >= float(bound)


def cider(row: dict, seed: str | None = None) -> float:
    return 100 * (row["per_seed"][seed] if seed else row["mean"])["cider_d"]


def mean_std(row: dict) -> str:
    std = row["std"].get("cider_d")
    return f"{cider(row):.1f}" + ("" if std is None else f" ± {100 * std:.1f}")


def verdict(rows: dict[str, dict], claim: Claim) -> str:
    better, worse = rows.get(claim.better), rows.get(claim.worse)
    if not better or not worse:
        return "not run"
    seeds = sorted(set(better["per_seed"]) & set(worse["per_seed"]), key=int)
    gaps = [cider(better, s) - cider(worse, s) for s in seeds]
    held = sum(g > 0 for g in gaps)
    spread = max(100 * (better["std"].get("cider_d") or 0), 100 * (worse["std"].get("cider_d") or 0))
    mean_gap = cider(better) - cider(worse)
    by_seed = ", ".join(f"{g:+.1f}" for g in gaps)
    if held == len(seeds) and mean_gap > spread:
        return f"**shown**: in {held}/{len(seeds)} seeds ({by_seed})"
    if held == len(seeds):
        return f"in {held}/{len(seeds)} seeds ({by_seed}) but within the spread (±{spread:.1f}): not shown"
    if held == 0 and all(g < 0 for g in gaps) and -mean_gap > spread:
        return f"**the opposite shown**: the other way round in {len(seeds)}/{len(seeds)} seeds ({by_seed})"
    return f"**not shown**: in {held}/{len(seeds)} seeds ({by_seed})"


def collapse_note(row: dict) -> str:
    collapsed = [d for d in row.get("diversity", {}).values() if d.get("collapsed")]
    if not collapsed:
        return ""
    counts = sorted(d["distinct_captions"] for d in collapsed)
    span = f"{counts[0]}–{counts[-1]}" if counts[0] != counts[-1] else f"{counts[0]}"
    seeds = f"{len(collapsed)}/{len(row['diversity'])} seeds"
    return f" ⚠ collapsed in {seeds} ({span} distinct captions of {collapsed[0]['num_clips']})"


def load_rows(root: Path, name: str) -> tuple[dict, dict[str, dict]]:
    data = json.loads((root / "docs/results" / name / "results.json").read_text())
    return data, {row["name"]: row for row in data["rows"]}


def table5(root: Path) -> list[str]:
    data, rows = load_rows(root, "ablate_dda")
    seeds = ", ".join(str(s) for s in data["seeds"])
    lines = [
        f"**Table 5** (`python experiments/ablate_dda.py`; CIDEr-D in %, mean ± std over seeds {seeds};"
        " [results](docs/results/ablate_dda/results.md)):",
        "",
        "| row | ours | paper, Clotho |",
        "| --- | --- | --- |",
    ]
    for name, label in TABLE5_ROWS.items():
        if name in rows:
            paper = rows[name].get("paper", {}).get("Clotho", {}).get("cider_d")
            ours = mean_std(rows[name]) + collapse_note(rows[name])
            lines.append(f"| {label} | {ours} | {'—' if paper is None else paper} |")
    lines += ["", *claims(rows, TABLE5_CLAIMS)]
    return lines


def claims(rows: dict[str, dict], chosen: tuple[Claim, ...]) -> list[str]:
    lines = []
    for claim in chosen:
        figures = ""
        if claim.better in rows and claim.worse in rows:
            figures = f" ({mean_std(rows[claim.better])} vs {mean_std(rows[claim.worse])})"
        lines.append(f"- {claim.text}{figures}: {verdict(rows, claim)}")
    return lines


def fft(root: Path) -> list[str]:
    data, rows = load_rows(root, "ablate_fft")
    head = (
        f"**FFT adapter** (`python experiments/ablate_fft.py`, {len(data['seeds'])} seeds;"
        " [all four variants](docs/results/ablate_fft/results.md)):"
    )
    lines = [head, *claims(rows, FFT_CLAIMS)]
    _, table5_rows = load_rows(root, "ablate_dda")
    ours, theirs = rows.get("paper/no-rag"), table5_rows.get("distill/no-rag")
    if ours and theirs and ours["per_seed"] != theirs["per_seed"]:  # same configuration, another run
        lines.append(
            f"- its `paper` rows are a separate run of Table 5's DistillCaps configuration"
            f" ({mean_std(ours)} here vs {mean_std(theirs)} there, without retrieval)"
        )
    return lines


def cross_domain(root: Path) -> list[str]:
    data, rows = load_rows(root, "cross_domain")
    head = (
        f"**Cross-domain**, paper Table 3's claim (`python experiments/cross_domain.py`,"
        f" {len(data['seeds'])} seeds; [results](docs/results/cross_domain/results.md)):"
    )
    return [head, *claims(rows, CROSS_CLAIMS)]


def inference_time(root: Path) -> list[str]:
    data, rows = load_rows(root, "inference_time")
    extra = data["extra"]
    without, with_ = (rows[n]["mean"]["seconds"] for n in ("without_retrieval", "with_retrieval"))
    # the median of the per-repeat ratios (both sides timed back to back) where the file has it
    ratio = extra.get("ratio_with_over_without_paired_median", extra["ratio_with_over_without"])
    shared = ", the encoder's pass shared with the CLAP query" if extra.get("encoder_pass_shared") else ""
    return [
        f"**Inference time** (`python experiments/inference_time.py`, {extra['clips']} clips at batch"
        f" {extra['batch_size']}, {len(data['seeds'])} repetitions): {without:.2f} s without retrieval,"
        f" {with_:.2f} s with it{shared}: **{ratio:.2f}×** (target ≤ 1.3×; the paper, against a"
        f" RAG pipeline: {extra['paper_ratio_clotho']:.1f}× Clotho, {extra['paper_ratio_audiocaps']:.1f}×"
        " AudioCaps)."
    ]


def premise(root: Path) -> list[str]:
    """The method's premise on our data: the LM reads the captions in its prompt, so the teacher
    (retrieved captions in its prompt) ends below the student in validation loss."""
    parts = []
    for name, label in (("tiny", "the tiny Llama"), ("smol", "SmolLM2-135M zero-shot (`--config smol`)")):
        path = root / "docs/results/context_diagnostic" / f"{name}.json"
        if path.is_file():
            d = json.loads(path.read_text())
            ce = d["context_ce"]
            parts.append(
                f"{label}: own captions {ce['own']:.2f}, retrieved {ce['retrieved']:.2f}, random clip's"
                f" {ce['random']:.2f}, none {ce['none']:.2f}; copying probe {d['induction_ce']:.2f}"
            )
    data, _ = load_rows(root, "ablate_dda")
    distill = [t for t in data["trainings"] if t["key"] == "distill" and t.get("val_loss_teacher")]
    below = sum(t["val_loss_teacher"] < t["val_loss_student"] for t in distill)
    teacher = sorted(t["val_loss_teacher"] for t in distill)
    student = sorted(t["val_loss_student"] for t in distill)
    return [
        "**The premise** (`distillcaps diagnose context`, caption CE in nats per token;"
        " [docs/model.md](docs/model.md)): " + "; ".join(parts) + ". In "
        f"{below}/{len(distill)} distill trainings of Table 5 the teacher's final validation loss is below"
        f" the student's ({teacher[0]:.3f}–{teacher[-1]:.3f} against {student[0]:.3f}–{student[-1]:.3f})."
    ]


def benchmarks(root: Path) -> list[str]:
    lines = [
        "**Hot paths** (`python benchmarks/run_all.py --quick`; median ratio of ≥ 5 side-by-side"
        " repetitions on a shared 2-core machine; [docs/benchmarks.md](docs/benchmarks.md)):",
        "",
        "| what | ratio | target |",
        "| --- | --- | --- |",
    ]
    for h in HEADLINES:
        path = root / "benchmarks/results" / h.path
        found = (
            [r for r in json.loads(path.read_text())["ratios"] if r["name"] == h.ratio]
            if path.is_file()
            else []
        )
        if not found:
            lines.append(f"| {h.label} | not measured | {h.target or '—'} |")
            continue
        value = found[0]["median"]
        verdict = "—"
        if h.target:
            met = target_met(value, h.target)
            verdict = f"{h.target.replace('<=', '≤').replace('>=', '≥')}: " + (
                "met" if met else f"**missed** ({h.missed_because or 'see docs/benchmarks.md'})"
            )
        lines.append(f"| {h.label} | {value:.2f}× | {verdict} |")
    return lines


def serving_soak(root: Path) -> list[str]:
    path = root / "benchmarks/results/soak/serve_load.json"
    if not path.is_file():
        return ["**Serving under load**: not measured (benchmarks/serve_load.py)."]
    soak = json.loads(path.read_text())
    r, settings = soak["results"], soak["settings"]
    good = r["status_counts"].get("200", 0)
    model_mb = r["serve_peak_rss_mb"].get("ray::ServeReplica:distillcaps:CaptionModel")
    return [
        f"**Serving under load** (`benchmarks/serve_load.py --bad-share {settings['bad_share']}`;"
        " [docs/serving.md](docs/serving.md)): "
        f"{r['responses']:,} requests at concurrency {settings['concurrency']}, {r['bad_uploads']} of them"
        f" malformed: {r['num_5xx']} × 5xx, {r['num_4xx']} JSON 4xx, {good} captioned;"
        f" {r['throughput_rps']:.1f} req/s, p99 {r['latency_ms']['p99'] / 1000:.1f} s"
        + (f"; model replica peak RSS {model_mb:.0f} MB." if model_mb else ".")
    ]


def render(root: Path) -> str:
    sections = [premise, table5, fft, cross_domain, inference_time, benchmarks, serving_soak]
    body = "\n\n".join("\n".join(section(root)) for section in sections)
    return f"{BEGIN}\n{body}\n{END}"


def replace_block(text: str, block: str) -> str:
    if BEGIN not in text or END not in text:
        raise ValueError(f"README.md has no results block: add the lines {BEGIN!r} and {END!r}")
    head, rest = text.split(BEGIN, 1)
    return head + block + rest.split(END, 1)[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="render the README's results block from result files")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository (default: .)")
    parser.add_argument("--check", action="store_true", help="exit 1 when README.md's block is stale")
    args = parser.parse_args(argv)
    readme = args.root / "README.md"
    text = readme.read_text()
    fresh = replace_block(text, render(args.root))
    if args.check:
        if fresh != text:
            print(
                "README.md's results block is stale: python -m distillcaps.experiments.summary",
                file=sys.stderr,
            )
            return 1
        return 0
    readme.write_text(fresh)
    print(f"rendered the results block of {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
