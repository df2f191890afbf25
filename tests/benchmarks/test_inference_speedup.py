"""benchmarks/inference_speedup.py runs on a random tiny stack and writes a well-formed JSON."""

from __future__ import annotations


def test_inference_speedup_quick_small(bench):
    data = bench(
        "inference_speedup.py",
        "--quick",
        "--batch",
        "2",
        "--latency-clips",
        "1",
        "--seconds",
        "1",
        "--new-tokens",
        "3",
        "--repeats",
        "2",
        "--warmup",
        "0",
        "--datastore",
        "200",
    )
    names = {c["name"] for c in data["cases"]}
    assert {
        "student/b2",
        "rag_online/b2",
        "rag_precomputed/b2",
        "retrieval_only/b2",
        "student/b1",
        "rag_online/b1",
    } == names
    assert {r["name"] for r in data["ratios"]} == {
        "student / rag_online @b2 (captions/s)",
        "student / rag_precomputed @b2 (captions/s)",
        "student / rag_online @b1 (captions/s)",
    }
    prompts = data["settings"]["prompt_tokens"]
    assert prompts["teacher"] > prompts["student"] > prompts["audio_tokens"] > 0  # retrieval lengthens it
    assert "randomly initialised" in data["settings"]["model"]
