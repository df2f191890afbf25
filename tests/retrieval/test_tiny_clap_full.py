"""The default-size figure (docs/retrieval.md): tiny-clap on the full default synthetic set. Slow."""

from __future__ import annotations

import pytest

from distillcaps.config import load_config
from distillcaps.retrieval.clap import build_clap
from distillcaps.retrieval.precompute import records_for
from distillcaps.retrieval.report import audio_text_recall
from distillcaps.standins import ensure_tiny_clap


@pytest.mark.slow
def test_tiny_clap_default_size_recall(tmp_path):
    cfg = load_config("tiny", [f"data.data_root={tmp_path / 'data'}", f"data.cache_dir={tmp_path / 'cache'}"])
    ensure_tiny_clap(cfg)
    scores = audio_text_recall(build_clap(cfg), records_for(cfg, cfg.data.val_subset), cfg)
    print(scores)
    # Measured: recall@5 0.69 against chance 0.05 (8 epochs, 600 clips).
    assert scores["recall@5"] >= 5 * scores["chance@5"], scores
