"""Leakage guard: a clip never gets its own captions back, even when they are its nearest neighbours."""

from __future__ import annotations

import pytest

from distillcaps.retrieval.datastore import CaptionDatastore
from distillcaps.retrieval.guard import guarded_search
from distillcaps.retrieval.index import CAPTION_INDEXES


@pytest.mark.parametrize("kind", ["exact", "torch"])
def test_own_captions_never_returned_even_when_nearest(records, fake_clap, kind):
    store = CaptionDatastore.build(fake_clap(), records, "dev")
    index = CAPTION_INDEXES.get(kind)({"gpu": False})
    index.add(store.vectors)
    # Query with the exact embedding of a.wav's own caption: unguarded, it is the top hit.
    own = store.captions.index("a dog barks")
    query = store.vectors[own : own + 1]
    _, ids = index.search(query, 1)
    assert ids[0, 0] == own
    hits = guarded_search(index, store, query, [("clotho", "a.wav")], k=3, search_k=3)[0]
    returned = {store.captions[h.caption_id] for h in hits}
    a_captions = {"a dog barks", "a dog is barking loudly"}  # "A dog barks." collapsed into the first
    assert not returned & a_captions
    # "a dog barks" is also b.wav's caption: excluded for b.wav too (duplicate keeps both sources).
    hits_b = guarded_search(index, store, query, [("clotho", "b.wav")], k=3, search_k=3)[0]
    assert "a dog barks" not in {store.captions[h.caption_id] for h in hits_b}
    # A clip outside the datastore (serving) gets the nearest caption, unfiltered.
    assert guarded_search(index, store, query, [None], k=1, search_k=3)[0][0].caption_id == own


def test_guard_searches_deeper_rather_than_return_short_lists(records, fake_clap):
    store = CaptionDatastore.build(fake_clap(), records, "dev")
    index = CAPTION_INDEXES.get("torch")({"gpu": False})
    index.add(store.vectors)
    queries = store.vectors[:2]
    # search_k=2 would leave nothing once a.wav's captions are dropped; k=4 still comes back full.
    hits = guarded_search(index, store, queries, [("clotho", "a.wav"), ("clotho", "a.wav")], k=4, search_k=2)
    for row in hits:
        assert len(row) == 4
        assert all(("clotho", "a.wav") not in store.sources[h.caption_id] for h in row)
        scores = [h.score for h in row]
        assert scores == sorted(scores, reverse=True)
    # Fewer captions than k outside the clip: everything else, no more.
    all_hits = guarded_search(index, store, queries[:1], [("clotho", "a.wav")], k=100, search_k=2)[0]
    assert len(all_hits) == len(store) - 2
