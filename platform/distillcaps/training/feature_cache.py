"""Frozen-encoder feature cache: encoder outputs computed once per (dataset, encoder, audio settings).

    feature_dir = ensure_features(cfg, records, subset="dev")   # computes on first use
    cache = FeatureCache.open(feature_dir)                      # tokens (C, N, D), mask (C, N), grid

Layout: ``cache_dir_for(cfg)/features/<key>/`` with ``tokens.npy`` (C, N, D) float32, ``mask.npy``
(C, N) bool, ``meta.json`` (grid, fnames, what the key was made of) and a ``.complete`` marker
written last. The key is a hash of: every clip's name, path, size and mtime; the encoder's identity
(registry name, its config section and a fingerprint of its weights); and the audio settings
(sample rate, crop length). Changing any of them gives a new folder, never stale features. It is
built under ``cache_lock``: of two concurrent builders the second waits and reuses the first's.

Where the encoder runs (``train.encode_features_with``): a Ray Data stage (``EncodeFrozen``, on a GPU
when training uses GPUs) or this process; "auto" uses Ray Data only for a GPU pass, since on CPU this
process was the faster (``distillcaps.precompute_engine``). Both give the same features (one torch
thread each, ``distillcaps.torch_threads``).

Crops: the cache stores the deterministic crop (start at 0, as at evaluation). With the cache on,
training therefore sees the same crop of each clip every epoch; random-crop training
(``train.feature_cache=false``) decodes and crops the audio afresh each epoch instead. The synthetic
clips are shorter than ``data.max_seconds``, so for them both paths see the whole clip.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from distillcaps.atomic_folder import cache_lock
from distillcaps.config import Config, from_dict
from distillcaps.data.batches import DecodeAudio, num_samples
from distillcaps.data.records import ClipRecord
from distillcaps.precompute_engine import runs_on_ray
from distillcaps.torch_threads import BUILD_THREADS, build_threads

COMPLETE = ".complete"
CACHE_VERSION = 1


@dataclass
class FeatureCache:
    tokens: np.ndarray  # (C, N, D) float32, memory-mapped
    mask: np.ndarray  # (C, N) bool
    grid: tuple[int, int]  # (bands, time patches) of every clip (same crop length -> same grid)
    fnames: list[str]

    @classmethod
    def open(cls, directory: Path) -> FeatureCache:
        if not (directory / COMPLETE).is_file():
            raise FileNotFoundError(f"{directory} is not a complete feature cache (no {COMPLETE} marker)")
        meta = json.loads((directory / "meta.json").read_text())
        return cls(
            tokens=np.load(directory / "tokens.npy", mmap_mode="r"),
            mask=np.load(directory / "mask.npy", mmap_mode="r"),
            grid=tuple(meta["grid"]),
            fnames=meta["fnames"],
        )


def records_identity(records: list[ClipRecord]) -> list[list[Any]]:
    out = []
    for r in records:
        stat = Path(r.path).stat()
        out.append([r.fname, str(r.path), stat.st_size, stat.st_mtime_ns])
    return out


def encoder_identity(cfg: Config, encoder) -> dict[str, Any]:
    from distillcaps.model.checkpoint import fingerprint  # lazy: imports torch

    return {
        "name": cfg.model.encoder.name,
        "config": {k: v for k, v in vars(cfg.model.encoder).items() if k != "frozen"},
        "weights": fingerprint(encoder),
    }


def cache_key(records_id: list, encoder_id: dict, audio: dict) -> str:
    payload = json.dumps(
        {"version": CACHE_VERSION, "records": records_id, "encoder": encoder_id, "audio": audio},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def audio_settings(cfg: Config) -> dict[str, Any]:
    return {"sample_rate": cfg.data.sample_rate, "num_samples": num_samples(cfg), "crop": "start"}


def ensure_features(cfg: Config, records: list[ClipRecord], subset: str) -> Path:
    """The feature folder for these records (computed now if absent)."""
    from distillcaps.data.paths import cache_dir_for  # lazy: imports soundfile
    from distillcaps.model.encoders import build_audio_encoder  # lazy: imports torch

    encoder = build_audio_encoder(cfg)
    key = cache_key(records_identity(records), encoder_identity(cfg, encoder), audio_settings(cfg))
    target = cache_dir_for(cfg) / "features" / key
    if (target / COMPLETE).is_file():
        return target
    del encoder  # either engine builds its own (a Ray actor cannot share this one); built for the key only
    with cache_lock(target):  # a second builder waits, then finds the first one's folder
        if (target / COMPLETE).is_file():
            return target
        rows = [{"clip": i, "fname": r.fname, "path": str(r.path)} for i, r in enumerate(records)]
        if runs_on_ray(cfg.train.encode_features_with, on_gpu=cfg.train.use_gpu):
            tokens, mask, grid = encode_with_ray(cfg, rows)
        else:
            tokens, mask, grid = encode_locally(cfg, rows)
        write_cache(
            target,
            tokens,
            mask,
            grid,
            {"fnames": [r.fname for r in records], "subset": subset, "audio": audio_settings(cfg)},
        )
    return target


class EncodeFrozen:
    """Ray Data stage: the frozen audio encoder (on a GPU when the stage is given one).

    Adds "encoder_tokens" (B, N, D), "encoder_mask" (B, N), "grid" (B, 2).
    """

    def __init__(self, cfg_dict: dict) -> None:
        import torch

        from distillcaps.model.encoders import build_audio_encoder  # lazy: imports torch

        torch.set_num_threads(BUILD_THREADS)  # one stage per core, and a cache as built anywhere
        cfg = from_dict(Config, cfg_dict)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.encoder = build_audio_encoder(cfg).to(self.device).eval()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        with torch.no_grad():
            out = self.encoder(
                torch.tensor(batch["audio"]).to(self.device),  # a copy: Ray batches are read-only
                torch.tensor(batch["audio_lengths"]).to(self.device),
            )
        return {
            "clip": batch["clip"],
            "encoder_tokens": out.tokens.float().cpu().numpy(),  # (B, N, D)
            "encoder_mask": out.mask.cpu().numpy(),  # (B, N)
            "grid": np.tile(np.asarray(out.grid, dtype=np.int64), (len(batch["clip"]), 1)),
        }


def encode_with_ray(cfg: Config, rows: list[dict]) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    import ray.data

    from distillcaps.training.data_pipeline import audio_dataset  # lazy: it imports this module

    ds = audio_dataset(rows, cfg, random_crop=False).map_batches(
        EncodeFrozen,
        fn_constructor_kwargs={"cfg_dict": cfg.to_dict()},
        batch_size=cfg.eval.batch_size,
        compute=ray.data.ActorPoolStrategy(size=1),
        num_cpus=cfg.train.data_stage_cpus,
        num_gpus=1 if cfg.train.use_gpu else 0,
    )
    return assemble(ds.iter_batches(batch_size=None, batch_format="numpy"), len(rows))


def encode_locally(cfg: Config, rows: list[dict]) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """The same stages in this process, one batch after another."""

    def batches():
        for start in range(0, len(rows), cfg.eval.batch_size):
            chunk = rows[start : start + cfg.eval.batch_size]
            batch = {k: np.asarray([r[k] for r in chunk]) for k in ("clip", "fname", "path")}
            yield encode(decode(batch))

    with build_threads():  # the stages set BUILD_THREADS for their process: give the caller's back
        decode = DecodeAudio(cfg.data.sample_rate, num_samples(cfg), random_crop=False)
        encode = EncodeFrozen(cfg.to_dict())
        return assemble(batches(), len(rows))


def assemble(batches, count: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    tokens = mask = grid = None
    for batch in batches:
        if tokens is None:
            _, n, d = batch["encoder_tokens"].shape
            tokens = np.zeros((count, n, d), dtype=np.float32)
            mask = np.zeros((count, n), dtype=bool)
            grid = tuple(int(g) for g in batch["grid"][0])
        clips = batch["clip"].astype(np.int64)
        tokens[clips] = batch["encoder_tokens"]
        mask[clips] = batch["encoder_mask"]
    if tokens is None:
        raise ValueError("no clips to encode")
    return tokens, mask, grid


def write_cache(target: Path, tokens: np.ndarray, mask: np.ndarray, grid: tuple, meta: dict) -> None:
    """Write into a private folder, mark it complete, then rename it into place (a racing writer's
    copy is discarded)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        np.save(staging / "tokens.npy", tokens)
        np.save(staging / "mask.npy", mask)
        (staging / "meta.json").write_text(json.dumps({**meta, "grid": list(grid)}, indent=1))
        (staging / COMPLETE).write_text("")
        os.chmod(staging, 0o755)
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / COMPLETE).is_file():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
