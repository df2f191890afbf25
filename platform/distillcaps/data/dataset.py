"""A torch Dataset over clip records, with items as in aac-datasets.

    ds = AudioCaptionDataset(read_records(root, "clotho", "dev"), max_seconds=30.0, random_crop=True)
    ds[0] -> {"audio": (S,) float, "audio_length": int, "sr": 16000, "captions": [...], "fname": ...,
              "dataset": "clotho", "subset": "dev", "index": 0}

``rows="caption"`` gives one item per caption (training), ``rows="clip"`` one per clip with every
reference (evaluation). ``on_bad_audio="skip"`` checks every file up front, drops the bad ones and
reports them (``skipped`` + a logged warning); ``"error"`` raises BadAudioError when a bad file is met.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch.utils.data import Dataset

from distillcaps.data.audio import BadAudioError, check_audio, crop_or_pad, load_audio, pad_waveforms
from distillcaps.data.paths import resolve_dataset_dir
from distillcaps.data.records import ClipRecord, read_records

if TYPE_CHECKING:
    from distillcaps.config import Config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SkippedClip:
    fname: str
    path: Path
    reason: str


class AudioCaptionDataset(Dataset):
    def __init__(
        self,
        records: list[ClipRecord],
        *,
        sample_rate: int = 16_000,
        max_seconds: float | None = None,  # None: whole clips, unpadded
        random_crop: bool = False,  # True only in training; evaluation crops deterministically at 0
        rows: Literal["clip", "caption"] = "clip",
        on_bad_audio: Literal["error", "skip"] = "error",
        generator: torch.Generator | None = None,
    ) -> None:
        if on_bad_audio not in ("error", "skip"):
            raise ValueError(f"on_bad_audio must be 'error' or 'skip', got {on_bad_audio!r}")
        if rows not in ("clip", "caption"):
            raise ValueError(f"rows must be 'clip' or 'caption', got {rows!r}")
        self.sample_rate = sample_rate
        self.num_samples = None if max_seconds is None else int(round(max_seconds * sample_rate))
        self.random_crop = random_crop
        self.generator = generator
        self.skipped: list[SkippedClip] = []
        if on_bad_audio == "skip":
            records = self.drop_bad(records)
        self.records = records
        # (record position, caption position or None for all references)
        self.rows: list[tuple[int, int | None]] = (
            [(i, None) for i in range(len(records))]
            if rows == "clip"
            else [(i, j) for i, r in enumerate(records) for j in range(len(r.captions))]
        )

    @classmethod
    def from_config(cls, cfg: Config, role: Literal["train", "val", "eval"]) -> AudioCaptionDataset:
        """The configured subset for ``role``: training rows per caption with random crops,
        val/eval rows per clip with deterministic crops."""
        subset = getattr(cfg.data, f"{role}_subset")
        records = read_records(resolve_dataset_dir(cfg), cfg.data.dataset_format, subset)
        training = role == "train"
        return cls(
            records,
            sample_rate=cfg.data.sample_rate,
            max_seconds=cfg.data.max_seconds,
            random_crop=training,
            rows="caption" if training else "clip",
            on_bad_audio=cfg.data.on_bad_audio,
        )

    def drop_bad(self, records: list[ClipRecord]) -> list[ClipRecord]:
        kept = []
        for record in records:
            try:
                check_audio(record.path)
            except BadAudioError as err:
                self.skipped.append(SkippedClip(record.fname, record.path, err.reason))
                continue
            kept.append(record)
        if self.skipped:
            listed = "; ".join(f"{s.path} ({s.reason})" for s in self.skipped[:20])
            more = f"; ... and {len(self.skipped) - 20} more" if len(self.skipped) > 20 else ""
            log.warning(
                "on_bad_audio=skip: skipped %d of %d clips with bad audio: %s%s",
                len(self.skipped),
                len(records),
                listed,
                more,
            )
        return kept

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        record_position, caption_position = self.rows[i]
        record = self.records[record_position]
        wave = load_audio(record.path, self.sample_rate)  # (S,)
        length = wave.shape[0]
        if self.num_samples is not None:
            wave, length = crop_or_pad(
                wave, self.num_samples, random_crop=self.random_crop, generator=self.generator
            )
        captions = record.captions if caption_position is None else [record.captions[caption_position]]
        return {
            "audio": wave,
            "audio_length": length,
            "sr": self.sample_rate,
            "captions": captions,
            "fname": record.fname,
            "dataset": record.dataset,
            "subset": record.subset,
            "index": record.index,
        }


def collate_items(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch dataset items: audio zero-padded to the longest (`pad_waveforms`), with valid lengths.

    -> {"audio": (B, S) float, "audio_lengths": (B,) long, "sr": int, and lists for the rest}
    """
    audio, _ = pad_waveforms([item["audio"] for item in items])  # (B, S)
    # an item's own padding (max_seconds) is not audio: its audio_length says how much is
    lengths = torch.tensor([int(item["audio_length"]) for item in items], dtype=torch.long)  # (B,)
    batch: dict[str, Any] = {"audio": audio, "audio_lengths": lengths, "sr": items[0]["sr"]}
    for key in ("captions", "fname", "dataset", "subset", "index"):
        batch[key] = [item[key] for item in items]
    return batch
