"""Datastore: duplicate captions collapse (keeping every source), save/load, encoder identity check."""

from __future__ import annotations

import numpy as np
import pytest

from distillcaps.retrieval.datastore import CaptionDatastore, EncoderMismatchError, collapse_captions


def test_duplicates_collapse_and_keep_every_source(records):
    captions, sources, first = collapse_captions(records)
    assert captions.count("a dog barks") == 1
    assert "A dog barks." not in captions  # same text up to case and final period
    assert sources[captions.index("a dog barks")] == ["/data/a.wav", "/data/b.wav"]  # resolved files
    assert first[captions.index("a dog barks")] == ("clotho", "a.wav")
    assert len(captions) == len({c.lower().rstrip(".") for r in records for c in r.captions})


def test_save_load_round_trip(tmp_path, records, fake_clap):
    clap = fake_clap()
    store = CaptionDatastore.build(clap, records, "dev")
    store.save(tmp_path / "ds")
    loaded = CaptionDatastore.load(tmp_path / "ds", expected_identity=clap.identity)
    assert loaded.captions == store.captions
    assert loaded.sources == store.sources and loaded.first_sources == store.first_sources
    np.testing.assert_array_equal(loaded.vectors, store.vectors)
    assert loaded.identity == clap.identity


def test_datastore_from_another_encoder_is_refused(tmp_path, records, fake_clap):
    CaptionDatastore.build(fake_clap("a"), records, "dev").save(tmp_path / "ds")
    with pytest.raises(EncoderMismatchError, match="fake-clap:.*configured CLAP"):
        CaptionDatastore.load(tmp_path / "ds", expected_identity=fake_clap("b").identity)
