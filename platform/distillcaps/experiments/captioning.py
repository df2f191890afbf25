"""Caption a whole split with a loaded student, with or without online retrieval.

Used where the experiment itself must control retrieval: inference timing (CLAP audio encoding +
index search + the longer prompt are part of the timed work) and out-of-domain evaluation (the
datastore comes from the training domain, not from the evaluated data).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from distillcaps.config import Config


@dataclass
class SplitAudio:
    """Every clip of a split, decoded once and cropped/padded deterministically (evaluation)."""

    records: list[Any]  # ClipRecord
    waves: torch.Tensor  # (N, S) float, 16 kHz
    lengths: torch.Tensor  # (N,) long, valid samples per row

    def __len__(self) -> int:
        return len(self.records)


def load_split(cfg: Config, subset: str) -> SplitAudio:
    from distillcaps.data import crop_or_pad, load_audio, resolve_dataset_dir
    from distillcaps.data.usable import print_skipped, usable_records

    records, skipped = usable_records(cfg, subset)  # data.on_bad_audio, as every other stage
    print_skipped(skipped, f"subset {subset!r}")
    if not records:
        raise ValueError(f"subset {subset!r} of {resolve_dataset_dir(cfg)} has no usable clips")
    num_samples = int(cfg.data.max_seconds * cfg.data.sample_rate)
    waves, lengths = [], []
    for record in records:
        wave, valid = crop_or_pad(
            load_audio(record.path, cfg.data.sample_rate), num_samples, random_crop=False
        )
        waves.append(wave)
        lengths.append(valid)
    # padded to data.max_seconds like distillcaps.evaluation's batches, so both see the same input
    return SplitAudio(records, torch.stack(waves), torch.tensor(lengths, dtype=torch.long))


def caption_split(
    model: Any,
    split: SplitAudio,
    *,
    batch_size: int,
    retriever: Any | None = None,
    top_k: int = 3,
) -> list[str]:
    """One caption per clip; with a retriever, the teacher prompt filled by online retrieval
    (``caption_with_retrieval``: one encoder pass where the encoder is the CLAP audio tower)."""
    from distillcaps.retrieval.online import caption_with_retrieval

    captions: list[str] = []
    with torch.inference_mode():
        for start in range(0, len(split), batch_size):
            audio = split.waves[start : start + batch_size]
            lengths = split.lengths[start : start + batch_size]
            if retriever is not None:
                captions.extend(caption_with_retrieval(model, retriever, audio, lengths, top_k))
            else:
                batch: dict[str, Any] = {"audio": audio, "audio_lengths": lengths}
                captions.extend(model.generate(batch, rag=False))
    return captions


def write_predictions_csv(records: list[Any], captions: list[str], path: Path) -> Path:
    """DCASE task-6 layout: file_name,caption_predicted."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", "caption_predicted"])
        writer.writerows((r.fname, c) for r, c in zip(records, captions, strict=True))
    return path


@dataclass
class DatastoreEvalResult:
    """Same fields as distillcaps.evaluation's EvalResult, for the runner."""

    metrics: dict[str, float]
    unavailable: dict[str, str]
    num_clips: int
    rag: bool
    predictions_csv: Path
    baselines: dict[str, Any] = field(default_factory=dict)


def evaluate_with_training_datastore(
    checkpoint: Path,
    cfg: Config,
    *,
    subset: str,
    rag: bool,
    output_dir: Path,
    run_id: str | None = None,
    training_cfg: Config | None = None,
) -> DatastoreEvalResult:
    """Score a checkpoint on ``cfg``'s data; with ``rag``, retrieve from ``training_cfg``'s datastore.

    Table 3's rule: out of domain, the datastore is the training domain's training captions (and its
    CLAP), never the evaluated domain's.
    """
    from distillcaps.evaluation.metrics import score_captions
    from distillcaps.model.distillcaps_model import DistillCapsModel
    from distillcaps.retrieval import Retriever

    model = DistillCapsModel.load_checkpoint(checkpoint)
    model.eval()
    split = load_split(cfg, subset)
    retriever = Retriever.from_config(training_cfg or cfg) if rag else None
    captions = caption_split(
        model, split, batch_size=cfg.eval.batch_size, retriever=retriever, top_k=cfg.retrieval.top_k
    )
    scored = score_captions(captions, [list(r.captions) for r in split.records], cfg)
    csv_path = write_predictions_csv(split.records, captions, Path(output_dir) / "predictions.csv")
    if run_id:
        from mlflow.tracking import MlflowClient

        from distillcaps.tracking import tracking_uri

        MlflowClient(tracking_uri(cfg)).log_artifact(run_id, str(csv_path))
    return DatastoreEvalResult(dict(scored.metrics), dict(scored.unavailable), len(split), rag, csv_path)
