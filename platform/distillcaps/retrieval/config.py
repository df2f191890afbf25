"""Retrieval section of the config: CLAP backend, datastore, index, top-k and the leakage guard."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TinyClapConfig:
    """The offline default CLAP: trained contrastively on the training split in a few CPU minutes."""

    embed_dim: int = 128  # joint audio/text space
    text_dim: int = 128
    text_layers: int = 2
    text_heads: int = 4
    max_words: int = 32  # captions are short (Clotho: 8-20 words)
    epochs: int = 8  # 600 clips x 5 s: ~135 CPU-s (1-2 min wall on 2 free cores), val recall@5 0.69
    batch_size: int = 64  # clips per contrastive batch (one random caption each)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    init_temperature: float = 0.07  # CLIP's starting temperature; learnable afterwards
    # Its own seed, apart from the run's `seed`: a CLAP checkpoint (and the frozen encoder taken from
    # it) stays the same across the training seeds of an ablation, as the paper's does.
    seed: int = 0


@dataclass
class RetrievalConfig:
    clap: str = "tiny-clap"  # registry key: tiny-clap | hf-clap | laion-clap
    clap_checkpoint: str = ""  # hf-clap: save_pretrained dir; laion-clap: .pt; tiny-clap: empty -> train once
    laion_amodel: str = "HTSAT-tiny"  # laion-clap audio model name (the 630k checkpoints use HTSAT-tiny)
    laion_enable_fusion: bool = False  # must match the laion-clap checkpoint
    datastore_subset: str = "dev"  # the paper's datastore: the training split's captions
    # registry key exact | torch | ivf | hnsw, or auto: torch (exact, fastest measured here) up to
    # 100k captions, ivf above
    index: str = "auto"
    index_gpu: bool = True  # put faiss indexes on a GPU when faiss sees one
    ivf_nlist: int = 0  # ivf clusters; 0 -> ~4*sqrt(N)
    ivf_nprobe: int = 16
    hnsw_m: int = 32
    top_k: int = 3  # captions in the teacher prompt (paper: 3)
    store_k: int = 7  # captions stored per clip in the precomputed JSONL (RECAP keeps 7)
    search_k: int = 15  # search deeper, then drop the clip's own captions (RECAP's rule)
    batch_size: int = 64
    # how clip audio is embedded for the precomputed lists: "ray" (Ray Data actor stage) | "local"
    # (in this process: small sets, or a machine too loaded for Ray's 30 s raylet start-up limit) |
    # "auto" (local: the Ray stage runs on CPU too, where it was the slower; precompute_engine.py)
    embed_with: str = "auto"
    ray_object_store_mb: int = 500  # a small object store: embeddings are tiny, the machine is shared
    tiny: TinyClapConfig = field(default_factory=TinyClapConfig)
