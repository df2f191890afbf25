"""benchmarks/inference_limits.py on a random tiny stack: its sides, its ratios, equal captions."""

from __future__ import annotations


def test_inference_limits_quick_small(bench):
    data = bench(
        "inference_limits.py",
        "--quick",
        "--clips",
        "4",
        "--batch",
        "2",
        "--seconds",
        "1",
        "--new-tokens",
        "3",
        "--num-beams",
        "2",
        "--repeats",
        "2",
        "--warmup",
        "0",
        "--datastore",
        "200",
    )
    assert {c["name"] for c in data["cases"]} == {
        "student/b2",
        "rag_shared/b2",
        "rag_reencode/b2",
        "greedy/b2",
        "greedy_bound/b2",
        "beam/b2",
        "beam_bound/b2",
    }
    assert [r["numerator"] + " : " + r["denominator"] for r in data["ratios"][:3]] == [
        "student/b2 : rag_shared/b2",
        "greedy/b2 : greedy_bound/b2",
        "beam/b2 : beam_bound/b2",
    ]
    settings = data["settings"]
    assert settings["encoder_pass_shared"] is True  # the random stack's encoder is its CLAP's tower
    assert settings["captions_equal"] is True  # the shared pass changes no caption
    assert settings["clips"] == 4 and settings["decode_prompt_shape"][0] == 2
