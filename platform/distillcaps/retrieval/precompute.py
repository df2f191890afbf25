"""Precomputed retrieval (interface 4): top ``store_k`` captions for every clip of every subset.

    <cache>/retrieval/<clap-slug>/datastore-<subset>/  the embedded caption datastore (+ index-<kind>/)
    <cache>/retrieval/<clap-slug>/<subset>.jsonl  {"fname", "retrieved": [{caption, score, source_fname}]}
    <cache>/retrieval/<clap-slug>/manifest.json  settings + per-subset record hashes; stale -> recompute

Training, evaluation and the experiments read these files; nothing re-retrieves per step.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distillcaps.retrieval.datastore import CaptionDatastore, check_identity, clip_key
from distillcaps.retrieval.guard import guarded_search
from distillcaps.retrieval.index import (
    CaptionIndex,
    build_index,
    index_settings,
    load_index,
    resolve_index_kind,
)
from distillcaps.torch_threads import build_threads

if TYPE_CHECKING:
    from distillcaps.config import Config
    from distillcaps.retrieval.clap import ClapEncoder

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"


# --- locations and records ---------------------------------------------------------------------


def retrieval_root(cfg: Config) -> Path:
    from distillcaps.data import cache_dir_for

    return Path(cache_dir_for(cfg)) / "retrieval"


def retrieval_dir(cfg: Config, clap: ClapEncoder) -> Path:
    return retrieval_root(cfg) / clap.slug


def subsets_of(cfg: Config) -> list[str]:
    return list(dict.fromkeys([cfg.data.train_subset, cfg.data.val_subset, cfg.data.eval_subset]))


def records_for(cfg: Config, subset: str) -> list[Any]:
    from distillcaps.data import read_records, resolve_dataset_dir

    return read_records(resolve_dataset_dir(cfg), cfg.data.dataset_format, subset)


def records_hash(records: Sequence[Any]) -> str:
    digest = hashlib.sha256()
    for r in records:
        digest.update(json.dumps([r.dataset, r.fname, list(r.captions)]).encode())
    return digest.hexdigest()[:16]


def pinned_config(cfg: Config, clap: ClapEncoder) -> Config:
    """cfg with clap_checkpoint set to the checkpoint ``clap`` was loaded from (for Ray actors)."""
    pinned = copy.deepcopy(cfg)
    pinned.retrieval.clap_checkpoint = clap.source
    return pinned


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# --- datastore + index ---------------------------------------------------------------------------


def ensure_datastore(cfg: Config, clap: ClapEncoder, subset: str | None = None) -> CaptionDatastore:
    """The datastore of ``subset`` (default cfg.retrieval.datastore_subset) embedded by ``clap``; cached."""
    subset = subset or cfg.retrieval.datastore_subset
    records = records_for(cfg, subset)
    directory = retrieval_dir(cfg, clap) / f"datastore-{subset}"
    stamp = directory / "records.hash"
    if stamp.is_file() and stamp.read_text() == records_hash(records):
        return CaptionDatastore.load(directory, expected_identity=clap.identity)
    with build_threads():  # the vectors must not depend on the calling process (torch_threads.py)
        store = CaptionDatastore.build(clap, records, subset, batch_size=max(cfg.retrieval.batch_size, 256))
    store.save(directory)
    write_atomic(stamp, records_hash(records))
    return store


def ensure_index(cfg: Config, store: CaptionDatastore, datastore_dir: Path) -> CaptionIndex:
    """The configured index over ``store`` (saved beside it; rebuilt when the settings change)."""
    settings = index_settings(cfg.retrieval, len(store))
    tag = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    directory = datastore_dir / f"index-{resolve_index_kind(cfg.retrieval.index, len(store))}-{tag}"
    if (directory / "index.json").is_file():
        index = load_index(directory)
        if index.size == len(store):
            return index
    index = build_index(cfg.retrieval, store.vectors)
    index.save(directory)
    return index


# --- precomputed top-k -----------------------------------------------------------------------------


def ensure_retrieval(cfg: Config) -> Path:
    """Compute (once) the leakage-guarded top store_k captions of every clip of every subset.

    -> the folder holding ``<subset>.jsonl`` for cfg.data.{train,val,eval}_subset.
    """
    from distillcaps.retrieval.clap import build_clap

    rcfg = cfg.retrieval
    if rcfg.store_k < rcfg.top_k:
        raise ValueError(f"retrieval.store_k={rcfg.store_k} is smaller than retrieval.top_k={rcfg.top_k}")
    clap = build_clap(cfg)
    out = retrieval_dir(cfg, clap)
    subsets = subsets_of(cfg)
    record_sets = {s: records_for(cfg, s) for s in subsets}
    wanted = {
        "identity": clap.identity,
        "datastore_subset": rcfg.datastore_subset,
        "datastore_records": records_hash(records_for(cfg, rcfg.datastore_subset)),
        "index": rcfg.index,
        "store_k": rcfg.store_k,
        "search_k": rcfg.search_k,
        "subsets": {s: records_hash(r) for s, r in record_sets.items()},
    }
    manifest_path = out / MANIFEST
    if manifest_path.is_file() and all((out / f"{s}.jsonl").is_file() for s in subsets):
        stored = json.loads(manifest_path.read_text())
        if {k: stored.get(k) for k in wanted} == wanted:
            return out
    store = ensure_datastore(cfg, clap)
    index = ensure_index(cfg, store, out / f"datastore-{store.subset}")
    pinned = pinned_config(cfg, clap)
    timings = {}
    for subset, records in record_sets.items():
        t0 = time.perf_counter()
        rows = retrieve_records(pinned, clap, store, index, records)
        write_atomic(out / f"{subset}.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        timings[subset] = round(time.perf_counter() - t0, 2)
        log.info("retrieval: %s -> %d clips in %.1f s", subset, len(rows), timings[subset])
    write_atomic(
        manifest_path, json.dumps({**wanted, "seconds": timings, "datastore_size": len(store)}, indent=2)
    )
    return out


def retrieve_records(
    cfg: Config,
    clap: ClapEncoder,
    store: CaptionDatastore,
    index: CaptionIndex,
    records: Sequence[Any],
) -> list[dict[str, Any]]:
    """Interface-4 rows for ``records``: audio embedded (Ray Data by default), then a guarded search."""
    from distillcaps.retrieval.embed import AUDIO_EMBEDDERS

    if not records:
        return []
    check_identity(store.identity, clap.identity, Path(f"datastore-{store.subset}"))
    paths = [str(r.path) for r in records]
    queries = AUDIO_EMBEDDERS.get(cfg.retrieval.embed_with)(cfg, clap, paths)  # (N, E)
    hits = guarded_search(
        index, store, queries, [clip_key(r) for r in records], cfg.retrieval.store_k, cfg.retrieval.search_k
    )
    return [
        {
            "fname": r.fname,
            "retrieved": [
                {
                    "caption": store.captions[h.caption_id],
                    "score": round(h.score, 6),
                    "source_fname": store.sources[h.caption_id][0][1],
                }
                for h in row
            ],
        }
        for r, row in zip(records, hits, strict=True)
    ]


def load_retrieved(cfg: Config, subset: str) -> dict[str, list[dict[str, Any]]]:
    """fname -> retrieved list (best first) for ``subset``; computes the cache on first use."""
    path = ensure_retrieval(cfg) / f"{subset}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no precomputed retrieval for subset {subset!r} (computed: {', '.join(subsets_of(cfg))})"
        )
    out = {}
    for line in path.read_text().splitlines():
        if line:
            row = json.loads(line)
            out[row["fname"]] = row["retrieved"]
    return out
