"""The leakage guard: a clip never retrieves its own captions (RECAP's rule, made exact).

Search ``search_k`` deep, drop every neighbour whose caption belongs to the query clip, keep the
best ``k``. If the clip's own captions filled so much of the list that fewer than ``k`` remain,
search deeper (doubling) rather than return a short list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from distillcaps.retrieval.datastore import CaptionDatastore, ClipKey
from distillcaps.retrieval.index import CaptionIndex


@dataclass(frozen=True)
class Hit:
    caption_id: int
    score: float


def guarded_search(
    index: CaptionIndex,
    datastore: CaptionDatastore,
    queries: np.ndarray,
    query_clips: Sequence[ClipKey | None],
    k: int,
    search_k: int,
) -> list[list[Hit]]:
    """Top-k hits per query (Q, E), excluding captions whose sources include that query's clip.

    query_clips[i] is the query's resolved audio path (``clip_key``), matched against each caption's
    source files; None for audio that is not in the datastore (serving): no exclusion.
    """
    if len(queries) != len(query_clips):
        raise ValueError(f"{len(queries)} queries but {len(query_clips)} clip keys")
    total = index.size
    want = min(k, total)
    results: list[list[Hit] | None] = [None] * len(queries)
    pending = list(range(len(queries)))
    depth = min(total, max(search_k, k))
    while pending:
        scores, ids = index.search(queries[pending], depth)
        still = []
        for row, q in enumerate(pending):
            own = query_clips[q]
            kept = [
                Hit(int(i), float(s))
                for s, i in zip(scores[row], ids[row], strict=True)
                if i >= 0 and (own is None or own not in datastore.sources[i])
            ]
            if len(kept) >= want or depth >= total:
                results[q] = kept[:want]
            else:
                still.append(q)
        pending = still
        depth = min(total, depth * 2)
    return [r or [] for r in results]
