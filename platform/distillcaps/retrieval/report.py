"""Retrieval quality figures: audio->text recall@k and the leakage check.

- recall@k on the validation split, against a datastore of that split's own captions, no leakage
  guard: a hit is a retrieved caption of the query clip itself (the usual CLAP A->T recall).
  Chance level is given beside it (k random distinct captions).
- leakage: the fraction of training clips whose precomputed list holds any of their own captions.
  The guard makes this 0 by construction; the report checks the files actually written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from distillcaps.data.usable import usable_records
from distillcaps.retrieval.clap import ClapEncoder, build_clap
from distillcaps.retrieval.datastore import CaptionDatastore, caption_key, clip_key
from distillcaps.retrieval.embed import embed_records_local
from distillcaps.retrieval.index import TorchIndex
from distillcaps.retrieval.precompute import load_retrieved

if TYPE_CHECKING:
    from distillcaps.config import Config

RECALL_KS = (1, 5, 10)


def audio_text_recall(
    clap: ClapEncoder, records: Sequence[Any], cfg: Config, ks: Sequence[int] = RECALL_KS
) -> dict[str, float]:
    """{"recall@k": ..., "chance@k": ...} over ``records`` against their own caption pool."""
    store = CaptionDatastore.build(clap, records, subset="recall")
    index = TorchIndex({"gpu": True})
    index.add(store.vectors)
    queries = embed_records_local(cfg, clap, [str(r.path) for r in records])
    depth = min(max(ks), len(store))
    _, ids = index.search(queries, depth)
    out: dict[str, float] = {}
    own_counts = []
    for r in records:
        key = clip_key(r)
        own_counts.append(sum(1 for srcs in store.sources if key in srcs))
    for k in ks:
        hits = [
            any(i >= 0 and clip_key(r) in store.sources[i] for i in row[:k])
            for r, row in zip(records, ids, strict=True)
        ]
        out[f"recall@{k}"] = float(np.mean(hits))
        out[f"chance@{k}"] = float(np.mean([chance_of_hit(len(store), m, k) for m in own_counts]))
    out["clips"] = float(len(records))
    out["captions"] = float(len(store))
    return out


def chance_of_hit(pool: int, own: int, k: int) -> float:
    """P(at least one of `own` relevant items among k drawn without replacement from `pool`)."""
    miss = 1.0
    for j in range(min(k, pool)):
        miss *= max(0.0, (pool - own - j) / (pool - j))
    return 1.0 - miss


def leakage_fraction(retrieved: dict[str, list[dict[str, Any]]], records: Sequence[Any]) -> float:
    """Fraction of ``records`` whose retrieved list contains any of their own captions."""
    if not records:
        return 0.0
    leaked = 0
    for r in records:
        own = {caption_key(c) for c in r.captions}
        if any(caption_key(item["caption"]) in own for item in retrieved[r.fname]):
            leaked += 1
    return leaked / len(records)


def retrieval_report(cfg: Config) -> dict[str, float]:
    clap = build_clap(cfg)
    val, _ = usable_records(cfg, cfg.data.val_subset)
    report = {f"retrieval/{k}": v for k, v in audio_text_recall(clap, val, cfg).items()}
    train, _ = usable_records(cfg, cfg.data.train_subset)
    report["retrieval/train_leakage"] = leakage_fraction(load_retrieved(cfg, cfg.data.train_subset), train)
    return report
