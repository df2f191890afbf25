"""docs/howto/add-a-metric.md: its metric, run as written, scores what the page says."""

from __future__ import annotations

import pytest
from howto_pages import registry_copy

from distillcaps.config import load_config
from distillcaps.evaluation import metrics


def test_the_exact_match_metric_of_the_page_scores_by_hand(run_page, monkeypatch, tmp_path):
    monkeypatch.setattr(metrics, "METRICS", registry_copy(metrics.METRICS))
    run_page("add-a-metric.md")
    # A Java path that does not exist: no JVM is started (the "simple" tokenization).
    cfg = load_config(
        "tiny",
        [f"run_dir={tmp_path}", "eval.java_path=/nonexistent/java", "eval.metrics=[bleu_1,exact_match]"],
    )
    references = [["a dog barks", "a dog is barking"], ["rain falls on a tin roof"]]
    result = metrics.score_captions(["A dog barks.", "rain falls"], references, cfg)
    assert result.tokenization == "simple"
    assert result.metrics["exact_match"] == 0.5 and result.per_clip["exact_match"] == [1.0, 0.0]
    assert set(result.metrics) == {"bleu_1", "exact_match"} and not result.unavailable
    with pytest.raises(ValueError, match="unknown metric 'exact_mach'"):
        metrics.score_captions(["x"], [["x"]], load_config("tiny", ["eval.metrics=[exact_mach]"]))
