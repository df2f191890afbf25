"""A real, tiny DistillCaps checkpoint for the serving tests, built in seconds.

A caption tokenizer and a small Llama pretrained for a few epochs on a handful of captions (the
``hf`` LLM path), a randomly initialised TinyAudioEncoder saved with save_pretrained (the ``tiny``
encoder with an explicit checkpoint, so no CLAP is trained), then ``DistillCapsModel.build`` and
``save_checkpoint``: the format the sweep registers and ``load_checkpoint`` reads.

``write_rag_checkpoint`` adds what ``rag=true`` needs in a deployment: its config points at a small
embedded synthetic set under a given root, and the tiny CLAP, caption datastore and index that
``Retriever.from_config`` builds from that config are built once here (as training leaves them), so
a replica only loads them.
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
    from distillcaps.standins.tiny_llm import pretrain_tiny_llm

    llm_dir, encoder_dir = root / "tiny-llm", root / "tiny-encoder"
    llm_cfg = LLMConfig(**LLM, pretrain_steps=60, pretrain_batch_size=6, pretrain_lr=1e-2)
    llm_dir.mkdir(parents=True, exist_ok=True)
    pretrain_tiny_llm([[c] for c in CAPTIONS], llm_cfg, PromptConfig(), 0, llm_dir)
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


def rag_overrides(data_root: Path) -> list[str]:
    """A 24-clip synthetic set and a tiny CLAP on it: retrieval that builds in seconds."""
    return [
        f"data.data_root={data_root / 'data'}",  # absolute: replicas run in another cwd
        f"data.cache_dir={data_root / 'cache'}",
        "data.synth.num_train=24",
        "data.synth.num_val=4",
        "data.synth.num_eval=4",
        "data.synth.clip_seconds=3.0",  # the synthetic writer's minimum
        "retrieval.tiny.epochs=2",
        "retrieval.tiny.batch_size=24",
        "retrieval.tiny.embed_dim=32",
        "retrieval.tiny.text_dim=32",
        "retrieval.tiny.text_layers=1",
        "retrieval.tiny.text_heads=2",
        "retrieval.batch_size=16",
        "retrieval.embed_with=local",
        "retrieval.index=exact",
    ]


def write_tiny_checkpoint(
    directory: Path, llm_dir: Path, encoder_dir: Path, seed: int = 0, overrides: tuple[str, ...] = ()
) -> Path:
    """Build the model (trainable parts initialised from `seed`) and save it as a checkpoint dir."""
    from distillcaps.model.distillcaps_model import DistillCapsModel

    torch.manual_seed(seed)
    model = DistillCapsModel.build(tiny_config(llm_dir, encoder_dir, *overrides))
    model.save_checkpoint(directory)
    return directory


def write_rag_checkpoint(directory: Path, llm_dir: Path, encoder_dir: Path, data_root: Path) -> Path:
    """A tiny checkpoint whose config has a datastore, with that datastore (tiny-clap) built."""
    from distillcaps.retrieval import Retriever
    from distillcaps.standins import ensure_standins

    write_tiny_checkpoint(directory, llm_dir, encoder_dir, seed=2, overrides=tuple(rag_overrides(data_root)))
    cfg = tiny_config(llm_dir, encoder_dir, *rag_overrides(data_root))
    ensure_standins(cfg)  # the tiny CLAP, as training leaves it
    Retriever.from_config(cfg)
    return directory
