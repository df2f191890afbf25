"""caption_with_retrieval: one encoder pass for caption and query where the encoder is the CLAP's
audio tower, one search call per batch — and the same captions as retrieve() + generate(rag=True)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from assembly_fixtures import CAPTIONS, ENC_DIM, clip_audio, shared_dir, shared_llm_dir, tiny_cfg

from distillcaps.data.batches import ModelBatch
from distillcaps.model.encoders import TinyAudioEncoder
from distillcaps.retrieval.clap.tiny import TinyClapEncoder
from distillcaps.retrieval.clap.tiny_model import AUDIO_DIR, TinyClap
from distillcaps.retrieval.clap.vocab import WordVocab
from distillcaps.retrieval.config import TinyClapConfig
from distillcaps.retrieval.datastore import CaptionDatastore
from distillcaps.retrieval.guard import guarded_search
from distillcaps.retrieval.index import build_index
from distillcaps.retrieval.online import caption_with_retrieval
from distillcaps.retrieval.retriever import Retriever

# More captions than clips, so that the top 3 differ from clip to clip.
STORE = [*CAPTIONS, *(f"{a} while {b}" for a in CAPTIONS[:4] for b in CAPTIONS[4:])]


@functools.cache
def clap_dir() -> Path:
    """A random tiny CLAP whose audio tower has the captioner's encoder size (the tiny preset's setup)."""
    torch.manual_seed(1)
    tower = TinyAudioEncoder(n_mels=64, dim=ENC_DIM, depth=1, num_heads=2)
    cfg = TinyClapConfig(embed_dim=16, text_dim=16, text_layers=1, text_heads=2)
    directory = shared_dir() / "online-clap"
    TinyClap(tower, WordVocab.build(STORE), cfg).save(directory)
    return directory


def retriever_for(clap: TinyClapEncoder, cfg) -> Retriever:
    vectors = clap.embed_text(STORE).numpy()
    sources = [[("clotho", f"store_{i}.wav")] for i in range(len(STORE))]
    store = CaptionDatastore(clap.identity, "dev", list(STORE), sources, vectors)
    return Retriever(clap, store, build_index(cfg.retrieval, vectors), search_k=5)


@pytest.fixture(scope="module")
def stack():
    from distillcaps.model.distillcaps_model import DistillCapsModel

    torch.manual_seed(0)
    cfg = tiny_cfg(shared_llm_dir(), f"model.encoder.checkpoint={clap_dir() / AUDIO_DIR}")
    model = DistillCapsModel.build(cfg).eval()
    return model, retriever_for(TinyClapEncoder(clap_dir()), cfg), cfg


def test_shared_tower_gives_the_old_paths_queries_hits_and_greedy_captions(stack):
    model, retriever, cfg = stack
    audio = clip_audio(6, seconds=1.0)
    lengths = torch.tensor([16_000, 12_000, 16_000, 8_000, 16_000, 14_000])
    assert cfg.model.generation.num_beams == 1  # greedy

    assert retriever.shares_encoder(model.encoder)
    tokens, mask, grid = model.encode_frozen(audio, lengths)
    from distillcaps.model.encoders.base import EncoderOutput

    reused = retriever.clap.embed_encoder_output(EncoderOutput(tokens, mask, grid))
    assert torch.equal(reused, retriever.clap.embed_audio(audio, lengths))  # (6, 16), bit for bit

    old_retrieved = retriever.retrieve(audio, lengths, 3)
    with torch.inference_mode():
        old = model.generate(ModelBatch.from_waveforms(audio, lengths, retrieved=old_retrieved), rag=True)
    new = caption_with_retrieval(model, retriever, audio, lengths, 3)

    assert len({tuple(r) for r in old_retrieved}) > 1 and all(len(r) == 3 for r in old_retrieved)
    assert new == old
    assert any(new)  # the decoder said something


def test_a_different_encoder_is_not_reused_and_the_captions_stay_the_same(stack):
    model, retriever, _ = stack
    audio, lengths = clip_audio(3, seconds=1.0), torch.tensor([16_000, 16_000, 9_000])
    original = model.encoder
    torch.manual_seed(5)
    model.encoder = TinyAudioEncoder(n_mels=64, dim=ENC_DIM, depth=1, num_heads=2).freeze()
    try:
        assert not retriever.shares_encoder(model.encoder)
        retrieved = retriever.retrieve(audio, lengths, 3)
        with torch.inference_mode():
            old = model.generate(ModelBatch.from_waveforms(audio, lengths, retrieved=retrieved), rag=True)
        assert caption_with_retrieval(model, retriever, audio, lengths, 3) == old
    finally:
        model.encoder = original


def test_unguarded_batch_search_matches_guarded_search(stack):
    _, retriever, _ = stack
    queries = torch.nn.functional.normalize(
        torch.randn(7, 16, generator=torch.Generator().manual_seed(3)), dim=-1
    )
    queries = queries.numpy()
    for k in (1, 3, len(STORE) + 2):  # more than the datastore holds: short rows, as guarded_search
        hits = guarded_search(
            retriever.index, retriever.datastore, queries, [None] * 7, k, retriever.search_k
        )
        expected = [[(retriever.datastore.captions[h.caption_id], h.score) for h in row] for row in hits]
        assert retriever.search_unguarded(queries, k) == expected


def test_an_approximate_index_short_row_falls_back_to_the_guard(stack):
    _, retriever, _ = stack

    class ShortIndex:  # returns -1 past the first hit, as IVF with too few probed lists does
        size = retriever.index.size

        def search(self, queries, k):
            scores, ids = retriever.index.search(queries, k)
            ids[:, 1:], scores[:, 1:] = -1, -np.inf
            return scores, ids

    unguarded = Retriever.__new__(Retriever)
    unguarded.clap, unguarded.datastore, unguarded.search_k = retriever.clap, retriever.datastore, 5
    unguarded.index = ShortIndex()
    assert unguarded.search_unguarded(np.ones((2, 16), dtype=np.float32) / 4, 3) is None
