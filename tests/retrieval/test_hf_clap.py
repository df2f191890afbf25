"""hf-clap builds and embeds offline from a tiny random ClapModel saved with save_pretrained."""

from __future__ import annotations

import json

import pytest
import torch

from distillcaps.config import load_config
from distillcaps.retrieval.clap import CLAP_ENCODERS, build_clap


def make_tiny_hf_clap(directory):
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, RobertaTokenizer

    directory.mkdir(parents=True)
    letters = list("abcdefghijklmnopqrstuvwxyz") + ["Ġ" + c for c in "abcdefghijklmnopqrstuvwxyz"]
    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", "<mask>", "Ġ", *letters])}
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = RobertaTokenizer(str(directory / "vocab.json"), str(directory / "merges.txt"))
    config = ClapConfig(
        text_config=dict(
            vocab_size=len(vocab),
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=80,
            pad_token_id=1,
        ),
        audio_config=dict(
            hidden_size=32,
            patch_embeds_hidden_size=16,
            depths=[1, 1],
            num_attention_heads=[2, 2],
            window_size=4,
            spec_size=64,
            num_mel_bins=16,
            patch_stride=(4, 4),
            patch_size=4,
        ),
        projection_dim=16,
    )
    torch.manual_seed(0)
    ClapModel(config).save_pretrained(directory)
    ClapProcessor(
        feature_extractor=ClapFeatureExtractor(feature_size=16, max_length_s=1), tokenizer=tokenizer
    ).save_pretrained(directory)
    return directory


def test_hf_clap_embeds_offline(tmp_path):
    path = make_tiny_hf_clap(tmp_path / "clap")
    cfg = load_config(None, ["retrieval.clap=hf-clap", f"retrieval.clap_checkpoint={path}"])
    clap = build_clap(cfg)
    assert "hf-clap" in CLAP_ENCODERS
    assert clap.identity.startswith("hf-clap:")
    waves = torch.randn(2, 16_000) * 0.1
    audio = clap.embed_audio(waves, torch.tensor([16_000, 8_000]))
    text = clap.embed_text(["a dog barks", "rain falls on a roof"])
    assert audio.shape == (2, 16) and text.shape == (2, 16)
    assert torch.allclose(audio.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert torch.allclose(text.norm(dim=-1), torch.ones(2), atol=1e-5)
    # Deterministic: the same clip embeds the same way twice.
    assert torch.allclose(clap.embed_audio(waves[:1], torch.tensor([16_000])), audio[:1], atol=1e-5)


def test_hf_clap_missing_checkpoint_names_the_key(tmp_path):
    cfg = load_config(None, ["retrieval.clap=hf-clap", f"retrieval.clap_checkpoint={tmp_path}/nope"])
    with pytest.raises(FileNotFoundError, match="retrieval.clap_checkpoint"):
        build_clap(cfg)
