"""Tiny building blocks for the model-assembly tests: 8 clips, a caption tokenizer, a small Llama.

The Llama is pretrained for a few seconds on the 8 captions (as the tiny preset pretrains on the
training captions) and saved with save_pretrained, then loaded through the `hf` path like any
causal LM. The encoder is a tiny TinyAudioEncoder (random init, saved with save_pretrained, loaded
through the "tiny" registry entry); the clips are distinct tones.
"""

from __future__ import annotations

import atexit
import functools
import math
import shutil
import tempfile
from pathlib import Path

import torch

from distillcaps.config import load_config
from distillcaps.data.batches import ModelBatch
from distillcaps.model.config import LLMConfig
from distillcaps.model.llm import tiny_llama
from distillcaps.model.tokenizer import train_caption_tokenizer
from distillcaps.standins.causal_lm import train_causal_lm

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
ENC_DIM = 16

TINY_LLM = dict(hidden_size=48, num_layers=2, num_heads=4, intermediate_size=96, vocab_size=500)


def save_tiny_llm(directory: Path, captions=CAPTIONS, epochs: int = 150) -> Path:
    """Tokenizer + Llama pretrained on `captions`, saved with save_pretrained (the real `hf` format)."""
    llm_cfg = LLMConfig(**TINY_LLM)
    tokenizer = train_caption_tokenizer(list(captions) + PROMPT_TEXT, llm_cfg.vocab_size)
    torch.manual_seed(0)
    model = tiny_llama(llm_cfg, tokenizer)
    train_causal_lm(model, tokenizer, captions, steps=epochs, lr=1e-2, batch_size=8, seed=0)
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
            "model.generation.max_new_tokens=20",
            "retrieval.top_k=3",
            *overrides,
        ],
    )


def clip_audio(n: int = 8, seconds: float = 1.0) -> torch.Tensor:
    """(n, S) distinct 16 kHz clips, one per caption: a tone per clip, amplitude-modulated."""
    t = torch.arange(int(16_000 * seconds)) / 16_000
    return torch.stack(
        [
            torch.sin(2 * math.pi * 150 * (i + 1) ** 1.3 * t)
            * (0.5 + 0.5 * torch.sin(2 * math.pi * (i + 1) * t))
            for i in range(n)
        ]
    )


@functools.cache
def shared_dir() -> Path:
    """One temp folder per test process for the pretrained stand-ins (built once, reused by all tests)."""
    path = Path(tempfile.mkdtemp(prefix="distillcaps-assembly-"))
    atexit.register(shutil.rmtree, path, True)
    return path


@functools.cache
def shared_llm_dir() -> Path:
    return save_tiny_llm(shared_dir() / "llm")


@functools.cache
def shared_encoder_dir() -> Path:
    """A tiny TinyAudioEncoder checkpoint (random init, fixed seed) in its save_pretrained format."""
    from distillcaps.model.encoders import TinyAudioEncoder

    torch.manual_seed(0)
    return TinyAudioEncoder(n_mels=64, dim=ENC_DIM, depth=1, num_heads=2).save_pretrained(
        shared_dir() / "enc"
    )


def build_model(*overrides: str):
    """DistillCapsModel from the shared tiny encoder + Llama (both loaded from their saved formats)."""
    from distillcaps.model.distillcaps_model import DistillCapsModel

    torch.manual_seed(0)
    cfg = tiny_cfg(shared_llm_dir(), f"model.encoder.checkpoint={shared_encoder_dir()}", *overrides)
    return DistillCapsModel.build(cfg)


def cached_batch(model, audio: torch.Tensor, captions=CAPTIONS) -> ModelBatch:
    """A training batch on the frozen-feature path (encoder run once), with leakage-free retrieval."""
    tokens, mask, grid = model.encode_frozen(audio, None)
    retrieved = [retrieved_for(i) for i in range(len(captions))]
    return ModelBatch.from_features(tokens, mask, grid, captions=list(captions), retrieved=retrieved)


def overfit(
    model, batch: ModelBatch, mode: str, lr: float = 1e-2, max_steps: int = 300, target: float = 0.03
):
    """Train the trainable weights on one batch until the loss is below `target`; returns the last output."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    model.train()
    for _ in range(max_steps):
        out = model.compute_loss(batch, mode)
        if out.loss.item() < target:
            break
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    return out


def retrieved_for(i: int, k: int = 3) -> list[str]:
    """Other clips' captions (never the clip's own, like the leakage guard)."""
    return [CAPTIONS[(i + j) % len(CAPTIONS)] for j in range(1, k + 1)]
