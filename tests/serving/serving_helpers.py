"""Helpers for the serving tests: audio bytes, free ports, stand-in serving options."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from distillcaps.ports import free_port  # noqa: F401  (the tests import it from here)

MODEL_NAME = "distillcaps-student"
DATASTORE = ["a high whistle over traffic", "a low hum of an engine", "a middle voice talking"]


def tone(
    freq: float = 440.0, sample_rate: int = 16_000, seconds: float = 1.0, channels: int = 1
) -> np.ndarray:
    """(S, C) float32 sine tone."""
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    wave = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(wave[:, None], channels, axis=1)


def encode(
    samples: np.ndarray, sample_rate: int = 16_000, fmt: str = "WAV", subtype: str | None = None
) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, sample_rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def serving_options(model_registry: dict, **changes) -> dict:
    """ServingConfig fields that load the champion from the test registry, with small limits."""
    options = {
        "model_uri": f"models:/{MODEL_NAME}@champion",
        "tracking_uri": model_registry["tracking_uri"],
        "backend": "distillcaps",
        "plugin_modules": ["standin_backend"],  # so the stand-in can be switched to (rag tests)
        "max_upload_bytes": 1_000_000,  # small limits keep the over-limit requests small
        "max_duration_s": 5.0,
        "batch_wait_timeout_s": 0.2,
    }
    options.update(changes)
    return options
