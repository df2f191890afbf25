"""Indexes: save/load round trip for every kind; approximate kinds agree with exact search on a small set."""

from __future__ import annotations

import numpy as np
import pytest

from distillcaps.retrieval.config import RetrievalConfig
from distillcaps.retrieval.index import CAPTION_INDEXES, build_index, load_index


def unit_vectors(n, dim=32, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("kind", ["exact", "torch", "ivf", "hnsw"])
def test_save_load_round_trip(tmp_path, kind):
    vectors, queries = unit_vectors(300), unit_vectors(10, seed=1)
    index = build_index(RetrievalConfig(index=kind, index_gpu=False), vectors)
    scores, ids = index.search(queries, 5)
    loaded = load_index(index.save(tmp_path / kind))
    assert type(loaded) is type(index) and loaded.size == 300
    scores2, ids2 = loaded.search(queries, 5)
    np.testing.assert_array_equal(ids, ids2)
    np.testing.assert_allclose(scores, scores2, rtol=1e-5)


def test_exact_kinds_match_brute_force():
    vectors, queries = unit_vectors(500), unit_vectors(20, seed=2)
    expected = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    for kind in ("exact", "torch"):
        _, ids = build_index(RetrievalConfig(index=kind, index_gpu=False), vectors).search(queries, 10)
        np.testing.assert_array_equal(ids, expected)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_agrees_with_exact(kind):
    # Caption embeddings cluster (by sound event); so does this set: 20 centres + noise.
    centres = unit_vectors(20, seed=4)
    rng = np.random.default_rng(5)
    vectors = centres[rng.integers(0, 20, 1000)] + 0.3 * unit_vectors(1000, seed=6)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[rng.choice(1000, 50, replace=False)] + 0.1 * unit_vectors(50, seed=7)
    _, exact = build_index(RetrievalConfig(index="exact", index_gpu=False), vectors).search(queries, 10)
    cfg = RetrievalConfig(index=kind, index_gpu=False, ivf_nlist=16, ivf_nprobe=8)
    _, approx = build_index(cfg, vectors).search(queries, 10)
    overlap = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert overlap >= 0.9, f"{kind}: recall@10 vs exact {overlap:.2f}"


def test_fewer_vectors_than_k_pads_with_minus_one():
    vectors = unit_vectors(3)
    for kind in ("exact", "torch"):
        scores, ids = build_index(RetrievalConfig(index=kind, index_gpu=False), vectors).search(
            vectors[:1], 5
        )
        assert list(ids[0, 3:]) == [-1, -1] and np.all(np.isneginf(scores[0, 3:]))


def test_unknown_index_names_the_choices():
    with pytest.raises(KeyError, match="exact"):
        CAPTION_INDEXES.get("annoy")


def test_auto_index_is_exact_torch_search_up_to_the_limit_and_ivf_beyond():
    from distillcaps.retrieval.index import AUTO_EXACT_MAX, resolve_index_kind

    assert RetrievalConfig().index == "auto"
    assert resolve_index_kind("auto", AUTO_EXACT_MAX) == "torch"
    assert resolve_index_kind("auto", AUTO_EXACT_MAX + 1) == "ivf"
    assert resolve_index_kind("hnsw", 10) == "hnsw"
    with pytest.raises(KeyError, match="exact"):
        resolve_index_kind("annoy", 10)
    vectors = np.eye(4, dtype=np.float32)
    index = build_index(RetrievalConfig(index_gpu=False), vectors)
    assert index.kind == "torch" and list(index.search(vectors[2:3], 1)[1][0]) == [2]
