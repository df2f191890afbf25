"""Ray Data pipelines: rows from the dataset reader + precomputed retrieval, CPU stages as classes.

    rows = split_rows(records, retrieved, per="caption")      # training: one row per caption
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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import ray.data

    from distillcaps.config import Config
    from distillcaps.data.records import ClipRecord


@dataclass
class SkippedFile:
    fname: str
    path: str
    reason: str


# ---------------------------------------------------------------------------------------------
# Rows


def split_rows(
    records: list[ClipRecord],
    retrieved: dict[str, list[dict[str, Any]]],
    per: Literal["caption", "clip"],
) -> list[dict[str, Any]]:
    """Plain-python rows for ``ray.data.from_items``.

    per="caption" (training): {clip, fname, path, caption, retrieved}, one per reference caption.
    per="clip" (validation/evaluation): {clip, fname, path, references, retrieved}, one per clip.
    ``clip`` is the record's position in ``records`` (the row of its cached features).
    """
    rows = []
    for clip, record in enumerate(records):
        top = [hit["caption"] for hit in retrieved.get(record.fname, [])]
        base = {"clip": clip, "fname": record.fname, "path": str(record.path), "retrieved": top}
        if per == "caption":
            rows.extend({**base, "caption": caption} for caption in record.captions)
        else:
            rows.append({**base, "references": list(record.captions)})
    return rows


def check_records(records: list[ClipRecord], on_bad_audio: str) -> tuple[list[ClipRecord], list[SkippedFile]]:
    """Check every audio file before Ray starts: "error" raises BadAudioError naming the first bad
    file; "skip" drops bad clips and returns them, so the caller can count and report them."""
    from distillcaps.data.audio import BadAudioError, check_audio

    kept, skipped = [], []
    for record in records:
        try:
            check_audio(record.path)
        except BadAudioError as err:
            if on_bad_audio != "skip":
                raise BadAudioError(
                    err.path, f"{err.reason} (set data.on_bad_audio=skip to drop such clips and count them)"
                ) from None
            skipped.append(SkippedFile(record.fname, str(record.path), err.reason))
            continue
        kept.append(record)
    return kept, skipped


# ---------------------------------------------------------------------------------------------
# Stages


class DecodeAudio:
    """CPU stage: decode (soundfile), down-mix, resample to the model rate, crop or pad to a fixed length.

    Adds "audio" (B, S) float32 and "audio_lengths" (B,) int64 (valid samples before padding).
    Random crops (training without the feature cache) draw from one generator seeded by ``seed``;
    it lives as long as the instance (the worker process under ``run_stage``), so every epoch
    crops afresh.
    """

    def __init__(self, sample_rate: int, num_samples: int, random_crop: bool, seed: int = 0) -> None:
        import torch

        torch.set_num_threads(1)
        self.sample_rate = sample_rate
        self.num_samples = num_samples
        self.random_crop = random_crop
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from distillcaps.data.audio import crop_or_pad, load_audio

        # Training rows come one per caption, a clip's rows side by side: decode each file once per
        # batch (5 captions per clip: 5x fewer decodes); each row still gets its own crop.
        decoded: dict[str, Any] = {}
        waves, lengths = [], []
        for path in batch["path"]:
            if path not in decoded:
                decoded[path] = load_audio(path, self.sample_rate)  # (S,)
            wave, length = crop_or_pad(
                decoded[path], self.num_samples, random_crop=self.random_crop, generator=self.generator
            )
            waves.append(wave.numpy())
            lengths.append(length)
        batch["audio"] = np.stack(waves).astype(np.float32)  # (B, S)
        batch["audio_lengths"] = np.asarray(lengths, dtype=np.int64)  # (B,)
        if "retrieved" in batch:
            batch["retrieved"] = plain_lists(batch["retrieved"])
        return batch


class AttachFeatures:
    """CPU stage: look up each row's frozen-encoder output in the feature cache (memory-mapped).

    Adds "encoder_tokens" (B, N, D) float32 and "encoder_mask" (B, N) bool, by the row's "clip".
    """

    def __init__(self, feature_dir: str) -> None:
        from distillcaps.training.feature_cache import FeatureCache

        self.cache = FeatureCache.open(Path(feature_dir))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        clips = batch["clip"].astype(np.int64)
        batch["encoder_tokens"] = np.ascontiguousarray(self.cache.tokens[clips], dtype=np.float32)
        batch["encoder_mask"] = np.ascontiguousarray(self.cache.mask[clips])
        batch["retrieved"] = plain_lists(batch["retrieved"])
        return batch


def plain_lists(column) -> np.ndarray:
    """Lists of str in an object array: numpy string arrays inside objects do not convert to Arrow."""
    out = np.empty(len(column), dtype=object)
    for i, item in enumerate(column):
        out[i] = [str(x) for x in item]
    return out


# ---------------------------------------------------------------------------------------------
# Datasets


def num_samples(cfg: Config) -> int:
    return int(round(cfg.data.max_seconds * cfg.data.sample_rate))


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


def to_model_batch(batch: dict[str, np.ndarray], grid: tuple[int, int] | None) -> dict[str, Any]:
    """A numpy batch from Ray Data -> the model's batch dict (interface 5)."""
    import torch

    out: dict[str, Any] = {"fname": [str(f) for f in batch["fname"]]}
    if "encoder_tokens" in batch:
        out["encoder_tokens"] = torch.tensor(
            np.asarray(batch["encoder_tokens"], dtype=np.float32)
        )  # copies: Ray batches are read-only
        out["encoder_mask"] = torch.tensor(np.asarray(batch["encoder_mask"], dtype=bool))
        out["encoder_grid"] = tuple(grid)
    else:
        out["audio"] = torch.tensor(np.asarray(batch["audio"], dtype=np.float32))
        out["audio_lengths"] = torch.tensor(np.asarray(batch["audio_lengths"], dtype=np.int64))
    if "caption" in batch:
        out["captions"] = [str(c) for c in batch["caption"]]
    if "references" in batch:
        out["references"] = [[str(r) for r in refs] for refs in batch["references"]]
        out["captions"] = [refs[0] for refs in out["references"]]  # the loss target of a clip row
    out["retrieved"] = [[str(c) for c in hits] for hits in batch["retrieved"]]
    return out
