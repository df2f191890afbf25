"""distillcaps caption: files are decoded into batches padded to their longest clip (at most
data.max_seconds) and captioned through caption_clips, with online retrieval under --rag."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import soundfile as sf

import distillcaps.commands.caption as caption_command
import distillcaps.retrieval.retriever as retriever_module
import distillcaps.standins.ensure as standins_module
from distillcaps.config import load_config


def test_caption_files_batches_the_files_and_goes_through_caption_clips(tmp_path, monkeypatch):
    files = []
    for name, seconds in (("a.wav", 0.25), ("b.wav", 0.5), ("c.wav", 2.0)):
        sf.write(tmp_path / name, np.full(int(seconds * 16_000), 0.1, dtype="float32"), 16_000)
        files.append(tmp_path / name)
    model = SimpleNamespace(cfg=load_config("tiny", ["data.max_seconds=1.0", "retrieval.top_k=2"]))
    calls = []

    def spy(model_arg, batches, **options):
        batches = list(batches)
        calls.append(([(tuple(b.audio.shape), b.audio_lengths.tolist()) for b in batches], options))
        return [f"caption {n}" for b in batches for n in b.audio_lengths.tolist()]

    monkeypatch.setattr(caption_command, "caption_clips", spy)
    retriever = object()
    monkeypatch.setattr(retriever_module.Retriever, "from_config", classmethod(lambda cls, cfg: retriever))
    built = []  # the retriever's tiny CLAP is built first (here: recorded, not trained)
    monkeypatch.setattr(standins_module, "ensure_standins", lambda cfg, names=None: built.append(names))

    assert caption_command.caption_files(model, files, rag=False, batch_size=2) == [
        "caption 4000",
        "caption 8000",
        "caption 16000",
    ]
    caption_command.caption_files(model, files, rag=True, batch_size=2)

    shapes, options = calls[0]
    assert shapes == [((2, 8_000), [4_000, 8_000]), ((1, 16_000), [16_000])]  # 2 s cropped to 1 s
    assert options == {"rag": False, "retriever": None, "top_k": 2}
    assert calls[1][1] == {"rag": True, "retriever": retriever, "top_k": 2}
    assert built == [["tiny-clap"]]
