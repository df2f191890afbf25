"""Ray Data pipelines: rows from the dataset reader + precomputed retrieval, CPU stages as classes.

    rows = split_rows(records, retrieved, per="caption")      # (distillcaps.data.batches)
    ds = audio_dataset(rows, cfg, random_crop=True)           # + decode/resample/crop on CPU workers
    ds = feature_dataset(rows, cache_dir)                     # or: frozen encoder outputs from the cache

Train workers read them with ``ray.train.get_dataset_shard(name).iter_batches(...)`` (Ray Train
splits every dataset passed to ``TorchTrainer(datasets=...)`` equally across workers).

Each stage is a class: ``__init__`` loads what it needs, ``__call__(batch)`` works on a numpy batch.
They run as Ray *tasks* (``run_stage``), one instance per worker process kept across epochs, not as
an actor pool: Train starts a new execution of the dataset every epoch, and a fresh actor (a new
process importing torch) cost 18-38 s per epoch on 2 busy cores against 0.3 s for a warm task
(benchmarks/data_pipeline.py). Stages ask for ``train.data_stage_cpus`` (a fraction) so that they
still get scheduled on 2 cores next to the Train workers (0 inside a Tune trial there: see TrainConfig).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from distillcaps.data.batches import DecodeAudio, num_samples, plain_lists
from distillcaps.training.feature_cache import FeatureCache

if TYPE_CHECKING:
    import ray.data

    from distillcaps.config import Config


# ---------------------------------------------------------------------------------------------
# Stages


class AttachFeatures:
    """CPU stage: look up each row's frozen-encoder output in the feature cache (memory-mapped).

    Adds "encoder_tokens" (B, N, D) float32 and "encoder_mask" (B, N) bool, by the row's "clip".
    """

    def __init__(self, feature_dir: str) -> None:
        self.cache = FeatureCache.open(Path(feature_dir))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        clips = batch["clip"].astype(np.int64)
        batch["encoder_tokens"] = np.ascontiguousarray(self.cache.tokens[clips], dtype=np.float32)
        batch["encoder_mask"] = np.ascontiguousarray(self.cache.mask[clips])
        batch["retrieved"] = plain_lists(batch["retrieved"])
        return batch


# ---------------------------------------------------------------------------------------------
# Datasets


def run_stage(batch: dict[str, np.ndarray], stage: type, init: str) -> dict[str, np.ndarray]:
    """A Ray Data task: ``stage(**json.loads(init))(batch)``, the instance made once per process."""
    return stage_instance(stage, init)(batch)


@functools.lru_cache(maxsize=16)
def stage_instance(stage: type, init: str) -> Any:
    return stage(**json.loads(init))


def map_stage(ds: ray.data.Dataset, stage: type, init: dict[str, Any], batch_size: int, cfg: Config):
    """``ds.map_batches`` with ``stage`` as tasks: one at a time, warm worker processes reused."""
    import ray.data

    return ds.map_batches(
        run_stage,
        fn_kwargs={"stage": stage, "init": json.dumps(init, sort_keys=True)},
        batch_size=batch_size,
        compute=ray.data.TaskPoolStrategy(size=1),
        num_cpus=cfg.train.data_stage_cpus,
    )


def audio_dataset(rows: list[dict[str, Any]], cfg: Config, *, random_crop: bool) -> ray.data.Dataset:
    import ray.data

    init = {
        "sample_rate": cfg.data.sample_rate,
        "num_samples": num_samples(cfg),
        "random_crop": random_crop,
        "seed": cfg.seed,
    }
    return map_stage(ray.data.from_items(rows), DecodeAudio, init, batch_size=32, cfg=cfg)


def feature_dataset(rows: list[dict[str, Any]], feature_dir: Path, cfg: Config) -> ray.data.Dataset:
    import ray.data

    init = {"feature_dir": str(feature_dir)}
    return map_stage(ray.data.from_items(rows), AttachFeatures, init, batch_size=64, cfg=cfg)
