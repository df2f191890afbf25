"""Collapse detector: how many distinct captions a model produced, and how often its favourite repeats.

A model that says one thing for every clip still scores above zero on n-gram metrics, so every
evaluation records these figures next to its scores and flags a collapsed model.

    diversity_report(["a dog barks", "A dog barks.", "rain falls"])
    # {"distinct_captions": 2, "top_caption_share": 0.6667, "top_caption": "a dog barks",
    #  "top_caption_count": 2, "collapsed": True}
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from distillcaps.model.tokenizer import normalize_caption

# The acceptance bar: on 150 eval clips a model produces at least 20 distinct captions,
# and no caption is repeated for more than a quarter of the clips.
ACCEPTANCE_CLIPS = 150
MIN_DISTINCT_CAPTIONS = 20
MAX_TOP_CAPTION_SHARE = 0.25

DIVERSITY_METRICS = ("distinct_captions", "top_caption_share")  # the figures logged as MLflow metrics


def caption_diversity(predictions: list[str]) -> dict[str, Any]:
    """Distinct captions and the most frequent one's share, compared after ``normalize_caption``."""
    counts = Counter(normalize_caption(p) for p in predictions)
    if not counts:
        return {"distinct_captions": 0, "top_caption_share": 0.0, "top_caption": "", "top_caption_count": 0}
    top_caption, top_count = counts.most_common(1)[0]
    return {
        "distinct_captions": len(counts),
        "top_caption_share": round(top_count / len(predictions), 4),
        "top_caption": top_caption,
        "top_caption_count": top_count,
    }


def min_distinct_captions(num_clips: int) -> int:
    """20 from the acceptance set's 150 clips up; proportionally fewer on a smaller (smoke) set."""
    return min(MIN_DISTINCT_CAPTIONS, math.ceil(num_clips * MIN_DISTINCT_CAPTIONS / ACCEPTANCE_CLIPS))


def is_collapsed(diversity: dict[str, Any], num_clips: int) -> bool:
    # A caption said once is not repeated: a set of 1-3 clips cannot fail the share rule alone.
    repeated_too_often = (
        diversity["top_caption_count"] > 1 and diversity["top_caption_share"] > MAX_TOP_CAPTION_SHARE
    )
    return repeated_too_often or diversity["distinct_captions"] < min_distinct_captions(num_clips)


def diversity_report(predictions: list[str]) -> dict[str, Any]:
    """The figures with the verdict: the "diversity" entry of metrics.json."""
    figures = caption_diversity(predictions)
    return {**figures, "collapsed": is_collapsed(figures, len(predictions))}
