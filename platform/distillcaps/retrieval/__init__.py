"""distillcaps.retrieval: CLAP encoders, the caption datastore, leakage-guarded precomputed top-k.

ensure_retrieval(cfg) -> Path              compute (once) <subset>.jsonl for every subset
load_retrieved(cfg, subset) -> {fname: [{"caption", "score", "source_fname"}, ...]}
Retriever.from_config(cfg).retrieve(waveforms, lengths, k) -> list[list[str]]

Names are imported lazily: ``distillcaps.config`` imports ``distillcaps.retrieval.config`` and must
not pay for torch on the way (5 s, before a script's Ray instance even starts).
"""

from __future__ import annotations

from distillcaps.lazy_exports import lazy_exports

_EXPORTS = {
    "CAPTION_INDEXES": "index",
    "CLAP_ENCODERS": "clap",
    "CaptionDatastore": "datastore",
    "ClapEncoder": "clap",
    "EncoderMismatchError": "datastore",
    "Retriever": "retriever",
    "build_clap": "clap",
    "build_index": "index",
    "ensure_retrieval": "precompute",
    "load_index": "index",
    "load_retrieved": "precompute",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
