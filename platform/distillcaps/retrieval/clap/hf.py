"""``hf-clap``: a Hugging Face ``ClapModel`` + ``ClapProcessor`` from a local folder or a filled HF cache.

RECAP used ``laion/clap-htsat-unfused``. The model expects 48 kHz audio: inputs (16 kHz) are
resampled here. Non-fusion models see at most the first ``max_length_s`` seconds (10 s) —
cropped deterministically here, where the feature extractor would crop at random.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torchaudio

from distillcaps.retrieval.clap.base import CLAP_ENCODERS, ClapEncoder, hash_files, l2_normalize

if TYPE_CHECKING:
    from distillcaps.config import Config

CHECKPOINT_FILES = ("*.safetensors", "*.bin", "config.json")


def resolve_local(checkpoint: str) -> Path:
    """A folder path as is; otherwise an HF repo id that must already be in the local HF cache."""
    path = Path(checkpoint).expanduser()
    if path.is_dir():
        return path
    if not checkpoint:
        raise ValueError(
            "retrieval.clap_checkpoint is empty: hf-clap needs a local ClapModel folder or cached repo id"
        )
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(checkpoint, local_files_only=True))
    except Exception as err:  # noqa: BLE001 - any hub failure means "not available offline"
        raise FileNotFoundError(
            f"retrieval.clap_checkpoint={checkpoint!r}: not a folder and not in the local HF cache ({err})"
        ) from err


class HFClapEncoder(ClapEncoder):
    name = "hf-clap"

    def __init__(self, checkpoint: str | Path, device: str = "cpu") -> None:
        from transformers import ClapModel, ClapProcessor

        self.directory = resolve_local(str(checkpoint))
        self.source = str(self.directory)
        self.device = torch.device(device)
        self.model = ClapModel.from_pretrained(self.directory, dtype=torch.float32).to(self.device).eval()
        self.processor = ClapProcessor.from_pretrained(self.directory)
        files = [p for pattern in CHECKPOINT_FILES for p in self.directory.glob(pattern)]
        if not files:
            raise FileNotFoundError(f"{self.directory}: no ClapModel weights (*.safetensors / *.bin)")
        self._identity = f"{self.name}:{hash_files(files)}"
        extractor = self.processor.feature_extractor
        self.model_rate = int(extractor.sampling_rate)  # 48 kHz for the LAION checkpoints
        self.max_samples = int(extractor.nb_max_samples)
        self.fusion = bool(getattr(self.model.config.audio_config, "enable_fusion", False))

    @classmethod
    def from_config(cls, cfg: Config) -> HFClapEncoder:
        return cls(cfg.retrieval.clap_checkpoint, device="cuda" if torch.cuda.is_available() else "cpu")

    @property
    def identity(self) -> str:
        return self._identity

    @torch.inference_mode()
    def embed_audio(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        # (B, S) 16 kHz -> per-clip 48 kHz numpy arrays of their valid samples
        if lengths is None:
            lengths = torch.full((waveforms.shape[0],), waveforms.shape[1], dtype=torch.long)
        resampled = torchaudio.functional.resample(waveforms.float().cpu(), self.sample_rate, self.model_rate)
        clips = []
        for row, n in zip(resampled, lengths.tolist(), strict=True):
            valid = row[: max(1, round(n * self.model_rate / self.sample_rate))]
            clips.append((valid if self.fusion else valid[: self.max_samples]).numpy())
        inputs = self.processor.feature_extractor(
            clips,
            sampling_rate=self.model_rate,
            truncation="fusion"
            if self.fusion
            else "rand_trunc",  # must match the model, whatever the file says
            return_tensors="pt",
        )
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        out = self.model.get_audio_features(**inputs)
        return l2_normalize(getattr(out, "pooler_output", out)).cpu()

    @torch.inference_mode()
    def embed_text(self, captions: list[str]) -> torch.Tensor:
        inputs = self.processor.tokenizer(list(captions), padding=True, truncation=True, return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        out = self.model.get_text_features(**inputs)
        return l2_normalize(getattr(out, "pooler_output", out)).cpu()


CLAP_ENCODERS.register("hf-clap")(HFClapEncoder.from_config)
