"""Audio for CLAP embedding: decoded, cropped at 0 to max_seconds, padded to the batch's longest clip."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from distillcaps.data.audio import load_waveforms


def clip_samples(sample_rate: int, max_seconds: float) -> int:
    return int(round(sample_rate * max_seconds))


def load_padded(
    paths: Sequence[str | Path], sample_rate: int, max_seconds: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """-> waveforms (B, S) float32, lengths (B,) int64 valid samples; S is the longest clip's
    length, at most max_seconds (`distillcaps.data.audio.pad_waveforms`)."""
    return load_waveforms(paths, sample_rate, max_samples=clip_samples(sample_rate, max_seconds))
