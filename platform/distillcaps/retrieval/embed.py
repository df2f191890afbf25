"""Embed the audio of many clips with a CLAP, in batches through Ray Data or in this process.

Ray Data stage as a class (``__init__`` loads the CLAP once per actor, ``__call__(batch)`` decodes
and embeds a batch), as in Ray's audio batch-inference example.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from distillcaps.config import Config, from_dict
from distillcaps.precompute_engine import runs_on_ray
from distillcaps.ray_runtime import ensure_ray
from distillcaps.registry import Registry
from distillcaps.retrieval.audio import load_padded
from distillcaps.retrieval.clap import ClapEncoder, build_clap
from distillcaps.torch_threads import BUILD_THREADS, build_threads

# name -> fn(cfg, clap, paths) -> (N, E) float32; chosen by retrieval.embed_with ("ray", "local",
# "auto": see distillcaps.precompute_engine)
AUDIO_EMBEDDERS: Registry = Registry("audio embedder")


class EmbedAudio:
    """Ray Data callable class: {"row", "path"} batch -> {"row", "embedding" (b, E)}."""

    def __init__(self, config: dict[str, Any]) -> None:
        import torch

        torch.set_num_threads(BUILD_THREADS)  # one actor per core, and cached vectors as built anywhere
        cfg: Config = from_dict(Config, config)
        self.clap = build_clap(cfg)
        self.sample_rate, self.max_seconds = cfg.data.sample_rate, cfg.data.max_seconds

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        waves, lengths = load_padded(list(batch["path"]), self.sample_rate, self.max_seconds)
        embedding = self.clap.embed_audio(waves, lengths).numpy().astype(np.float32)
        return {"row": np.asarray(batch["row"]), "embedding": embedding}


@AUDIO_EMBEDDERS.register("ray")
def embed_records_ray(
    cfg: Config, clap: ClapEncoder | None, paths: Sequence[str], actors: int = 1
) -> np.ndarray:
    """(N,) audio paths -> (N, E) float32 CLAP embeddings, computed by a Ray Data actor pool.

    ``cfg.retrieval.clap_checkpoint`` should be resolved already (see pinned_config), so actors
    load the same checkpoint instead of re-deriving it.
    """
    import ray

    # a running Ray is joined; else a small local one for this stage alone
    started = ensure_ray(
        num_cpus=2,
        object_store_mb=cfg.retrieval.ray_object_store_mb,
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        items = [{"row": i, "path": str(p)} for i, p in enumerate(paths)]
        ds = ray.data.from_items(items).map_batches(
            EmbedAudio,
            fn_constructor_kwargs={"config": cfg.to_dict()},
            batch_size=cfg.retrieval.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors),  # `concurrency=` is deprecated (Ray 2.51)
            num_cpus=1,
        )
        rows = ds.take_all()
    finally:
        if started:  # leave no private cluster behind for the caller's own ray.init
            ray.shutdown()
    rows.sort(key=lambda r: int(r["row"]))
    if len(rows) != len(paths):
        raise RuntimeError(f"Ray Data returned {len(rows)} embeddings for {len(paths)} clips")
    return np.stack([np.asarray(r["embedding"], dtype=np.float32) for r in rows])


@AUDIO_EMBEDDERS.register("local")
def embed_records_local(cfg: Config, clap: ClapEncoder, paths: Sequence[str]) -> np.ndarray:
    """Same as embed_records_ray, in this process (small sets, reports, tests)."""
    out = []
    with build_threads():  # the same vectors as the Ray stage's
        for start in range(0, len(paths), cfg.retrieval.batch_size):
            waves, lengths = load_padded(
                paths[start : start + cfg.retrieval.batch_size], cfg.data.sample_rate, cfg.data.max_seconds
            )
            out.append(clap.embed_audio(waves, lengths).numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), np.float32)


@AUDIO_EMBEDDERS.register("auto")
def embed_records_auto(cfg: Config, clap: ClapEncoder, paths: Sequence[str]) -> np.ndarray:
    """embed_records_local: the Ray stage asks for no GPU, and on CPU this process was the faster
    (distillcaps.precompute_engine)."""
    embed = embed_records_ray if runs_on_ray("auto", on_gpu=False) else embed_records_local
    return embed(cfg, clap, paths)
