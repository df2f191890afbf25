"""``laion-clap``: the ``laion_clap`` package with a user-supplied checkpoint, read with
``torch.load(weights_only=True)`` (never laion-clap's own ``load_ckpt``, which unpickles anything).

``import laion_clap`` loads the roberta-base / bert-base-uncased / facebook/bart-base tokenizers
(and its CLAP class loads roberta-base weights) from the Hugging Face hub at import/build time.
Offline, those must already be in the HF cache and ``HF_HUB_OFFLINE=1`` must be set before the
process imports huggingface_hub, so this module imports laion_clap lazily, only when the backend is
chosen, and first checks the cache so the failure says which files are missing.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torchaudio

from distillcaps.retrieval.clap.base import CLAP_ENCODERS, ClapEncoder, hash_files, l2_normalize

if TYPE_CHECKING:
    from distillcaps.config import Config

# What laion_clap fetches from the hub at import / model build time (repo id -> files it needs).
REQUIRED_HUB_FILES = {
    "roberta-base": ("config.json", "vocab.json", "merges.txt"),
    "bert-base-uncased": ("vocab.txt",),
    "facebook/bart-base": ("vocab.json", "merges.txt"),
}
MODEL_RATE = 48_000  # laion-clap's audio_cfg sample rate


def missing_hub_files() -> list[str]:
    from huggingface_hub import try_to_load_from_cache

    missing = []
    for repo, names in REQUIRED_HUB_FILES.items():
        for name in names:
            if not isinstance(try_to_load_from_cache(repo, name), str):
                missing.append(f"{repo}/{name}")
    return missing


def import_laion_clap():
    if os.environ.get("HF_HUB_OFFLINE") not in ("1", "true", "True", "YES", "yes"):
        raise RuntimeError(
            "laion-clap: set HF_HUB_OFFLINE=1 before starting "
            "(import laion_clap otherwise retries the hub for minutes)"
        )
    missing = missing_hub_files()
    if missing:
        home = os.environ.get("HF_HOME", "~/.cache/huggingface")
        raise FileNotFoundError(
            f"laion-clap needs these files in the local HF cache (HF_HOME={home}): {', '.join(missing)}"
        )
    import laion_clap

    return laion_clap


# Keys laion-clap's load_ckpt drops: transformers >= 4.31 keeps RoBERTa's position_ids in a buffer
# that is no longer part of the state dict.
DROPPED_KEYS = ("text_branch.embeddings.position_ids",)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The model weights of a laion-clap checkpoint: ``{"state_dict": ...}`` as its trainer saves it
    (keys prefixed ``module.`` under DDP) or a bare state dict, read with ``weights_only=True``."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{path}: not a plain checkpoint of tensors, numbers and strings; refused rather than "
            f"unpickled with code execution (torch.load(weights_only=True): {err})"
        ) from None
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: no state dict of tensors in it (laion-clap saves {{'state_dict': ...}})")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    return {k: v for k, v in state.items() if k not in DROPPED_KEYS}


class LaionClapEncoder(ClapEncoder):
    name = "laion-clap"

    def __init__(
        self,
        checkpoint: str | Path,
        amodel: str = "HTSAT-tiny",
        enable_fusion: bool = False,
        device: str = "cpu",
    ) -> None:
        checkpoint = Path(checkpoint).expanduser()
        if not checkpoint.is_file():
            raise FileNotFoundError(
                f"retrieval.clap_checkpoint={str(checkpoint)!r}: laion-clap needs a local .pt file"
            )
        laion_clap = import_laion_clap()
        self.source = str(checkpoint)
        self.device = torch.device(device)
        self.enable_fusion = enable_fusion
        self.module = laion_clap.CLAP_Module(
            enable_fusion=enable_fusion, amodel=amodel, device=str(self.device)
        )
        # Not module.load_ckpt: its torch.load turns weights_only off, and unpickling then runs whatever
        # code a file holds. The same steps here, reading tensors and plain containers only.
        self.module.model.load_state_dict(read_state_dict(checkpoint))
        self.module.eval()
        self.max_samples = int(self.module.model_cfg["audio_cfg"]["clip_samples"])
        self._identity = f"{self.name}:{hash_files([checkpoint])}"

    @classmethod
    def from_config(cls, cfg: Config) -> LaionClapEncoder:
        r = cfg.retrieval
        device = "cuda" if torch.cuda.is_available() else "cpu"
        return cls(
            r.clap_checkpoint, amodel=r.laion_amodel, enable_fusion=r.laion_enable_fusion, device=device
        )

    @property
    def identity(self) -> str:
        return self._identity

    @torch.inference_mode()
    def embed_audio(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if lengths is None:
            lengths = torch.full((waveforms.shape[0],), waveforms.shape[1], dtype=torch.long)
        resampled = torchaudio.functional.resample(waveforms.float().cpu(), self.sample_rate, MODEL_RATE)
        clips = []
        for row, n in zip(resampled, lengths.tolist(), strict=True):
            valid = row[: max(1, round(n * MODEL_RATE / self.sample_rate))]
            # Non-fusion models crop randomly past 10 s; crop deterministically here instead.
            clips.append(
                np.ascontiguousarray((valid if self.enable_fusion else valid[: self.max_samples]).numpy())
            )
        embeds = self.module.get_audio_embedding_from_data(x=clips, use_tensor=False)
        return l2_normalize(torch.from_numpy(np.asarray(embeds)))

    @torch.inference_mode()
    def embed_text(self, captions: list[str]) -> torch.Tensor:
        embeds = self.module.get_text_embedding(list(captions), use_tensor=True)
        return l2_normalize(embeds.detach().cpu())


CLAP_ENCODERS.register("laion-clap")(LaionClapEncoder.from_config)
