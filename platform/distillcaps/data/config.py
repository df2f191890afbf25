"""Data section of the config: which dataset, how audio is read, and the embedded synthetic set."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class SynthConfig:
    seed: int = 0
    num_train: int = 600  # clips; 5 captions each -> 3,000 training rows, generates in seconds
    num_val: int = 100
    num_eval: int = 150
    domain: Literal["indoor", "outdoor"] = "outdoor"  # a second domain exists for cross-domain runs
    clip_seconds: float = 5.0  # short clips keep the tiny preset fast on 2 CPU cores


@dataclass
class DataConfig:
    # Empty dataset_dir -> the embedded synthetic set, generated and cached under data_root.
    dataset_dir: str = ""
    dataset_format: str = "clotho"  # a name in data.records.DATASET_READERS (clotho, audiocaps, jsonl)
    data_root: str = ".distillcaps-data"  # where the synthetic set is generated when dataset_dir is empty
    cache_dir: str = ""  # retrieval/feature caches; empty -> <dataset_dir>/.distillcaps
    train_subset: str = "dev"  # Clotho: dev/val/eval; AudioCaps: train/val/test
    val_subset: str = "val"
    eval_subset: str = "eval"
    sample_rate: int = 16_000  # the paper's rate; every encoder input is resampled to this
    max_seconds: float = 10.0  # paper: 10 s AudioCaps, 30 s Clotho
    on_bad_audio: Literal["error", "skip"] = "error"  # never substitute silence quietly
    synth: SynthConfig = field(default_factory=SynthConfig)
