"""evaluate(checkpoint, cfg): caption every clip of a subset, score against all references, with baselines.

    result = evaluate(Path("runs/.../checkpoints/best"), cfg, subset="eval", rag=False, output_dir=out)
    result.metrics["cider_d"], result.baselines["most_frequent_caption"].metrics["cider_d"]

Writes to ``output_dir``: ``predictions.csv`` (DCASE task 6: ``file_name,caption_predicted``),
``metrics.json`` (``{"metrics", "unavailable", "num_clips", "rag", "diversity", "baselines", ...}``;
"diversity" is the collapse detector's figures, ``distillcaps.evaluation.diversity``) and
``samples.json`` (prediction next to references and retrieved captions). Two baselines are scored
with every evaluation, so the numbers mean something:
  - most_frequent_caption: the training split's most frequent caption, for every clip;
  - top1_retrieved: the nearest neighbour's caption (the first precomputed retrieved caption).
The model is rebuilt from the checkpoint's own config; ``cfg`` says which data to caption.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distillcaps.data.batches import DecodeAudio, ModelBatch, num_samples, to_model_batch
from distillcaps.data.paths import resolve_dataset_dir
from distillcaps.data.records import read_records
from distillcaps.data.usable import log_skipped, print_skipped, usable_records
from distillcaps.evaluation.captioning import caption_clips
from distillcaps.evaluation.diversity import DIVERSITY_METRICS, diversity_report
from distillcaps.evaluation.metrics import MetricsResult, score_captions
from distillcaps.tracking import RunLogger, tracking_uri

if TYPE_CHECKING:
    from distillcaps.config import Config


@dataclass
class EvalResult:
    metrics: dict[str, float]
    unavailable: dict[str, str]
    num_clips: int
    rag: bool
    predictions_csv: Path
    baselines: dict[str, MetricsResult] = field(default_factory=dict)
    baseline_unavailable: dict[str, str] = field(default_factory=dict)  # baseline -> why not computed
    skipped: list = field(default_factory=list)  # clips dropped by data.on_bad_audio=skip
    diversity: dict[str, Any] = field(default_factory=dict)  # evaluation.diversity.diversity_report


# Baseline scores depend only on the data: computed once per process (a run evaluates twice).
_BASELINE_MEMO: dict[str, Any] = {}


def evaluate(
    checkpoint: Path,
    cfg: Config,
    *,
    subset: str,
    rag: bool,
    output_dir: Path,
    run_id: str | None = None,
    log_metrics: bool = True,
) -> EvalResult:
    """``run_id`` receives the predictions, metrics.json and samples as artifacts; with
    ``log_metrics`` also the figures, keyed ``<subset>[_rag]_<metric>`` because a training run holds
    two evaluations (without and with retrieval). An experiment's row run holds one evaluation and
    logs its figures itself under plain keys, so it passes ``log_metrics=False``."""
    from distillcaps.retrieval.precompute import load_retrieved  # lazy: the retrieval pipeline: torch
    from distillcaps.standins import ensure_standins, load_trained_model  # lazy: torch, trains on a miss

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    root = resolve_dataset_dir(cfg)
    records, skipped = usable_records(cfg, subset)
    print_skipped(skipped, f"subset {subset!r}")
    if not records:
        raise ValueError(f"subset {subset!r} of {root} has no usable clips")
    ensure_standins(cfg, names=["tiny-clap"])  # the retrieval lists' CLAP
    retrieved = load_retrieved(cfg, subset)
    top_k = cfg.retrieval.top_k

    model = load_trained_model(checkpoint)
    model.eval()
    predictions = caption_records(model, records, retrieved, cfg, rag=rag, top_k=top_k)
    references = [list(r.captions) for r in records]
    scores = score_captions(predictions, references, cfg)
    diversity = diversity_report(predictions)

    baselines, baseline_unavailable = score_baselines(cfg, root, records, retrieved, references)

    csv_path = write_predictions_csv(output_dir / "predictions.csv", records, predictions)
    samples = sample_table(records, predictions, retrieved, top_k, cfg.eval.num_samples)
    (output_dir / "samples.json").write_text(json.dumps(samples, indent=1))
    result = EvalResult(
        scores.metrics,
        scores.unavailable,
        len(records),
        rag,
        csv_path,
        baselines,
        baseline_unavailable,
        skipped,
        diversity,
    )
    write_metrics_json(output_dir / "metrics.json", result, subset, checkpoint, scores.tokenization)
    if run_id:
        log_to_mlflow(cfg, run_id, result, output_dir, samples, subset, log_metrics)
        if cfg.data.on_bad_audio == "skip":
            log_skipped(tracking_uri(cfg), run_id, skipped, subset=subset)
    return result


def score_baselines(cfg: Config, root: Path, records, retrieved, references) -> tuple[dict, dict[str, str]]:
    """The data-only baselines' scores (memoised: they depend only on the data), and the reasons of
    those that cannot be computed."""
    baselines, unavailable = {}, {}
    for name, captions in baseline_captions(cfg, root, records, retrieved).items():
        if isinstance(captions, str):
            unavailable[name] = captions
            continue
        key = memo_key(cfg, captions, references)
        if key not in _BASELINE_MEMO:
            _BASELINE_MEMO[key] = score_captions(captions, references, cfg)
        baselines[name] = _BASELINE_MEMO[key]
    return baselines, unavailable


def write_metrics_json(path: Path, result: EvalResult, subset: str, checkpoint: Path, tokenization) -> None:
    payload = {
        "metrics": result.metrics,
        "unavailable": result.unavailable,
        "num_clips": result.num_clips,
        "rag": result.rag,
        "diversity": result.diversity,
        "subset": subset,
        "checkpoint": str(checkpoint),
        "tokenization": tokenization,
        "baselines": {
            name: {"metrics": b.metrics, "unavailable": b.unavailable} for name, b in result.baselines.items()
        },
        "baseline_unavailable": result.baseline_unavailable,
        "skipped_bad_audio": [{"fname": s.fname, "path": s.path, "reason": s.reason} for s in result.skipped],
    }
    path.write_text(json.dumps(payload, indent=1))


def caption_records(model, records, retrieved, cfg: Config, *, rag: bool, top_k: int) -> list[str]:
    """One caption per record (`caption_clips`), with the precomputed retrieved captions."""
    return caption_clips(model, record_batches(records, retrieved, cfg, rag=rag, top_k=top_k), rag=rag)


def record_batches(records, retrieved, cfg: Config, *, rag: bool, top_k: int) -> Iterator[ModelBatch]:
    """cfg.eval.batch_size records at a time, decoded as training decodes them (cropped at 0 to
    data.max_seconds), with their first ``top_k`` retrieved captions."""
    decode = DecodeAudio(cfg.data.sample_rate, num_samples(cfg), random_crop=False)
    for start in range(0, len(records), cfg.eval.batch_size):
        chunk = records[start : start + cfg.eval.batch_size]
        hits = [[h["caption"] for h in retrieved[r.fname]][:top_k] for r in chunk]
        if rag and any(not h for h in hits):
            missing = next(r.fname for r, h in zip(chunk, hits) if not h)
            raise ValueError(f"--rag: no retrieved captions for clip {missing!r}")
        batch = decode(
            {"fname": [r.fname for r in chunk], "path": [str(r.path) for r in chunk], "retrieved": hits}
        )
        yield to_model_batch(batch, grid=None)


def baseline_captions(cfg: Config, root: Path, records, retrieved) -> dict[str, list[str] | str]:
    """Baseline name -> one caption per clip, or a string saying why it cannot be computed."""
    out: dict[str, list[str] | str] = {}
    try:
        train = read_records(root, cfg.data.dataset_format, cfg.data.train_subset)
        counts = Counter(c.strip().lower() for r in train for c in r.captions)
        most_common = counts.most_common(1)[0][0] if counts else None
    except (FileNotFoundError, ValueError) as err:
        most_common, why = None, str(err)
    else:
        why = f"training subset {cfg.data.train_subset!r} has no captions"
    out["most_frequent_caption"] = [most_common] * len(records) if most_common else why
    top1 = [(retrieved[r.fname] or [{}])[0].get("caption") for r in records]
    if all(top1):
        out["top1_retrieved"] = top1
    else:
        out["top1_retrieved"] = "some clips have no retrieved captions"
    return out


def memo_key(cfg: Config, captions: list[str], references: list[list[str]]) -> str:
    payload = json.dumps([captions, references, cfg.eval.metrics, cfg.eval.java_path, cfg.eval.corenlp_dir])
    return hashlib.sha256(payload.encode()).hexdigest()


def write_predictions_csv(path: Path, records, predictions: list[str]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file_name", "caption_predicted"])
        for record, caption in zip(records, predictions, strict=True):
            writer.writerow([record.fname, caption])
    return path


def read_predictions_csv(path: Path) -> list[str]:
    """The captions of a predictions CSV, in its row order."""
    with open(path, newline="") as f:
        return [row["caption_predicted"] for row in csv.DictReader(f)]


def sample_table(records, predictions, retrieved, top_k: int, count: int) -> dict[str, list[str]]:
    rows = list(zip(records, predictions))[:count]
    return {
        "file_name": [r.fname for r, _ in rows],
        "prediction": [p for _, p in rows],
        "references": [" | ".join(r.captions) for r, _ in rows],
        "retrieved": [" | ".join(h["caption"] for h in retrieved[r.fname][:top_k]) for r, _ in rows],
    }


def log_to_mlflow(
    cfg: Config, run_id: str, result: EvalResult, output_dir: Path, samples, subset, log_metrics: bool
) -> None:
    logger = RunLogger(tracking_uri(cfg), run_id)
    if log_metrics:
        prefix = f"{subset}_rag" if result.rag else subset
        metrics = {f"{prefix}_{k}": v for k, v in result.metrics.items()}
        metrics.update({f"{prefix}_{name}": result.diversity[name] for name in DIVERSITY_METRICS})
        for name, baseline in result.baselines.items():  # the same keys from both evaluations
            metrics.update({f"{subset}_baseline_{name}_{k}": v for k, v in baseline.metrics.items()})
        logger.log_metrics(metrics)
    folder = f"eval/{subset}{'_rag' if result.rag else ''}"
    logger.log_artifact(output_dir / "predictions.csv", folder)
    logger.log_artifact(output_dir / "metrics.json", folder)
    logger.log_table(samples, f"{folder}/samples.json")
