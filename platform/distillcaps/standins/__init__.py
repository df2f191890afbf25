"""distillcaps.standins: the models trained here in place of checkpoints a config leaves out.

ensure_standins(cfg) -> {name: Path}      build (once, cached) every stand-in cfg uses
ensure_checkpoint_standins(checkpoint_dir) the stand-ins a trained checkpoint's model loads
load_trained_model(checkpoint_dir)        a checkpoint's model, its stand-ins built first
build_retriever(cfg) -> Retriever         the online retriever, the tiny CLAP built first
ensure_tiny_clap(cfg) -> Path             the tiny CLAP (its audio_encoder/ is the tiny model's encoder)
ensure_tiny_llm(cfg) -> Path              the tiny Llama pretrained on the training captions

A room of its own above `retrieval`, `model` and `data` (it trains their parts) and below `training`,
`evaluation`, `experiments` and `serving` (which call it). Where each folder lives, and its cache key, is
`distillcaps.model.standin_folders`, below the registries that load them.
"""

from __future__ import annotations

from distillcaps.lazy_exports import lazy_exports

_EXPORTS = {
    "STANDINS": "ensure",
    "build_retriever": "ensure",
    "load_trained_model": "ensure",
    "ensure_checkpoint_standins": "ensure",
    "ensure_standins": "ensure",
    "ensure_tiny_clap": "tiny_clap",
    "ensure_tiny_llm": "tiny_llm",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
