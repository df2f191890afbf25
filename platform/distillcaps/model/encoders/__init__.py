"""Audio encoders: band-major tokens on a (frequency band x time patch) grid, chosen by registry.

encoder = build_audio_encoder(cfg)          # cfg.model.encoder.name: "tiny" | "ced"
out = encoder(waveform, lengths)            # EncoderOutput(tokens, mask, grid)
"""

from distillcaps.model.encoders.base import (
    AudioEncoder,
    EncoderOutput,
    band_major_mask,
    load_state_dict_strict,
)
from distillcaps.model.encoders.ced import CEDEncoder
from distillcaps.model.encoders.registry import AUDIO_ENCODERS, build_audio_encoder
from distillcaps.model.encoders.tiny import TinyAudioEncoder

__all__ = [
    "AUDIO_ENCODERS",
    "AudioEncoder",
    "CEDEncoder",
    "EncoderOutput",
    "TinyAudioEncoder",
    "band_major_mask",
    "build_audio_encoder",
    "load_state_dict_strict",
]
