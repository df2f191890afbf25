"""A tiny real captioner backend for the serving tests, registered as "stand-in".

It reads its checkpoint dir (config.json: {"label": ...}; datastore.json: captions), measures each
waveform's dominant frequency and loudness, and says so; with rag it appends the datastore caption
whose pitch word matches. Deterministic, instant, and honest about its input, so the HTTP tests check
real behaviour without training a model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from distillcaps.serving.captioner import CAPTIONER_BACKENDS
from distillcaps.serving.options import DecodingOptions

NAME = "stand-in"


def pitch_word(wave: np.ndarray) -> str:
    spectrum = np.abs(np.fft.rfft(wave))
    hz = float(np.argmax(spectrum)) * 16_000 / max(len(wave), 1)
    return "low" if hz < 300 else "middle" if hz < 1500 else "high"


def write_standin_checkpoint(path: Path, label: str, datastore: list[str] | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"label": label}))
    (path / "datastore.json").write_text(json.dumps(datastore or []))
    return path


class StandInBackend:
    def __init__(self, checkpoint_dir: Path, *, retrieval: bool = False) -> None:
        self.label = json.loads((checkpoint_dir / "config.json").read_text())["label"]
        self.datastore = json.loads((checkpoint_dir / "datastore.json").read_text())
        has_store = retrieval and bool(self.datastore)
        self.rag_unavailable_reason = None if has_store else "this deployment has no datastore"

    def generate(self, waveforms: list[np.ndarray], rag: bool, decoding: DecodingOptions) -> list[str]:
        captions = []
        for wave in waveforms:
            loud = "loud" if float(np.sqrt(np.mean(wave**2))) > 0.1 else "quiet"
            text = f"a {loud} {pitch_word(wave)} tone ({self.label})"
            if rag:
                similar = [c for c in self.datastore if pitch_word(wave) in c] or self.datastore[:1]
                text += f", like {similar[0]}"
            if decoding.max_new_tokens is not None:
                text = " ".join(text.split()[: decoding.max_new_tokens])
            captions.append(text)
        return captions

    def summary(self) -> dict[str, Any]:
        return {"label": self.label, "datastore_size": len(self.datastore)}


if NAME not in CAPTIONER_BACKENDS:
    CAPTIONER_BACKENDS.register(NAME)(StandInBackend)
