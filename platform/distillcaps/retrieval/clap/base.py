"""The one interface every CLAP backend offers, and the registry that picks a backend by name.

A backend embeds 16 kHz audio and caption text into one L2-normalised space, and knows its
identity (backend name + a hash of its checkpoint) so that a datastore embedded with one CLAP is
never searched with another.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from distillcaps.registry import Registry

if TYPE_CHECKING:
    from distillcaps.config import Config

# name -> factory(cfg) -> ClapEncoder
CLAP_ENCODERS: Registry = Registry("CLAP encoder")


class ClapEncoder(ABC):
    """Audio/text dual encoder. Inputs are 16 kHz mono; backends resample internally if needed."""

    name: str = ""
    sample_rate: int = 16_000  # what embed_audio expects
    source: str = ""  # the checkpoint path it was loaded from (pins Ray actors to the same one)

    @property
    @abstractmethod
    def identity(self) -> str:
        """``<backend>:<checkpoint hash>``; stored with every datastore built by this encoder."""

    @abstractmethod
    def embed_audio(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, S) float 16 kHz, (B,) valid samples -> (B, E) L2-normalised."""

    @abstractmethod
    def embed_text(self, captions: list[str]) -> torch.Tensor:
        """list of B captions -> (B, E) L2-normalised."""

    def shares_audio_tower(self, encoder: torch.nn.Module) -> bool:
        """True when ``encoder`` computes exactly this CLAP's audio tower (same class, settings and
        weights, eval mode): its output can then be the query (``embed_encoder_output``) instead of a
        second pass over the audio. Backends whose tower is not a captioning encoder say False."""
        return False

    def embed_encoder_output(self, encoded) -> torch.Tensor:
        """EncoderOutput of the shared audio tower -> (B, E) L2-normalised, as ``embed_audio`` gives."""
        raise NotImplementedError(f"{self.name}: its audio tower is no captioning encoder")

    @property
    def slug(self) -> str:
        """Filesystem-safe identity, used as a cache folder name."""
        backend, _, digest = self.identity.partition(":")
        return f"{backend}-{digest[:16]}"


def build_clap(cfg: Config) -> ClapEncoder:
    """The CLAP backend named by ``cfg.retrieval.clap``."""
    return CLAP_ENCODERS.get(cfg.retrieval.clap)(cfg)


def hash_files(paths: Iterable[Path]) -> str:
    """sha256 over the bytes of the given files (sorted), as a checkpoint identity."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        digest.update(path.name.encode())
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x.float(), dim=-1)
