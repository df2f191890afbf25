"""The stand-ins' tests share the model tests' building blocks (captions, prompt text, a tiny Llama)
and a small synthetic data set with audio, so that the tiny CLAP and the tiny LLM train in seconds."""

from __future__ import annotations

import pytest

# A few short clips, a one-layer audio tower and a one-layer Llama: each stand-in trains in seconds.
SMALL_STANDINS = [
    "data.synth.num_train=12",
    "data.synth.num_val=4",
    "data.synth.num_eval=2",
    "data.synth.clip_seconds=3.0",
    "data.max_seconds=3.0",
    "retrieval.tiny.epochs=2",
    "retrieval.tiny.batch_size=6",
    "model.encoder.dim=32",
    "model.encoder.num_layers=1",
    "model.encoder.num_heads=2",
    "model.llm.hidden_size=32",
    "model.llm.num_layers=1",
    "model.llm.num_heads=2",
    "model.llm.intermediate_size=64",
    "model.llm.vocab_size=300",
    "model.llm.pretrain_steps=20",
    "model.llm.pretrain_batch_size=8",
]


@pytest.fixture
def small_overrides(tmp_path) -> list[str]:
    """The tiny preset shrunk, with its data and caches under this test's folder."""
    return [f"data.data_root={tmp_path / 'data'}", f"data.cache_dir={tmp_path / 'cache'}", *SMALL_STANDINS]
