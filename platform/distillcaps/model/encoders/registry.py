"""`AUDIO_ENCODERS` (name -> loader from the full Config) and `build_audio_encoder(cfg)`."""

from __future__ import annotations

from collections.abc import Callable

from distillcaps.model.encoders.base import AudioEncoder
from distillcaps.model.encoders.ced import CEDEncoder
from distillcaps.model.encoders.tiny import TinyAudioEncoder
from distillcaps.model.standin_folders import TINY_CLAP_AUDIO_DIR, built_tiny_clap
from distillcaps.registry import Registry

AUDIO_ENCODERS: Registry[Callable[..., AudioEncoder]] = Registry("audio encoder")


@AUDIO_ENCODERS.register("tiny")
def load_tiny_encoder(cfg) -> AudioEncoder:
    """`model.encoder.checkpoint` if set, else the tiny CLAP's audio tower from its cache folder
    (built by `distillcaps.standins.ensure_standins(cfg)`; StandinMissingError if it is not)."""
    checkpoint = cfg.model.encoder.checkpoint or built_tiny_clap(cfg) / TINY_CLAP_AUDIO_DIR
    return TinyAudioEncoder.from_pretrained(checkpoint)


@AUDIO_ENCODERS.register("ced")
def load_ced_encoder(cfg) -> AudioEncoder:
    if not cfg.model.encoder.checkpoint:
        raise ValueError(
            "model.encoder.checkpoint must point at a CED state dict when model.encoder.name=ced"
        )
    return CEDEncoder.from_checkpoint(cfg.model.encoder.checkpoint)


def build_audio_encoder(cfg) -> AudioEncoder:
    """The configured encoder, frozen (no grad, pinned eval mode) when `model.encoder.frozen`."""
    encoder_cfg = cfg.model.encoder
    encoder = AUDIO_ENCODERS.get(encoder_cfg.name)(cfg)
    if encoder.dim != encoder_cfg.dim:
        raise ValueError(
            f"model.encoder.dim={encoder_cfg.dim} but the {encoder_cfg.name!r} encoder loaded from "
            f"{encoder_cfg.checkpoint or 'its default weights'} has dim {encoder.dim}; "
            f"set model.encoder.dim={encoder.dim}"
        )
    if encoder_cfg.frozen:
        encoder.freeze()
    return encoder
