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
        "50",
        "--repeats",
        "2",
        "--clusters",
        "50",
    )
    names = {c["name"] for c in data["cases"]}
    assert {"faiss_flat@2000", "torch_topk@2000", "ivf@2000", "hnsw@2000"} <= names
    for case in data["cases"]:
        assert 0.0 <= case["extra"]["recall_at_10"] <= 1.0
    exact = {c["params"]["index"]: c["extra"]["recall_at_10"] for c in data["cases"]}
    assert exact["torch_topk"] >= 0.99  # both exact paths agree (ties aside)
    assert data["settings"]["default_supported_per_size"]["2000"] in names_of_indexes(data)
    assert len(data["ratios"]) == 3


def names_of_indexes(data):
    return {c["params"]["index"] for c in data["cases"]}
