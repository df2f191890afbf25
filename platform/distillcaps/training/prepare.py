"""Before Ray Train starts: the checked config, the cluster check and the prepared data.

    cfg = checked_config(cfg)              # absolute paths; a known train.checkpoint_metric
    check_cluster_for_training(cfg)        # on the Ray instance ensure_ray started or joined
    prepared = prepare_data(cfg)           # caches, then the "train" and "val" Ray Datasets

Everything computed once and cached is computed here, in the driver: the usable clips, the
stand-ins (tiny CLAP, tiny LLM), the retrieval lists and the frozen encoder's features. The Train
workers then only read caches.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from distillcaps.config import Config, ConfigError, from_dict
from distillcaps.data.batches import split_rows
from distillcaps.data.records import ClipRecord
from distillcaps.tracking import tracking_uri
from distillcaps.training.data_pipeline import audio_dataset, feature_dataset
from distillcaps.training.feature_cache import FeatureCache, ensure_features

# What train.checkpoint_metric may name (lower is better): a validation or training loss.
CHECKPOINT_METRICS = (
    "val_loss_student",
    "val_loss_teacher",
    "val_loss_dda",
    "val_loss",
    "train_loss",
)
# The config's paths made absolute: Ray workers need not share the driver's working directory.
PATH_KEYS = (
    (None, "run_dir"),
    ("data", "dataset_dir"),
    ("data", "data_root"),
    ("data", "cache_dir"),
    ("eval", "metrics_cache"),
    ("eval", "corenlp_dir"),
)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "0.0.0.0")


@dataclass
class PreparedData:
    datasets: dict[str, Any]  # "train", "val" -> ray.data.Dataset (one row per caption)
    grid: tuple[int, int] | None  # encoder grid (bands, time patches) when features come from the cache
    num_train_rows: int
    skipped: list  # clips dropped by data.on_bad_audio=skip
    # validation clips' (captions, retrieved captions): the context diagnostic each training logs
    val_contexts: list[tuple[list[str], list[str]]] = field(default_factory=list)


def checked_config(cfg: Config) -> Config:
    """cfg with absolute paths; a ConfigError for a checkpoint metric that no epoch reports."""
    if cfg.train.checkpoint_metric not in CHECKPOINT_METRICS:
        raise ConfigError(
            f"train.checkpoint_metric: {cfg.train.checkpoint_metric!r} is not one of "
            f"{', '.join(CHECKPOINT_METRICS)}"
        )
    return with_absolute_paths(cfg)


def with_absolute_paths(cfg: Config) -> Config:
    raw = cfg.to_dict()
    for section, key in PATH_KEYS:
        node = raw if section is None else raw[section]
        if node.get(key):
            node[key] = str(Path(node[key]).expanduser().resolve())
    return from_dict(Config, raw)


# ---------------------------------------------------------------------------------------------
# The cluster


def check_cluster_for_training(cfg: Config) -> None:
    """On the Ray instance this process is connected to (``distillcaps.ray_runtime.ensure_ray``):
    the tracking store reaches every host, and the data-statistics actor runs."""
    import ray

    hosts = {node["NodeManagerAddress"] for node in ray.nodes() if node.get("Alive")}
    check_store_reaches_every_host(tracking_uri(cfg), hosts)
    start_data_stats_actor()


def check_store_reaches_every_host(uri: str, hosts: set[str]) -> None:
    """On a cluster of several machines, Train workers elsewhere log to the same MLflow store only if
    it is a server at an address they reach: not this machine's loopback, not a local SQLite file
    (each machine would write its own copy, or fail)."""
    if len(hosts) <= 1:
        return
    host = urlparse(uri).hostname or ""
    if uri.startswith(("sqlite:", "file:")) or "://" not in uri or host in LOOPBACK_HOSTS:
        raise ConfigError(
            f"the MLflow tracking store {uri} is local to this machine, but the Ray cluster has "
            f"{len(hosts)} machines ({', '.join(sorted(hosts))}): set MLFLOW_TRACKING_URI (or "
            "tracking.tracking_uri) to a server every node reaches, e.g. http://<head address>:5000 "
            "(cluster.yaml starts one on the head)"
        )


def start_data_stats_actor() -> None:
    """Create Ray Data's stats actor from here, outside any placement group, unless it exists.

    The first dataset pass creates it (a detached, named actor), but from a Train worker it lands
    in the worker's placement group, so it dies with every fit and the next fit starts it again:
    a process and ~4.5 s of imports per sweep trial. Made here, it lives as long as the Ray instance.
    Inside a placement group (a Tune trial's process) this does nothing: the driver made it.
    """
    import ray.util

    if ray.util.get_current_placement_group() is not None:
        return
    try:  # Ray Data's own getter (not public API); without it, Ray Data creates the actor as before
        from ray.data._internal.stats import get_or_create_stats_actor
    except ImportError:
        return
    get_or_create_stats_actor()


# ---------------------------------------------------------------------------------------------
# The data


def prepare_data(cfg: Config) -> PreparedData:
    """Caches first (data set, tiny CLAP/LLM, retrieval, frozen features), then the Ray Datasets."""
    from distillcaps.retrieval import load_retrieved  # lazy: imports torch
    from distillcaps.standins import ensure_standins  # lazy: trains with torch on a cache miss

    splits = {"train": cfg.data.train_subset, "val": cfg.data.val_subset}
    records, skipped = usable_splits(cfg, splits)
    # The stand-ins (tiny CLAP, tiny LLM) are trained here, once, in one process: the retrieval, the
    # feature cache and every worker's model only load them.
    ensure_standins(cfg)
    retrieved = {split: load_retrieved(cfg, subset) for split, subset in splits.items()}
    datasets, grid = ray_datasets(cfg, splits, records, retrieved)
    num_train_rows = sum(len(r.captions) for r in records["train"])
    val_contexts = [
        (list(r.captions), [hit["caption"] for hit in retrieved["val"][r.fname]]) for r in records["val"]
    ]
    return PreparedData(datasets, grid, num_train_rows, skipped, val_contexts)


def usable_splits(cfg: Config, splits: dict[str, str]) -> tuple[dict[str, list[ClipRecord]], list]:
    """Each split's usable clips (data.on_bad_audio) -> ({split: records}, the clips skipped)."""
    from distillcaps.data import resolve_dataset_dir  # lazy: imports soundfile
    from distillcaps.data.usable import print_skipped, usable_records  # lazy: imports soundfile

    root = resolve_dataset_dir(cfg)
    records, skipped = {}, []
    for split, subset in splits.items():
        kept, bad = usable_records(cfg, subset)
        if not kept:
            raise ValueError(f"subset {subset!r} of {root} has no usable clips")
        records[split] = kept
        skipped.extend(bad)
        print_skipped(bad, f"subset {subset!r}")
    return records, skipped


def ray_datasets(
    cfg: Config, splits: dict[str, str], records: dict[str, list[ClipRecord]], retrieved: dict[str, dict]
) -> tuple[dict[str, Any], tuple[int, int] | None]:
    """One row per caption of each split -> ({split: ray.data.Dataset}, the feature cache's grid or
    None): frozen-encoder features from the cache when the encoder is frozen and the cache is on,
    else decoded audio."""
    import ray.data

    # Datasets carry the context they were made in: workers print one line per epoch, and Ray
    # Data's progress bars would add a line a second to a run's log (seen in ablation logs).
    ray.data.DataContext.get_current().enable_progress_bars = False
    use_features = cfg.train.feature_cache and cfg.model.encoder.frozen
    datasets, grid = {}, None
    for split in splits:
        rows = split_rows(records[split], retrieved[split], per="caption")
        if split == "train":
            # rows come in clip order: shuffled once, with the run's seed, so that no clip trains
            # only at the end of the schedule (the workers' local shuffle only mixes 256 neighbours)
            random.Random(cfg.seed).shuffle(rows)
        if use_features:
            folder = ensure_features(cfg, records[split], splits[split])
            grid = FeatureCache.open(folder).grid
            datasets[split] = feature_dataset(rows, folder, cfg)
        else:
            datasets[split] = audio_dataset(rows, cfg, random_crop=cfg.train.random_crop and split == "train")
    return datasets, grid
