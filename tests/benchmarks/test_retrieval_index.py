"""benchmarks/retrieval_index.py runs and writes a well-formed JSON (structure only, never speed)."""

from __future__ import annotations


def test_retrieval_index_quick_small(bench):
    # --quick with tiny sizes so the test takes seconds; the real --quick run is in run_all.
    data = bench(
        "retrieval_index.py",
        "--quick",
        "--sizes",
        "2000",
        "--queries",
        "32",
        "--batch-sizes",
        "1",
        "16",
        "--repeats",
        "2",
        "--clusters",
        "50",
    )
    indexes = {"faiss_flat", "torch_topk", "ivf", "hnsw"}
    names = {c["name"] for c in data["cases"]}
    assert {f"{i}@2000/b{b}" for i in indexes for b in (1, 16)} == names
    recall = {c["params"]["index"]: c["extra"]["recall_at_10"] for c in data["cases"]}
    assert all(0.0 <= r <= 1.0 for r in recall.values())
    assert recall["torch_topk"] >= 0.99  # both exact paths agree (ties aside)
    defaults = data["settings"]["default_supported_per_size"]["2000"]
    assert set(defaults) == {"batch_1", "batch_16"} and set(defaults.values()) <= indexes
    assert len(data["ratios"]) == 2 * 3  # each index vs faiss flat, per batch size
