"""Retrieval section of the config: CLAP backend, datastore, index, top-k and the leakage guard."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RetrievalConfig:
    clap: str = "tiny-clap"  # registry key: tiny-clap | hf-clap | laion-clap
    clap_checkpoint: str = ""  # hf-clap / laion-clap: local path
    datastore_subset: str = "dev"  # the paper's datastore: the training split's captions
    index: str = "exact"  # registry key: exact | torch | ivf | hnsw
    top_k: int = 3  # captions in the teacher prompt (paper: 3)
    store_k: int = 7  # captions stored per clip in the precomputed JSONL (RECAP keeps 7)
    search_k: int = 15  # search deeper, then drop the clip's own captions (RECAP's rule)
    batch_size: int = 64
