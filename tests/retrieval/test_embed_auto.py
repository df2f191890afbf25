"""retrieval.embed_with=auto (the default) embeds in this process: the Ray Data stage runs on CPU
too, where it was the slower (distillcaps.precompute_engine)."""

from __future__ import annotations

import numpy as np

from distillcaps.config import load_config
from distillcaps.retrieval import embed


def test_auto_is_the_default_and_embeds_here(monkeypatch):
    cfg = load_config("tiny")
    assert cfg.retrieval.embed_with == "auto"
    calls = []
    for name in ("embed_records_ray", "embed_records_local"):

        def fake(cfg, clap, paths, _name=name):
            calls.append((_name, len(paths)))
            return np.zeros((len(paths), 4), np.float32)

        monkeypatch.setattr(embed, name, fake)
    out = embed.AUDIO_EMBEDDERS.get("auto")(cfg, None, ["a.wav"] * 600)
    assert out.shape == (600, 4) and calls == [("embed_records_local", 600)]
