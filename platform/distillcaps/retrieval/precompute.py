"""Precomputed retrieval (interface 4): top ``store_k`` captions for every clip of every subset.

    <cache>/retrieval/<clap-slug>/datastore-<subset>-<key>/   the embedded caption datastore
                                  .../index-<kind>-<tag>/      its search index
    <cache>/retrieval/<clap-slug>/lists-<key>/<subset>.jsonl  {"fname", "retrieved": [{caption, score,
                                                              source_fname}]}, one line per usable clip
    <cache>/retrieval/<clap-slug>/lists-<key>/manifest.json   settings, clip counts, skipped files

Each folder's name holds a hash of everything its content depends on, so a changed input gives a
new folder and a stale one is never read: the datastore's key is the CLAP's identity (backend +
checkpoint hash) and the datastore subset's clips (name, resolved audio path, captions); the lists'
key adds every queried clip's audio file (resolved path, size, mtime), the query crop
(``data.sample_rate``, ``data.max_seconds``), the index settings and ``store_k``/``search_k``.
A folder is built under a temporary name and renamed into place whole (``build_folder``), under a
lock (``cache_lock``): of two concurrent builders the second waits, then reads the first's folder.

Queried clips are the usable ones (``distillcaps.data.usable``): with ``data.on_bad_audio=skip``
a clip with bad audio has no line (the manifest names it), as it has no training row or prediction;
with ``error`` a bad file stops the build. The datastore reads no audio and keeps every caption.

Training, evaluation and the experiments read these files; nothing re-retrieves per step.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distillcaps.atomic_folder import build_folder, cache_lock
from distillcaps.data import cache_dir_for, read_records, resolve_dataset_dir
from distillcaps.data.audio import BadAudioError
from distillcaps.data.usable import check_records, files_identity
from distillcaps.retrieval.clap import build_clap
from distillcaps.retrieval.datastore import MANIFEST as DATASTORE_MANIFEST
from distillcaps.retrieval.datastore import CaptionDatastore, check_identity, clip_key
from distillcaps.retrieval.embed import AUDIO_EMBEDDERS
from distillcaps.retrieval.guard import guarded_search
from distillcaps.retrieval.index import (
    INDEX_JSON,
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
# Part of every key: bump it when what a cache folder holds changes meaning (a new field, a new rule).
CACHE_VERSION = 2


class MissingRetrievalError(KeyError):
    """A clip that should have precomputed captions has none in the retrieval file."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class RetrievedLists(dict):
    """fname -> retrieved list; a clip that is not in the file is an error naming it, never []."""

    def __init__(self, rows: dict[str, list[dict[str, Any]]], source: Path) -> None:
        super().__init__(rows)
        self.source = source

    def __missing__(self, fname: str) -> list[dict[str, Any]]:
        raise MissingRetrievalError(
            f"{self.source}: no retrieved captions for clip {fname!r} (its audio was skipped as bad "
            "when the file was built, or the clip is not in this subset)"
        )


# --- locations and records ---------------------------------------------------------------------


def retrieval_root(cfg: Config) -> Path:
    return Path(cache_dir_for(cfg)) / "retrieval"


def retrieval_dir(cfg: Config, clap: ClapEncoder) -> Path:
    return retrieval_root(cfg) / clap.slug


def subsets_of(cfg: Config) -> list[str]:
    return list(dict.fromkeys([cfg.data.train_subset, cfg.data.val_subset, cfg.data.eval_subset]))


def records_for(cfg: Config, subset: str) -> list[Any]:
    """Every clip of ``subset``, usable audio or not (see distillcaps.data.usable for the check)."""
    return read_records(resolve_dataset_dir(cfg), cfg.data.dataset_format, subset)


def digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def captions_identity(records: Sequence[Any]) -> list[list[Any]]:
    """What a datastore built from ``records`` depends on: which clip said what."""
    return [[r.dataset, r.fname, clip_key(r), list(r.captions)] for r in records]


def pinned_config(cfg: Config, clap: ClapEncoder) -> Config:
    """cfg with clap_checkpoint set to the checkpoint ``clap`` was loaded from (for Ray actors)."""
    pinned = copy.deepcopy(cfg)
    pinned.retrieval.clap_checkpoint = clap.source
    return pinned


# --- datastore + index ---------------------------------------------------------------------------


def datastore_key(clap: ClapEncoder, subset: str, records: Sequence[Any]) -> str:
    return digest(
        {
            "version": CACHE_VERSION,
            "identity": clap.identity,
            "subset": subset,
            "captions": captions_identity(records),
        }
    )


def ensure_datastore(
    cfg: Config, clap: ClapEncoder, subset: str | None = None
) -> tuple[CaptionDatastore, Path]:
    """(the datastore of ``subset`` (default cfg.retrieval.datastore_subset) embedded by ``clap``,
    its folder); built once per key."""
    subset = subset or cfg.retrieval.datastore_subset
    records = records_for(cfg, subset)
    folder = retrieval_dir(cfg, clap) / f"datastore-{subset}-{datastore_key(clap, subset, records)}"

    def build(tmp: Path) -> None:
        with build_threads():  # the vectors must not depend on the calling process (torch_threads.py)
            store = CaptionDatastore.build(
                clap, records, subset, batch_size=max(cfg.retrieval.batch_size, 256)
            )
        store.save(tmp)  # writes its manifest last

    with cache_lock(folder):
        build_folder(folder, build, marker=DATASTORE_MANIFEST)
    return CaptionDatastore.load(folder, expected_identity=clap.identity), folder


