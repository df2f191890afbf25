"""``tiny-clap``: the offline default backend, the tiny CLAP trained on the training split.

Loaded from ``retrieval.clap_checkpoint``, else from its cache folder (built by
``distillcaps.standins.ensure_standins(cfg)``; a ``StandinMissingError`` when it is not).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from distillcaps.model.encoders.base import EncoderOutput
from distillcaps.model.standin_folders import built_tiny_clap
from distillcaps.retrieval.clap.base import CLAP_ENCODERS, ClapEncoder, hash_files
from distillcaps.retrieval.clap.tiny_model import AUDIO_DIR, TinyClap

if TYPE_CHECKING:
    from distillcaps.config import Config


class TinyClapEncoder(ClapEncoder):
    name = "tiny-clap"

    def __init__(self, directory: Path, device: str = "cpu") -> None:
        self.directory = Path(directory)
        self.source = str(self.directory)
        self.device = torch.device(device)
        self.model = TinyClap.load(self.directory).to(self.device)
        weights = [p for p in self.directory.rglob("*.safetensors")] + [self.directory / "vocab.json"]
        self._identity = f"{self.name}:{hash_files(weights)}"

    @classmethod
    def from_config(cls, cfg: Config) -> TinyClapEncoder:
        checkpoint = cfg.retrieval.clap_checkpoint
        directory = Path(checkpoint) if checkpoint else built_tiny_clap(cfg)
        return cls(directory, device="cuda" if torch.cuda.is_available() else "cpu")

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def audio_encoder_dir(self) -> Path:
        return self.directory / AUDIO_DIR

    @torch.inference_mode()
    def embed_audio(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        lengths = lengths.to(self.device) if lengths is not None else None
        return self.model.embed_audio(waveforms.to(self.device).float(), lengths).cpu()

    @torch.inference_mode()
    def embed_text(self, captions: list[str]) -> torch.Tensor:
        return self.model.embed_text(list(captions)).cpu()

    def shares_audio_tower(self, encoder: torch.nn.Module) -> bool:
        # The tiny preset's frozen captioning encoder is this tower, loaded from audio_encoder/; a
        # retrained or different encoder differs in a weight and is refused here.
        tower = self.model.audio_encoder
        if type(encoder) is not type(tower) or encoder.training or tower.training:
            return False
        if getattr(encoder, "settings", None) != getattr(tower, "settings", None):
            return False
        ours, theirs = tower.state_dict(), encoder.state_dict()
        return ours.keys() == theirs.keys() and all(torch.equal(ours[k].cpu(), theirs[k].cpu()) for k in ours)

    @torch.inference_mode()
    def embed_encoder_output(self, encoded) -> torch.Tensor:
        tokens, mask = encoded.tokens.to(self.device), encoded.mask.to(self.device)  # (B, N, D), (B, N)
        return self.model.project_audio(EncoderOutput(tokens, mask, tuple(encoded.grid))).cpu()


CLAP_ENCODERS.register("tiny-clap")(TinyClapEncoder.from_config)
