"""The collapse detector on hand-made caption lists, and the "diversity" entry evaluate() writes."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from distillcaps.evaluation.diversity import caption_diversity, diversity_report, is_collapsed
from distillcaps.evaluation.evaluate import read_predictions_csv, write_predictions_csv

DIVERSE = [f"a dog barks {i} times near a road" for i in range(150)]
SAYS_ONE_THING = ["A dog barks."] * 140 + [f"rain falls {i}" for i in range(10)]


def test_captions_are_compared_after_normalisation() -> None:
    d = caption_diversity(["A dog barks.", "a dog  barks", "Rain falls!", "a dog barks"])
    assert d == {
        "distinct_captions": 2,
        "top_caption_share": 0.75,
        "top_caption": "a dog barks",
        "top_caption_count": 3,
    }


def test_a_model_that_says_one_thing_for_everything_is_collapsed() -> None:
    report = diversity_report(SAYS_ONE_THING)
    assert report["distinct_captions"] == 11 and report["top_caption_share"] == pytest.approx(0.9333)
    assert report["collapsed"] is True


def test_a_diverse_model_is_not_collapsed() -> None:
    assert diversity_report(DIVERSE)["collapsed"] is False


def test_the_acceptance_bar_on_150_clips() -> None:
    # 19 distinct captions, none on more than a quarter: too few distinct.
    nineteen = [f"caption {i % 19}" for i in range(150)]
    assert is_collapsed(caption_diversity(nineteen), 150)
    # 20 distinct, the most frequent on just under a quarter: passes.
    twenty = ["the favourite"] * 37 + [f"caption {i % 19}" for i in range(113)]
    assert caption_diversity(twenty)["top_caption_share"] < 0.25
    assert not is_collapsed(caption_diversity(twenty), 150)
    # 40 distinct, but one on 30% of the clips: repeated too often.
    favourite = ["the favourite"] * 45 + [f"caption {i}" for i in range(105)]
    assert is_collapsed(caption_diversity(favourite), 150)


def test_small_smoke_sets_get_a_proportional_bar() -> None:
    sixteen = [f"caption {i % 8}" for i in range(16)]  # 8 distinct, each twice: a healthy smoke run
    assert not is_collapsed(caption_diversity(sixteen), 16)
    assert is_collapsed(caption_diversity(["same"] * 16), 16)
    assert not is_collapsed(caption_diversity(["one clip"]), 1)  # said once is not repeated


def test_diversity_report_is_the_figures_with_the_verdict() -> None:
    report = diversity_report(["a dog barks"] * 3 + ["rain falls"])
    assert report == {**caption_diversity(["a dog barks"] * 3 + ["rain falls"]), "collapsed": True}
    assert json.loads(json.dumps(report)) == report  # written as is into metrics.json
    assert diversity_report([]) == {
        "distinct_captions": 0,
        "top_caption_share": 0.0,
        "top_caption": "",
        "top_caption_count": 0,
        "collapsed": False,
    }


def test_a_predictions_csv_reads_back_in_order(tmp_path) -> None:
    records = [SimpleNamespace(fname=f"clip{i}.wav") for i in range(3)]
    captions = ["a dog barks, twice", "rain", 'a "quoted" word']
    assert read_predictions_csv(write_predictions_csv(tmp_path / "p.csv", records, captions)) == captions
