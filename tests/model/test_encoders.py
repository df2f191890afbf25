"""Audio encoders: band-major token grid, padding/batch independence, chunking, strict CED loading."""

from __future__ import annotations

import pytest
import torch

from distillcaps.config import Config
from distillcaps.model.encoders import (
    AUDIO_ENCODERS,
    CEDEncoder,
    TinyAudioEncoder,
    build_audio_encoder,
)
from distillcaps.model.encoders import registry as encoder_registry
from distillcaps.model.standin_folders import StandinMissingError

SR = 16000


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def tiny(**kw) -> TinyAudioEncoder:
    kw.setdefault("dim", 32)
    kw.setdefault("num_heads", 2)
    return TinyAudioEncoder(**kw).eval()


def test_registry_names():
    assert AUDIO_ENCODERS.names() == ["ced", "tiny"]


def test_tiny_shapes_grid_and_mask():
    enc = tiny()
    wave = torch.randn(2, 2 * SR)
    out = enc(wave, torch.tensor([2 * SR, SR]))
    # 2 s -> 201 frames -> 12 time patches of 16 frames; 1 s -> 101 frames -> 6
    assert out.grid == (4, 12)
    assert out.tokens.shape == (2, 48, 32)
    assert out.mask.dtype == torch.bool and out.mask.shape == (2, 48)
    assert out.mask[0].all()
    per_band = out.mask[1].view(4, 12)  # band-major: every band has the same 6 valid time patches
    assert per_band[:, :6].all() and not per_band[:, 6:].any()


