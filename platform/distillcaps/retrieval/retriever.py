"""Online retrieval (serving, ``caption --rag``): the same CLAP, datastore and index as the cache."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from distillcaps.retrieval.clap import ClapEncoder, build_clap
from distillcaps.retrieval.datastore import CaptionDatastore, ClipKey, check_identity
from distillcaps.retrieval.guard import guarded_search
from distillcaps.retrieval.index import CaptionIndex
from distillcaps.retrieval.precompute import ensure_datastore, ensure_index

if TYPE_CHECKING:
    from distillcaps.config import Config
    from distillcaps.model.encoders.base import EncoderOutput


class Retriever:
    def __init__(
        self, clap: ClapEncoder, datastore: CaptionDatastore, index: CaptionIndex, search_k: int = 15
    ) -> None:
        check_identity(datastore.identity, clap.identity, datastore.subset)
        self.clap, self.datastore, self.index, self.search_k = clap, datastore, index, search_k
        self._shares: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # encoder -> bool

    @classmethod
    def from_config(cls, cfg: Config) -> Retriever:
        clap = build_clap(cfg)
        store, folder = ensure_datastore(cfg, clap)
        index = ensure_index(cfg, store, folder)
        return cls(clap, store, index, cfg.retrieval.search_k)

    def shares_encoder(self, encoder: torch.nn.Module) -> bool:
        """Whether the captioning ``encoder`` is this CLAP's audio tower, so that its output can be the
        query (``retrieve(..., encoded=)``). Checked once per encoder (a weight comparison)."""
        if encoder not in self._shares:
            self._shares[encoder] = self.clap.shares_audio_tower(encoder)
        return self._shares[encoder]

    def retrieve(
        self,
        waveforms: torch.Tensor,
        lengths: torch.Tensor | None,
        k: int,
        exclude: Sequence[ClipKey | None] | None = None,
        encoded: EncoderOutput | None = None,
    ) -> list[list[str]]:
        """(B, S) 16 kHz audio -> the k best captions per clip. ``exclude``: the resolved audio
        path per row (``clip_key``) for audio that is itself in the datastore (its own captions are
        then never returned).
        ``encoded``: the shared audio tower's output for these clips (see ``shares_encoder``)."""
        rows = self.retrieve_scored(waveforms, lengths, k, exclude, encoded)
        return [[c for c, _ in row] for row in rows]

    def retrieve_scored(
        self,
        waveforms: torch.Tensor,
        lengths: torch.Tensor | None,
        k: int,
        exclude: Sequence[ClipKey | None] | None = None,
        encoded: EncoderOutput | None = None,
    ) -> list[list[tuple[str, float]]]:
        if encoded is not None:  # the caller's encoder pass is this CLAP's tower: no second pass
            queries = self.clap.embed_encoder_output(encoded).numpy()  # (B, E)
        else:
            queries = self.clap.embed_audio(waveforms, lengths).numpy()  # (B, E)
        if exclude is None or all(key is None for key in exclude):
            found = self.search_unguarded(queries, k)
            if found is not None:
                return found
        exclude = list(exclude) if exclude is not None else [None] * len(queries)
        hits = guarded_search(self.index, self.datastore, queries, exclude, k, self.search_k)
        return [[(self.datastore.captions[h.caption_id], h.score) for h in row] for row in hits]

    def search_unguarded(self, queries: np.ndarray, k: int) -> list[list[tuple[str, float]]] | None:
        """Audio outside the datastore (test clips, uploads): one search call for the whole batch and
        no per-hit objects; the same hits guarded_search returns for it (first search, same depth).
        None when a row came back short (an approximate index): guarded_search then searches deeper."""
        total = self.index.size
        want, depth = min(k, total), min(total, max(self.search_k, k))
        scores, ids = self.index.search(queries, depth)  # (B, depth) each, best first
        scores, ids = scores[:, :want], ids[:, :want]
        if (ids < 0).any():
            return None
        captions = self.datastore.captions
        return [
            [(captions[i], s) for i, s in zip(row_ids, row_scores, strict=True)]
            for row_ids, row_scores in zip(ids.tolist(), scores.tolist(), strict=True)
        ]
