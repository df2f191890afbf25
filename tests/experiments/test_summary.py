"""The README's results block is rendered from the committed result files, and its verdicts on the
paper's claims are computed seed by seed."""

from __future__ import annotations

from pathlib import Path

import pytest

from distillcaps.experiments.summary import BEGIN, END, Claim, main, render, replace_block, verdict

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_block_is_the_rendering_of_the_committed_results():
    readme = (ROOT / "README.md").read_text()
    assert replace_block(readme, render(ROOT)) == readme, (
        "README.md's results block is stale: run python -m distillcaps.experiments.summary"
    )
    assert main(["--root", str(ROOT), "--check"]) == 0


def row(per_seed: list[float], std: float) -> dict:
    scores = {str(seed): {"cider_d": value / 100} for seed, value in enumerate(per_seed)}
    return {
        "per_seed": scores,
        "mean": {"cider_d": sum(per_seed) / len(per_seed) / 100},
        "std": {"cider_d": std},
    }


@pytest.mark.parametrize(
    ("better", "worse", "expected"),
    [
        ([50, 52, 51], [40, 41, 42], "**shown**: in 3/3 seeds (+10.0, +11.0, +9.0)"),
        (
            [50, 52, 51],
            [49, 51, 50],
            "in 3/3 seeds (+1.0, +1.0, +1.0) but within the spread (±5.0): not shown",
        ),
        ([50, 40, 51], [45, 45, 45], "**not shown**: in 2/3 seeds (+5.0, -5.0, +6.0)"),
        (
            [40, 41, 42],
            [50, 52, 51],
            "**the opposite shown**: the other way round in 3/3 seeds (-10.0, -11.0, -9.0)",
        ),
        ([44, 45, 46], [45, 46, 47], "**not shown**: in 0/3 seeds (-1.0, -1.0, -1.0)"),
    ],
    ids=[
        "every-seed-beyond-spread",
        "every-seed-within-spread",
        "not-every-seed",
        "opposite",
        "opposite-within",
    ],
)
def test_a_claim_is_shown_only_in_every_seed_and_beyond_the_spread(better, worse, expected):
    rows = {"a": row(better, 0.05 if expected.startswith("in 3/3") else 0.01), "b": row(worse, 0.01)}
    assert verdict(rows, Claim("a beats b", "a", "b")) == expected


def test_a_readme_without_the_markers_is_refused_naming_them(tmp_path):
    with pytest.raises(ValueError, match="results block"):
        replace_block("# no block here\n", f"{BEGIN}\nx\n{END}")