def test_tokens_are_band_major():
    enc = tiny(depth=0)
    with torch.no_grad():
        enc.patch_embed.proj.weight.zero_()
        enc.patch_embed.proj.bias.zero_()
        enc.time_pos_embed.zero_()
        enc.time_pos_embed[0, 0, 0, :] = torch.arange(enc.time_pos_embed.shape[-1]).float()
        enc.freq_pos_embed.zero_()
        enc.freq_pos_embed[0, 1, :, 0] = 100.0 * torch.arange(4).float()
    enc.norm = torch.nn.Identity()
    out = enc(torch.randn(1, SR))  # 6 time patches
    bands, T = out.grid
    index = torch.arange(bands * T)
    assert torch.equal(out.tokens[0, :, 0], (index % T).float())  # time = index mod T
    assert torch.equal(out.tokens[0, :, 1], 100.0 * (index // T).float())  # band = index // T


def test_padding_and_batch_mates_do_not_change_real_tokens():
    enc = tiny()
    short = torch.randn(1, SR)
    alone = enc(short)
    padded = torch.cat([short, torch.zeros(1, 2 * SR)], dim=1)
    batch = torch.cat([padded, torch.randn(1, 3 * SR)], dim=0)
    together = enc(batch, torch.tensor([SR, 3 * SR]))
    real = together.tokens[0][together.mask[0]]
    assert torch.allclose(real, alone.tokens[0], atol=1e-5)


def test_long_inputs_are_chunked_along_time_per_band():
    enc = tiny(target_length=64)  # 4 time patches per chunk
    out = enc(torch.randn(2, 250 * 160))  # 251 frames -> chunks of 64, 64, 64, 59 -> 4 + 4 + 4 + 3 patches
    assert out.grid == (4, 15) and out.mask.all()

    spec = torch.randn(2, 1, 64, 251)  # work on the spectrogram so STFT edge effects stay out
    full = torch.tensor([251, 251])
    chunked = enc.encode_spectrogram(spec, full).tokens.view(2, 4, 15, -1)  # (B, bands, T, D)
    first = enc.encode_spectrogram(spec[..., :64], torch.tensor([64, 64])).tokens.view(2, 4, 4, -1)
    last = enc.encode_spectrogram(spec[..., 192:], torch.tensor([59, 59])).tokens.view(2, 4, 3, -1)
    assert torch.allclose(chunked[:, :, :4], first, atol=1e-5)
    assert torch.allclose(chunked[:, :, 12:], last, atol=1e-5)  # padded last chunk: padding masked
    # each batch item is encoded without the other
    second = enc.encode_spectrogram(spec[1:], full[1:]).tokens
    assert torch.allclose(chunked[1].flatten(0, 1), second[0], atol=1e-5)


def test_tiny_save_and_load_round_trip(tmp_path):
    enc = tiny()
    enc.save_pretrained(tmp_path / "enc")
    assert sorted(p.name for p in (tmp_path / "enc").iterdir()) == ["config.json", "model.safetensors"]
    loaded = TinyAudioEncoder.from_pretrained(tmp_path / "enc").eval()
    wave = torch.randn(1, SR)
    assert torch.equal(enc(wave).tokens, loaded(wave).tokens)
    assert loaded.dim == 32


def ced_standin(tmp_path, **kw):
    ced = CEDEncoder(dim=32, depth=2, num_heads=1, num_classes=5, **kw).eval()
    path = tmp_path / "ced.pt"
    torch.save({"model": ced.state_dict()}, path)  # the original training dumps wrap it like this
    return ced, path


def test_ced_state_dict_has_the_original_key_names(tmp_path):
    keys = set(CEDEncoder(dim=32, depth=1, num_heads=1).state_dict())
    for key in [
        "front_end.0.spectrogram.window",
        "front_end.0.mel_scale.fb",
        "init_bn.1.weight",
        "init_bn.1.running_mean",
        "patch_embed.proj.weight",
        "time_pos_embed",
        "freq_pos_embed",
        "blocks.0.norm1.weight",
        "blocks.0.attn.qkv.weight",
        "blocks.0.attn.qkv.bias",
        "blocks.0.attn.proj.weight",
        "blocks.0.mlp.fc1.weight",
        "blocks.0.mlp.fc2.weight",
        "norm.weight",
        "outputlayer.0.weight",
        "outputlayer.1.weight",
    ]:
        assert key in keys
    ced = CEDEncoder(dim=32, depth=1, num_heads=1)
    assert ced.time_pos_embed.shape == (1, 32, 1, 63)  # 1012 frames // 16
    assert ced.freq_pos_embed.shape == (1, 32, 4, 1)


def test_ced_loads_a_stand_in_checkpoint(tmp_path):
    ced, path = ced_standin(tmp_path)
    loaded = CEDEncoder.from_checkpoint(path, num_heads=1).eval()
    assert (loaded.dim, len(loaded.blocks)) == (32, 2)
    wave = torch.randn(2, SR)
    assert torch.equal(ced(wave).tokens, loaded(wave).tokens)


def test_ced_strict_loading_names_bad_keys(tmp_path):
    ced, path = ced_standin(tmp_path)
    state = ced.state_dict()
    del state["blocks.1.attn.qkv.bias"]
    state["head.extra"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(
        ValueError, match=r"missing keys \['blocks.1.attn.qkv.bias'\].*unexpected keys \['head.extra'\]"
    ):
        CEDEncoder.from_checkpoint(path, num_heads=1)


class NotATensor:
    """An arbitrary pickled object: weights_only loading must refuse it."""


def test_ced_refuses_to_unpickle_objects(tmp_path):
    ced, path = ced_standin(tmp_path)
    torch.save({"model": ced.state_dict(), "extra": NotATensor()}, path)
    with pytest.raises(ValueError, match="weights_only"):
        CEDEncoder.from_checkpoint(path)


def test_ced_loads_safetensors(tmp_path):
    from safetensors.torch import save_file

    ced, _ = ced_standin(tmp_path)
    save_file({k: v.contiguous() for k, v in ced.state_dict().items()}, str(tmp_path / "ced.safetensors"))
    loaded = CEDEncoder.from_checkpoint(tmp_path / "ced.safetensors", num_heads=1)
    assert torch.equal(loaded.blocks[1].attn.qkv.weight, ced.blocks[1].attn.qkv.weight)


def make_cfg(name: str, checkpoint: str, dim: int = 32) -> Config:
    cfg = Config()
    cfg.model.encoder.name = name
    cfg.model.encoder.checkpoint = checkpoint
    cfg.model.encoder.dim = dim
    return cfg


def test_build_ced_frozen(tmp_path):
    _, path = ced_standin(tmp_path)
    enc = build_audio_encoder(make_cfg("ced", str(path)))
    assert isinstance(enc, CEDEncoder)
    assert not any(p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.training and not enc.init_bn[1].training  # frozen stays in eval mode


def test_build_tiny_from_tiny_clap_and_dim_check(tmp_path, monkeypatch):
    tiny().save_pretrained(tmp_path / "clap" / "audio_encoder")
    monkeypatch.setattr(encoder_registry, "built_tiny_clap", lambda cfg: tmp_path / "clap")
    enc = build_audio_encoder(make_cfg("tiny", ""))
    assert isinstance(enc, TinyAudioEncoder) and enc.frozen
    with pytest.raises(ValueError, match="model.encoder.dim=128"):
        build_audio_encoder(make_cfg("tiny", str(tmp_path / "clap" / "audio_encoder"), dim=128))


def test_the_tiny_entry_on_a_cold_cache_names_what_is_missing_and_trains_nothing(tmp_path):
    """No checkpoint and no tiny CLAP built: an error naming the folder and how to build it."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "dev.jsonl").write_text('{"audio": "a.wav", "captions": ["a dog barks"]}\n')
    cfg = make_cfg("tiny", "")
    cfg.data.dataset_dir, cfg.data.dataset_format = str(data), "jsonl"
    cfg.data.cache_dir = str(tmp_path / "cache")
    with pytest.raises(StandinMissingError, match="the tiny CLAP .*tiny-clap-.*ensure_standins"):
        build_audio_encoder(cfg)
    assert not any((tmp_path / "cache").iterdir())  # nothing trained, nothing written


def test_bfloat16_encoder_keeps_a_float32_front_end():
    enc = tiny().to(torch.bfloat16)
    out = enc(torch.randn(2, SR), torch.tensor([SR, SR // 2]))
    assert out.tokens.dtype == torch.bfloat16 and torch.isfinite(out.tokens.float()).all()
    assert enc.front_end[0].mel_scale.fb.dtype == torch.float32
