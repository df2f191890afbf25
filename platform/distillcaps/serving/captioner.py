"""A Captioner turns 16 kHz mono waveforms into captions, with or without retrieval.

The model behind it comes from a backend in ``CAPTIONER_BACKENDS`` ("distillcaps": a
``DistillCapsModel`` checkpoint), loaded from a checkpoint directory or an MLflow registry URI. The
HTTP service, the batch captioner and the tests all go through this one class.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from distillcaps.config import Config, from_dict
from distillcaps.data.audio import pad_waveforms
from distillcaps.data.batches import ModelBatch
from distillcaps.evaluation.captioning import caption_clips
from distillcaps.model.config import GenerationConfig
from distillcaps.registry import Registry
from distillcaps.serving.config import ServingConfig
from distillcaps.serving.model_store import ResolvedModel, resolve_model
from distillcaps.serving.options import DecodingOptions

logger = logging.getLogger("distillcaps.serving")


class RetrievalUnavailable(RuntimeError):
    """rag=true was asked of a captioner that has no datastore deployed."""


class CaptionerBackend(Protocol):
    """What a backend provides; built by ``factory(checkpoint_dir, retrieval=bool)``."""

    rag_unavailable_reason: str | None  # None when rag=true works

    def generate(self, waveforms: list[np.ndarray], rag: bool, decoding: DecodingOptions) -> list[str]: ...

    def summary(self) -> dict[str, Any]: ...


CAPTIONER_BACKENDS: Registry = Registry("captioner backend")


class Captioner:
    """A loaded model plus where it came from (registry name and version)."""

    def __init__(self, backend: CaptionerBackend, source: ResolvedModel, backend_name: str) -> None:
        self.backend = backend
        self.source = source
        self.backend_name = backend_name

    @classmethod
    def load(cls, cfg: ServingConfig) -> Captioner:
        for module in cfg.plugin_modules:
            importlib.import_module(module)
        factory = CAPTIONER_BACKENDS.get(cfg.backend)
        source = resolve_model(cfg.model_uri, tracking_uri=cfg.tracking_uri)
        return cls(factory(source.path, retrieval=cfg.retrieval), source, cfg.backend)

    @classmethod
    def from_uri(cls, model_uri: str, *, retrieval: bool = False, **options: Any) -> Captioner:
        return cls.load(ServingConfig(model_uri=model_uri, retrieval=retrieval, **options))

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def version(self) -> str:
        return self.source.version

    @property
    def rag_available(self) -> bool:
        return self.backend.rag_unavailable_reason is None

    def caption(
        self, waveforms: Sequence[np.ndarray], rag: bool = False, options: DecodingOptions | None = None
    ) -> list[str]:
        """waveforms: list of (S_i,) float32 at 16 kHz -> one caption each."""
        if rag and not self.rag_available:
            raise RetrievalUnavailable(f"retrieval is not available: {self.backend.rag_unavailable_reason}")
        if not waveforms:
            return []
        return self.backend.generate(list(waveforms), rag, options or DecodingOptions())

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "uri": self.source.uri,
            "backend": self.backend_name,
            "rag_available": self.rag_available,
            "rag_unavailable_reason": self.backend.rag_unavailable_reason,
            "config": self.backend.summary(),
        }


def caption_each(
    captioner: Captioner, waveforms: Sequence[np.ndarray], rag: bool, options: DecodingOptions
) -> list[str | None]:
    """``captioner.caption`` with one generate call; if that call fails, each clip alone, so a clip
    the model cannot take costs only its own caption: None (the exception is logged).
    RetrievalUnavailable is the request's fault, not a clip's: it propagates."""
    try:
        return list(captioner.caption(waveforms, rag, options))
    except RetrievalUnavailable:
        raise
    except Exception:
        if len(waveforms) == 1:
            logger.exception("captioning one clip (%d samples) failed", waveforms[0].shape[0])
            return [None]
        logger.warning("a batch of %d clips failed; captioning them one by one", len(waveforms))
    return [caption_each(captioner, [wave], rag, options)[0] for wave in waveforms]


@CAPTIONER_BACKENDS.register("distillcaps")
class DistillCapsBackend:
    """A DistillCapsModel checkpoint (interface 5), optionally with the online Retriever (interface 4)."""

    def __init__(self, checkpoint_dir: Path, *, retrieval: bool = False) -> None:
        from distillcaps.standins import build_retriever, load_trained_model  # lazy: torch, transformers

        self.model = load_trained_model(checkpoint_dir)
        self.model.eval()
        self.cfg = _checkpoint_config(self.model, checkpoint_dir)
        self.retriever = None
        self.rag_unavailable_reason: str | None = (
            "this deployment has no datastore "
            "(start it with retrieval enabled: --rag, or user_config retrieval: true)"
        )
        if retrieval:
            self.retriever = build_retriever(self.cfg)
            self.rag_unavailable_reason = None

    def generate(self, waveforms: list[np.ndarray], rag: bool, decoding: DecodingOptions) -> list[str]:
        """One generate call for the request batch: its clips padded to the longest (uploads are
        already limited to max_duration_s), with online retrieval when ``rag``."""
        audio, lengths = pad_waveforms(waveforms)  # (B, longest S) float32, (B,) int64
        batch = ModelBatch.from_waveforms(audio, lengths)
        return caption_clips(
            self.model,
            [batch],
            rag=rag,
            retriever=self.retriever,
            top_k=self.cfg.retrieval.top_k,
            generation=decoding_config(self.cfg.model.generation, decoding),
        )

    def summary(self) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "preset": cfg.preset,
            "encoder": cfg.model.encoder.name,
            "adapter": cfg.model.adapter.variant,
            "llm": cfg.model.llm.name if not cfg.model.llm.path else cfg.model.llm.path,
            "train_mode": cfg.train.mode if hasattr(cfg.train, "mode") else None,
            "top_k": cfg.retrieval.top_k,
            "clap": cfg.retrieval.clap,
            "generation": {
                "num_beams": cfg.model.generation.num_beams,
                "max_new_tokens": cfg.model.generation.max_new_tokens,
            },
        }


def decoding_config(generation: GenerationConfig, decoding: DecodingOptions) -> GenerationConfig:
    """The checkpoint's generation settings with a request's decoding options over them."""
    changes = {k: v for k, v in dataclasses.asdict(decoding).items() if v is not None}
    if "max_new_tokens" in changes:
        changes["min_new_tokens"] = min(generation.min_new_tokens, changes["max_new_tokens"])
    return dataclasses.replace(generation, **changes)


def _checkpoint_config(model: Any, checkpoint_dir: Path) -> Any:
    """The resolved Config the checkpoint was trained with (config.json), as a Config object."""
    cfg = getattr(model, "cfg", None)
    if isinstance(cfg, Config):
        return cfg
    return from_dict(Config, json.loads((Path(checkpoint_dir) / "config.json").read_text()))
