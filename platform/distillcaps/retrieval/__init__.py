"""distillcaps.retrieval: CLAP encoders, the caption datastore, leakage-guarded precomputed top-k.

ensure_retrieval(cfg) -> Path              compute (once) <subset>.jsonl for every subset
load_retrieved(cfg, subset) -> {fname: [{"caption", "score", "source_fname"}, ...]}
Retriever.from_config(cfg).retrieve(waveforms, lengths, k) -> list[list[str]]
ensure_tiny_clap(cfg) -> Path              the tiny CLAP (its audio_encoder/ is the tiny model's encoder)
"""

from distillcaps.retrieval.clap import CLAP_ENCODERS, ClapEncoder, build_clap, ensure_tiny_clap
from distillcaps.retrieval.datastore import CaptionDatastore, EncoderMismatchError
from distillcaps.retrieval.index import CAPTION_INDEXES, build_index, load_index
from distillcaps.retrieval.precompute import ensure_retrieval, load_retrieved
from distillcaps.retrieval.retriever import Retriever

__all__ = [
    "CAPTION_INDEXES",
    "CLAP_ENCODERS",
    "CaptionDatastore",
    "ClapEncoder",
    "EncoderMismatchError",
    "Retriever",
    "build_clap",
    "build_index",
    "ensure_retrieval",
    "ensure_tiny_clap",
    "load_index",
    "load_retrieved",
]
