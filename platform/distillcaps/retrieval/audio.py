"""Audio for CLAP embedding: decode with the data room's loader, crop/pad deterministically, stack."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch


def clip_samples(sample_rate: int, max_seconds: float) -> int:
    return int(round(sample_rate * max_seconds))


def load_padded(
    paths: Sequence[str | Path], sample_rate: int, max_seconds: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode each file, crop deterministically to max_seconds, pad the batch to its longest.

    -> waveforms (B, S) float, lengths (B,) long valid samples.
    """
    from distillcaps.data import crop_or_pad, load_audio

    limit = clip_samples(sample_rate, max_seconds)
    waves = [load_audio(Path(p), sample_rate=sample_rate) for p in paths]
    longest = max(1, min(limit, max(int(w.shape[0]) for w in waves)))
    rows, lengths = [], []
    for wave in waves:
        row, valid = crop_or_pad(wave, longest, random_crop=False)
        rows.append(row)
        lengths.append(valid)
    return torch.stack(rows), torch.tensor(lengths, dtype=torch.long)
