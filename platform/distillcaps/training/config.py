"""Training section of the config: objective, optimisation and the Ray Train scaling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class TrainConfig:
    # baseline: student CE | rag: teacher CE | rag+auto: both CE | distill: both CE + KL (DistillCaps)
    mode: Literal["baseline", "rag", "rag+auto", "distill"] = "distill"
    epochs: int = 8
    # Per step, across all workers (paper: 64). Tiny: 16, so that one epoch of the 3,000 caption
    # rows is 188 optimizer steps: at 32 (94 steps) the one-epoch student said one caption for 39%
    # of the eval clips; at 16 its validation CE fell 1.314 -> 1.288 (docs/training.md).
    batch_size: int = 16
    # Tiny: LoRA + a fresh Q-Former learn fast; 2e-3 gave validation CE 1.180 against 1.228 at 1e-3
    # (student, one epoch, batch 16). Paper: 5e-6.
    lr: float = 2e-3
    weight_decay: float = 1e-6  # paper
    warmup_ratio: float = 0.05
    grad_clip: float = 1.0
    temperature: float = 1.0  # KL temperature (paper: 1.0); the KL term is scaled by T^2
    w_auto: float = 1.0
    w_rag: float = 1.0
    w_dda: float = 1.0
    num_workers: int = 1  # Ray Train workers
    use_gpu: bool = False
    cpus_per_worker: float = 1.0  # on 2 cores inside a Tune trial use 0.5 (the trial driver holds 1 CPU)
    precision: Literal["fp32", "bf16"] = "fp32"
    gradient_checkpointing: bool = False
    feature_cache: bool = True  # frozen encoder outputs computed once; needs deterministic crops
    # where the feature cache is computed: "ray" (a Ray Data stage) | "local" (this process) | "auto"
    # (Ray Data for a GPU pass, else this process, the faster on CPU; distillcaps.precompute_engine)
    encode_features_with: str = "auto"
    checkpoint_metric: str = "val_loss_student"  # best checkpoint kept by this (lower is better)
    # Checkpoints inside an epoch besides the one at its end (0: off), so that a fault costs at most
    # this many steps, or minutes, instead of the epoch so far. Off by default: a tiny epoch is
    # seconds, and each checkpoint is a save, a copy into Ray's storage and a barrier of all
    # workers. For epochs of hours (paper.yaml) set one; with both set, whichever comes first.
    checkpoint_every_steps: int = 0
    checkpoint_every_minutes: float = 0.0
    max_failures: int = 1
    random_crop: bool = True  # training crops at random when the feature cache is off (else at 0)
    # Read the worker's whole epoch of batches into memory before its first step. While the steps
    # hold a streaming pipeline back, Ray Data's scheduling loop (a thread of the worker process)
    # polls without waiting and took ~40% of the worker's samples under py-spy, slowing each step
    # (docs/training.md). Fine for the tiny preset's cached features (~50 MB an epoch); paper.yaml
    # streams (CED-base features of a Clotho epoch are ~15 GB).
    preload_epoch: bool = True
    shuffle_buffer: int = 256  # rows; Ray Data's local shuffle while streaming into workers (0: off)
    # CPUs each Ray Data stage asks for. Inside a Tune trial on 2 cores (trial driver 1 CPU + two
    # workers x 0.5) nothing is left: use 0 there, or the data stages are never scheduled.
    data_stage_cpus: float = 0.25
    object_store_mb: int = 1024  # when train() starts Ray itself; Ray's default (~7 GB) is too much here
    # captions per context the LM's context diagnostic scores before a training starts (0: off)
    context_diagnostic_captions: int = 200
    evaluate_after: bool = True  # evaluate the best checkpoint (with and without RAG) at the end
