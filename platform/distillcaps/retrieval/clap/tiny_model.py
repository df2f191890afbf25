"""The tiny CLAP: a TinyAudioEncoder tower + a small word-level transformer text tower, one joint space.

    audio (B, S) -> TinyAudioEncoder -> tokens (B, N, D) -> attention pool -> (B, D) -> Linear -> (B, E)
    text  list[B] -> words -> transformer (B, L, Dt)    -> masked mean     -> (B, Dt) -> Linear -> (B, E)
    loss = symmetric InfoNCE with a learnable temperature (CLIP/CLAP)

Saved as ``audio_encoder/`` (TinyAudioEncoder.save_pretrained, reused by the captioning model as
its frozen "pretrained" encoder) + ``clap.safetensors`` (pooling, projections, text tower) +
``clap_config.json`` + ``vocab.json``. Never pickled.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from distillcaps.model.encoders.tiny import TinyAudioEncoder
from distillcaps.model.standin_folders import TINY_CLAP_AUDIO_DIR
from distillcaps.retrieval.clap.vocab import WordVocab
from distillcaps.retrieval.config import TinyClapConfig

AUDIO_DIR = TINY_CLAP_AUDIO_DIR  # the captioning model's tiny encoder loads this folder
WEIGHTS = "clap.safetensors"
CONFIG = "clap_config.json"
VOCAB = "vocab.json"


class AttentionPool(nn.Module):
    """One learned score per token, softmax over the valid tokens: (B, N, D), (B, N) -> (B, D)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.score = nn.Linear(dim, 1)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = self.score(tokens).squeeze(-1).masked_fill(~mask, float("-inf"))  # (B, N)
        weights = logits.softmax(dim=-1).unsqueeze(-1)  # (B, N, 1)
        return (weights * tokens).sum(dim=1)


class TextTower(nn.Module):
    def __init__(self, vocab_size: int, cfg: TinyClapConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, cfg.text_dim, padding_idx=0)
        self.position = nn.Parameter(torch.zeros(cfg.max_words, cfg.text_dim))
        layer = nn.TransformerEncoderLayer(
            cfg.text_dim, cfg.text_heads, 2 * cfg.text_dim, dropout=0.1, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.text_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.text_dim)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # ids, mask: (B, L) -> (B, Dt), mean over the valid words
        x = self.embed(ids) + self.position[: ids.shape[1]]
        x = self.norm(self.encoder(x, src_key_padding_mask=~mask))
        m = mask.unsqueeze(-1).float()
        return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


class TinyClap(nn.Module):
    def __init__(self, audio_encoder: nn.Module, vocab: WordVocab, cfg: TinyClapConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.vocab = vocab
        self.audio_encoder = audio_encoder
        self.audio_pool = AttentionPool(audio_encoder.dim)
        self.audio_proj = nn.Linear(audio_encoder.dim, cfg.embed_dim)
        self.text_tower = TextTower(len(vocab), cfg)
        self.text_proj = nn.Linear(cfg.text_dim, cfg.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / cfg.init_temperature)))

    def embed_audio(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.project_audio(self.audio_encoder(waveforms, lengths))  # (B, E)

    def embed_log_mel(self, log_mel: torch.Tensor, valid_frames: torch.Tensor) -> torch.Tensor:
        """Training shortcut: (B, 1, F, frames) from audio_encoder.front_end, computed once -> (B, E)."""
        enc = self.audio_encoder
        return self.project_audio(enc.encode_spectrogram(enc.init_bn(log_mel), valid_frames))

    def project_audio(self, out) -> torch.Tensor:
        pooled = self.audio_pool(out.tokens, out.mask)  # (B, N, D), (B, N) -> (B, D)
        return F.normalize(self.audio_proj(pooled), dim=-1)

    def embed_text(self, captions: list[str]) -> torch.Tensor:
        device = self.logit_scale.device
        ids, mask = self.vocab.encode(captions, self.cfg.max_words)
        pooled = self.text_tower(ids.to(device), mask.to(device))
        return F.normalize(self.text_proj(pooled), dim=-1)  # (B, E)

    def contrastive_loss(
        self, audio: torch.Tensor, text: torch.Tensor, same_text: torch.Tensor
    ) -> torch.Tensor:
        """Symmetric InfoNCE. same_text (B, B) bool marks rows whose captions are identical: they are
        positives of each other, not negatives (the synthetic set repeats captions)."""
        scale = self.logit_scale.clamp(max=math.log(100.0)).exp()  # CLIP's cap on 1/temperature
        logits = scale * audio @ text.T  # (B, B)
        targets = same_text.float() / same_text.float().sum(dim=1, keepdim=True)
        a2t = torch.sum(-targets * logits.log_softmax(dim=1), dim=1).mean()
        t2a = torch.sum(-targets * logits.T.log_softmax(dim=1), dim=1).mean()
        return (a2t + t2a) / 2

    # --- persistence ------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.audio_encoder.save_pretrained(directory / AUDIO_DIR)
        rest = {
            k: v.detach().contiguous()
            for k, v in self.state_dict().items()
            if not k.startswith("audio_encoder.")
        }
        save_file(rest, str(directory / WEIGHTS))
        (directory / CONFIG).write_text(json.dumps(dataclasses.asdict(self.cfg), indent=2))
        self.vocab.save(directory / VOCAB)

    @classmethod
    def load(cls, directory: Path) -> TinyClap:
        directory = Path(directory)
        for name in (AUDIO_DIR, WEIGHTS, CONFIG, VOCAB):
            if not (directory / name).exists():
                raise FileNotFoundError(f"{directory}: not a tiny-clap checkpoint (missing {name})")
        cfg = TinyClapConfig(**json.loads((directory / CONFIG).read_text()))
        model = cls(
            TinyAudioEncoder.from_pretrained(directory / AUDIO_DIR), WordVocab.load(directory / VOCAB), cfg
        )
        state = load_file(str(directory / WEIGHTS))
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("audio_encoder.")]
        if missing or unexpected:
            raise ValueError(
                f"{directory / WEIGHTS}: missing keys {missing[:5]}, unexpected keys {unexpected[:5]}"
            )
        return model.eval()