def ensure_index(cfg: Config, store: CaptionDatastore, datastore_dir: Path) -> CaptionIndex:
    """The configured index over ``store`` (saved beside it; one folder per settings)."""
    settings = index_settings(cfg.retrieval, len(store))
    kind = resolve_index_kind(cfg.retrieval.index, len(store))
    folder = datastore_dir / f"index-{kind}-{digest({'kind': kind, **settings})[:8]}"
    with cache_lock(folder):
        build_folder(
            folder, lambda tmp: build_index(cfg.retrieval, store.vectors).save(tmp), marker=INDEX_JSON
        )
    index = load_index(folder)
    if index.size != len(store):
        raise RuntimeError(f"{folder}: index of {index.size} vectors for a datastore of {len(store)}")
    return index


# --- precomputed top-k -----------------------------------------------------------------------------


def lists_key(cfg: Config, clap: ClapEncoder, store_key: str, record_sets: dict[str, list]) -> dict[str, Any]:
    """Everything the lists' content depends on (hashed into their folder's name)."""
    rcfg = cfg.retrieval
    return {
        "version": CACHE_VERSION,
        "identity": clap.identity,
        "datastore": store_key,
        "index": {
            "kind": rcfg.index,
            "nlist": rcfg.ivf_nlist,
            "nprobe": rcfg.ivf_nprobe,
            "hnsw_m": rcfg.hnsw_m,
        },
        "store_k": rcfg.store_k,
        "search_k": rcfg.search_k,
        "query_audio": {"sample_rate": cfg.data.sample_rate, "max_seconds": cfg.data.max_seconds},
        "subsets": {s: files_identity(r) for s, r in record_sets.items()},  # incl. size, mtime
    }


def ensure_retrieval(cfg: Config) -> Path:
    """Compute (once per key) the leakage-guarded top store_k captions of every usable clip of every
    subset. -> the folder holding ``<subset>.jsonl`` for cfg.data.{train,val,eval}_subset.
    """
    rcfg = cfg.retrieval
    if rcfg.store_k < rcfg.top_k:
        raise ValueError(f"retrieval.store_k={rcfg.store_k} is smaller than retrieval.top_k={rcfg.top_k}")
    clap = build_clap(cfg)
    record_sets = {s: records_for(cfg, s) for s in subsets_of(cfg)}
    store_records = record_sets.get(rcfg.datastore_subset) or records_for(cfg, rcfg.datastore_subset)
    store_key = datastore_key(clap, rcfg.datastore_subset, store_records)
    key = lists_key(cfg, clap, store_key, record_sets)
    folder = retrieval_dir(cfg, clap) / f"lists-{digest(key)}"

    def build(tmp: Path) -> None:
        store, store_dir = ensure_datastore(cfg, clap)
        index = ensure_index(cfg, store, store_dir)
        pinned = pinned_config(cfg, clap)
        timings, counts, skipped = {}, {}, {}
        for subset, records in record_sets.items():
            t0 = time.perf_counter()
            kept, bad = check_records(records, cfg.data.on_bad_audio)  # "error" raises here
            rows = retrieve_records(pinned, clap, store, index, kept)
            (tmp / f"{subset}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            timings[subset] = round(time.perf_counter() - t0, 2)
            counts[subset] = len(rows)
            skipped[subset] = [vars(b) for b in bad]
            log.info("retrieval: %s -> %d clips in %.1f s", subset, len(rows), timings[subset])
        summary = {k: v for k, v in key.items() if k != "subsets"}
        manifest = {
            **summary,
            "clips": counts,
            "skipped": skipped,
            "seconds": timings,
            "datastore_size": len(store),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))  # last: the folder's sign of being whole

    with cache_lock(folder):
        build_folder(folder, build, marker=MANIFEST)
    check_skipped(folder, cfg.data.on_bad_audio)
    return folder


def check_skipped(folder: Path, on_bad_audio: str) -> None:
    """Lists built under on_bad_audio=skip hold no line for a bad clip: with "error" that is an error."""
    skipped = json.loads((folder / MANIFEST).read_text()).get("skipped", {})
    first = next((item for items in skipped.values() for item in items), None)
    if on_bad_audio != "skip" and first is not None:
        raise BadAudioError(
            first["path"], f"{first['reason']} (set data.on_bad_audio=skip to drop such clips and count them)"
        )


def retrieve_records(
    cfg: Config,
    clap: ClapEncoder,
    store: CaptionDatastore,
    index: CaptionIndex,
    records: Sequence[Any],
) -> list[dict[str, Any]]:
    """Interface-4 rows for ``records``: audio embedded (Ray Data by default), then a guarded search."""
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
                    "source_fname": store.first_sources[h.caption_id][1],
                }
                for h in row
            ],
        }
        for r, row in zip(records, hits, strict=True)
    ]


def load_retrieved(cfg: Config, subset: str) -> RetrievedLists:
    """fname -> retrieved list (best first) for ``subset``'s usable clips; computes the cache on first
    use. Looking up a clip that has no line raises MissingRetrievalError naming it."""
    path = ensure_retrieval(cfg) / f"{subset}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no precomputed retrieval for subset {subset!r} (computed: {', '.join(subsets_of(cfg))})"
        )
    rows = {}
    for line in path.read_text().splitlines():
        if line:
            row = json.loads(line)
            rows[row["fname"]] = row["retrieved"]
    return RetrievedLists(rows, path)
