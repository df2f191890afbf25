"""A real, tiny DistillCaps checkpoint for the serving tests, built in seconds.

A caption tokenizer and a small Llama pretrained for a few epochs on a handful of captions (the
``hf`` LLM path), a randomly initialised TinyAudioEncoder saved with save_pretrained (the ``tiny``
encoder with an explicit checkpoint, so no CLAP is trained), then ``DistillCapsModel.build`` and
``save_checkpoint``: the format the sweep registers and ``load_checkpoint`` reads.
"""

from __future__ import annotations

from pathlib import Path

import torch

from distillcaps.config import load_config
from distillcaps.model.config import LLMConfig, PromptConfig

CAPTIONS = [
    "a dog barks twice near a fence",
    "rain falls steadily on a tin roof",
    "a car engine idles and then revs",
    "birds chirp while wind blows softly",
    "a man speaks and a door slams",
    "water runs from a tap into a sink",
]
LLM = dict(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, vocab_size=200)


def build_bases(root: Path) -> tuple[Path, Path]:
    """(llm dir, encoder dir): the frozen parts every test checkpoint shares."""
    from distillcaps.model.encoders.tiny import TinyAudioEncoder
    from distillcaps.model.llm import pretrain_tiny_llm

    llm_dir, encoder_dir = root / "tiny-llm", root / "tiny-encoder"
    llm_cfg = LLMConfig(**LLM, pretrain_epochs=30, pretrain_batch_size=6, pretrain_lr=1e-2)
    llm_dir.mkdir(parents=True, exist_ok=True)
    pretrain_tiny_llm(CAPTIONS, llm_cfg, PromptConfig(), 0, llm_dir)
    torch.manual_seed(0)
    TinyAudioEncoder(n_mels=32, dim=32, depth=1, num_heads=2).save_pretrained(encoder_dir)
    return llm_dir, encoder_dir


def tiny_config(llm_dir: Path, encoder_dir: Path, *overrides: str):
    return load_config(
        None,
        [
            "model.llm.name=hf",
            f"model.llm.path={llm_dir}",
            "model.llm.lora_dropout=0.0",
            f"model.encoder.checkpoint={encoder_dir}",
            "model.encoder.n_mels=32",
            "model.encoder.dim=32",
            "model.encoder.num_layers=1",
            "model.encoder.num_heads=2",
            "model.qformer.dim=32",
            "model.qformer.num_heads=2",
            "model.qformer.num_layers=1",
            "model.generation.max_new_tokens=8",
            *overrides,
        ],
    )


def write_tiny_checkpoint(directory: Path, llm_dir: Path, encoder_dir: Path, seed: int = 0) -> Path:
    """Build the model (trainable parts initialised from `seed`) and save it as a checkpoint dir."""
    from distillcaps.model.distillcaps_model import DistillCapsModel

    torch.manual_seed(seed)
    model = DistillCapsModel.build(tiny_config(llm_dir, encoder_dir))
    model.save_checkpoint(directory)
    return directory
