"""Caption a whole split with a loaded student, with or without online retrieval.

Used where the experiment itself must control retrieval: inference timing (CLAP audio encoding +
index search + the longer prompt are part of the timed work) and out-of-domain evaluation (the
datastore comes from the training domain, not from the evaluated data).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from distillcaps.config import Config
from distillcaps.data.audio import load_waveforms
from distillcaps.data.batches import ModelBatch, num_samples
from distillcaps.data.paths import resolve_dataset_dir
from distillcaps.data.usable import print_skipped, usable_records
from distillcaps.evaluation.captioning import caption_clips
from distillcaps.evaluation.evaluate import write_predictions_csv
from distillcaps.evaluation.metrics import score_captions
from distillcaps.tracking import RunLogger, tracking_uri


@dataclass
class SplitAudio:
    """Every clip of a split, decoded once and cropped/padded deterministically (evaluation)."""

    records: list[Any]  # ClipRecord
    waves: torch.Tensor  # (N, S) float32 at data.sample_rate
    lengths: torch.Tensor  # (N,) int64, valid samples per row

    def __len__(self) -> int:
        return len(self.records)

    def batches(self, batch_size: int) -> Iterator[ModelBatch]:
        """The split in order, ``batch_size`` clips at a time."""
        for start in range(0, len(self), batch_size):
            rows = slice(start, start + batch_size)
            yield ModelBatch.from_waveforms(self.waves[rows], self.lengths[rows])


def load_split(cfg: Config, subset: str) -> SplitAudio:
    """The usable clips of ``subset`` (data.on_bad_audio), decoded and cropped at 0 or padded to
    data.max_seconds as evaluation's batches are, so both see the same input."""
    records, skipped = usable_records(cfg, subset)
    print_skipped(skipped, f"subset {subset!r}")
    if not records:
        raise ValueError(f"subset {subset!r} of {resolve_dataset_dir(cfg)} has no usable clips")
    waves, lengths = load_waveforms([r.path for r in records], cfg.data.sample_rate, num_samples(cfg))
    return SplitAudio(records, waves, lengths)


def caption_split(
    model: Any, split: SplitAudio, *, batch_size: int, retriever: Any | None = None, top_k: int = 3
) -> list[str]:
    """One caption per clip (`caption_clips`); with a retriever, the teacher prompt filled by
    online retrieval."""
    batches = split.batches(batch_size)
    return caption_clips(model, batches, rag=retriever is not None, retriever=retriever, top_k=top_k)


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
    from distillcaps.standins import build_retriever, load_trained_model  # lazy: torch and transformers

    model = load_trained_model(checkpoint)
    model.eval()
    split = load_split(cfg, subset)
    retriever = build_retriever(training_cfg or cfg) if rag else None
    captions = caption_split(
        model, split, batch_size=cfg.eval.batch_size, retriever=retriever, top_k=cfg.retrieval.top_k
    )
    scored = score_captions(captions, [list(r.captions) for r in split.records], cfg)
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    csv_path = write_predictions_csv(Path(output_dir) / "predictions.csv", split.records, captions)
    if run_id:
        RunLogger(tracking_uri(cfg), run_id).log_artifact(csv_path)
    return DatastoreEvalResult(dict(scored.metrics), dict(scored.unavailable), len(split), rag, csv_path)
