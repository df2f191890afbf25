"""Online retrieval (serving, ``caption --rag``): the same CLAP, datastore and index as the cache."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from distillcaps.retrieval.datastore import CaptionDatastore, ClipKey, check_identity
from distillcaps.retrieval.guard import guarded_search
from distillcaps.retrieval.index import CaptionIndex

if TYPE_CHECKING:
    from distillcaps.config import Config
    from distillcaps.retrieval.clap import ClapEncoder


class Retriever:
    def __init__(
        self, clap: ClapEncoder, datastore: CaptionDatastore, index: CaptionIndex, search_k: int = 15
    ) -> None:
        check_identity(datastore.identity, clap.identity, datastore.subset)
        self.clap, self.datastore, self.index, self.search_k = clap, datastore, index, search_k

    @classmethod
    def from_config(cls, cfg: Config) -> Retriever:
        from distillcaps.retrieval.clap import build_clap
        from distillcaps.retrieval.precompute import ensure_datastore, ensure_index

        clap = build_clap(cfg)
        store, folder = ensure_datastore(cfg, clap)
        index = ensure_index(cfg, store, folder)
        return cls(clap, store, index, cfg.retrieval.search_k)

    def retrieve(
        self,
        waveforms: torch.Tensor,
        lengths: torch.Tensor | None,
        k: int,
        exclude: Sequence[ClipKey | None] | None = None,
    ) -> list[list[str]]:
        """(B, S) 16 kHz audio -> the k best captions per clip. ``exclude``: the resolved audio
        path per row (``clip_key``) for audio that is itself in the datastore (its own captions are
        then never returned)."""
        return [[c for c, _ in row] for row in self.retrieve_scored(waveforms, lengths, k, exclude)]

    def retrieve_scored(
        self,
        waveforms: torch.Tensor,
        lengths: torch.Tensor | None,
        k: int,
        exclude: Sequence[ClipKey | None] | None = None,
    ) -> list[list[tuple[str, float]]]:
        queries = self.clap.embed_audio(waveforms, lengths).numpy()  # (B, E)
        exclude = list(exclude) if exclude is not None else [None] * len(queries)
        hits = guarded_search(self.index, self.datastore, queries, exclude, k, self.search_k)
        return [[(self.datastore.captions[h.caption_id], h.score) for h in row] for row in hits]
