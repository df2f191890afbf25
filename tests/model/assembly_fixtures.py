"""Tiny building blocks for the model-assembly tests: 8 clips, a caption tokenizer, a small Llama.

The Llama is pretrained for a few seconds on the 8 captions (as the tiny preset pretrains on the
training captions) and saved with save_pretrained, then loaded through the `hf` path like any
causal LM. The audio is random noise per clip: a stand-in encoder turns it into band-major tokens.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from distillcaps.config import load_config
from distillcaps.model.config import LLMConfig
from distillcaps.model.llm import tiny_llama, train_causal_lm
from distillcaps.model.tokenizer import train_caption_tokenizer

CAPTIONS = [
    "a dog barks twice near a fence",
    "rain falls steadily on a tin roof",
    "a car engine idles and then revs",
    "birds chirp while wind blows softly",
    "a man speaks and a door slams",
    "water runs from a tap into a sink",
    "church bells ring in the distance",
    "footsteps crunch on gravel slowly",
]
PROMPT_TEXT = ["Describe the detail of this audio:", "\n---\nDetailed: ", "Similar audios sound like:\n\n"]
BANDS, TIME, ENC_DIM = 2, 6, 16
SAMPLES = BANDS * TIME * ENC_DIM  # the stand-in encoder reads the waveform as its tokens

TINY_LLM = dict(hidden_size=48, num_layers=2, num_heads=4, intermediate_size=96, vocab_size=320)


def save_tiny_llm(directory: Path, captions=CAPTIONS, epochs: int = 40) -> Path:
    """Tokenizer + Llama pretrained on `captions`, saved with save_pretrained (the real `hf` format)."""
    llm_cfg = LLMConfig(**TINY_LLM, pretrain_epochs=epochs, pretrain_batch_size=8, pretrain_lr=1e-2)
    tokenizer = train_caption_tokenizer(list(captions) + PROMPT_TEXT * 10, llm_cfg.vocab_size)
    torch.manual_seed(0)
    model = tiny_llama(llm_cfg, tokenizer)
    train_causal_lm(model, tokenizer, captions, llm_cfg, seed=0)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def tiny_cfg(llm_dir: Path, *overrides: str):
    return load_config(
        None,
        [
            "model.llm.name=hf",
            f"model.llm.path={llm_dir}",
            "model.llm.lora_dropout=0.0",
            "model.llm.lora_r=8",
            f"model.encoder.dim={ENC_DIM}",
            "model.qformer.dim=32",
            "model.qformer.num_heads=2",
            "model.qformer.num_layers=1",
            "model.qformer.window_size=2",
            "model.qformer.window_stride=2",
            "model.qformer.dropout=0.0",
            "model.generation.max_new_tokens=12",
            "retrieval.top_k=3",
            *overrides,
        ],
    )


class StandInEncoder(nn.Module):
    """Reads the waveform as band-major tokens (B, BANDS*TIME, ENC_DIM); lengths mask whole time patches."""

    dim = ENC_DIM
    frozen = True

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor | None = None):
        from distillcaps.model.encoders import EncoderOutput, band_major_mask

        batch = waveform.shape[0]
        tokens = waveform[:, :SAMPLES].reshape(batch, BANDS * TIME, ENC_DIM)
        if lengths is None:
            lengths = torch.full((batch,), waveform.shape[1])
        valid_time = (lengths.clamp(max=SAMPLES) // (BANDS * ENC_DIM)).clamp(min=1)  # samples per time patch
        mask = band_major_mask(valid_time, BANDS, TIME)
        return EncoderOutput(tokens=tokens * mask[..., None], mask=mask, grid=(BANDS, TIME))


def clip_audio(n: int = 8, seed: int = 0) -> torch.Tensor:
    """(n, SAMPLES) distinct random 'waveforms', one per caption."""
    return torch.randn(n, SAMPLES, generator=torch.Generator().manual_seed(seed))


def retrieved_for(i: int, k: int = 3) -> list[str]:
    """Other clips' captions (never the clip's own, like the leakage guard)."""
    return [CAPTIONS[(i + j) % len(CAPTIONS)] for j in range(1, k + 1)]
