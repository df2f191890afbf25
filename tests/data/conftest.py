"""Small fixtures for the data tests, made in tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


def write_tone(
    path: Path, seconds: float = 0.5, sr: int = 16_000, freq: float = 440.0, channels: int = 1
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    wave = 0.5 * np.sin(2 * np.pi * freq * t)
    data = np.stack([wave] * channels, axis=1) if channels > 1 else wave
    sf.write(path, data, sr, subtype="PCM_16")
    return path


@pytest.fixture
def tone():
    """write_tone(path, seconds=0.5, sr=16000, freq=440, channels=1) -> path"""
    return write_tone
