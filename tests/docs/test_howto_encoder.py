"""docs/howto/add-an-encoder.md: its encoder and loader, run as written, pass the checks it asks for."""

from __future__ import annotations

import pytest
import torch
from howto_pages import registry_copy

from distillcaps.config import load_config
from distillcaps.model.distillcaps_model import AudioTokenizer
from distillcaps.model.encoders import registry


def test_the_mel_patch_encoder_of_the_page_builds_by_name_and_keeps_the_grid(run_page, monkeypatch):
    monkeypatch.setattr(registry, "AUDIO_ENCODERS", registry_copy(registry.AUDIO_ENCODERS))
    run_page("add-an-encoder.md")
    cfg = load_config("tiny", ["model.encoder.name=mel_patch", "model.encoder.dim=256"])
    encoder = registry.build_audio_encoder(cfg)
    assert encoder.frozen
    out = encoder(torch.randn(2, 32_000), torch.tensor([32_000, 16_000]))  # 2 s and 1 s of audio
    assert out.grid == (4, 12) and out.tokens.shape == (2, 48, 256)
    per_band = out.mask[1].view(4, 12)  # band-major: every band has the same valid time patches
    assert per_band[:, :6].all() and not per_band[:, 6:].any()
    audio, audio_mask = AudioTokenizer.from_config(cfg, encoder.dim, 128)(out.tokens, out.mask, out.grid)
    assert audio.shape == (2, 3, 128) and audio_mask.tolist() == [[True] * 3, [True, True, False]]
    with pytest.raises(ValueError, match="set model.encoder.dim=256"):
        registry.build_audio_encoder(load_config("tiny", ["model.encoder.name=mel_patch"]))
