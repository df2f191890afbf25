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
    hits = guarded_search(index, store, query, ["/data/a.wav"], k=3, search_k=3)[0]
    returned = {store.captions[h.caption_id] for h in hits}
    a_captions = {"a dog barks", "a dog is barking loudly"}  # "A dog barks." collapsed into the first
    assert not returned & a_captions
    # "a dog barks" is also b.wav's caption: excluded for b.wav too (duplicate keeps both sources).
    hits_b = guarded_search(index, store, query, ["/data/b.wav"], k=3, search_k=3)[0]
    assert "a dog barks" not in {store.captions[h.caption_id] for h in hits_b}
    # A clip outside the datastore (serving) gets the nearest caption, unfiltered.
    assert guarded_search(index, store, query, [None], k=1, search_k=3)[0][0].caption_id == own


def test_guard_searches_deeper_rather_than_return_short_lists(records, fake_clap):
    store = CaptionDatastore.build(fake_clap(), records, "dev")
    index = CAPTION_INDEXES.get("torch")({"gpu": False})
    index.add(store.vectors)
    queries = store.vectors[:2]
    # search_k=2 would leave nothing once a.wav's captions are dropped; k=4 still comes back full.
    hits = guarded_search(index, store, queries, ["/data/a.wav", "/data/a.wav"], k=4, search_k=2)
    for row in hits:
        assert len(row) == 4
        assert all("/data/a.wav" not in store.sources[h.caption_id] for h in row)
        scores = [h.score for h in row]
        assert scores == sorted(scores, reverse=True)
    # Fewer captions than k outside the clip: everything else, no more.
    all_hits = guarded_search(index, store, queries[:1], ["/data/a.wav"], k=100, search_k=2)[0]
    assert len(all_hits) == len(store) - 2


def test_the_guard_keys_clips_by_their_file_not_their_name(records, fake_clap):
    from pathlib import Path

    from distillcaps.retrieval.datastore import clip_key

    Record = type(records[0])  # conftest's stand-in (importing conftest by name finds another room's)

    store = CaptionDatastore.build(fake_clap(), records, "dev")
    index = CAPTION_INDEXES.get("torch")({"gpu": False})
    index.add(store.vectors)
    query = store.vectors[
        store.captions.index("a car passes by") : store.captions.index("a car passes by") + 1
    ]
    # Another subset reuses the name c.wav for another file: it is not c.wav of the datastore.
    other = Record("c.wav", ["x"], subset="val", path=Path("/elsewhere/c.wav"))
    hits = guarded_search(index, store, query, [clip_key(other)], k=1, search_k=3)[0]
    assert store.captions[hits[0].caption_id] == "a car passes by"
    # The datastore's c.wav listed under another name (and a path with '..') is the same clip.
    alias = Record("renamed.wav", ["x"], subset="val", path=Path("/data/sub/../c.wav"))
    hits = guarded_search(index, store, query, [clip_key(alias)], k=3, search_k=3)[0]
    assert not {store.captions[h.caption_id] for h in hits} & {
        "a car passes by",
        "traffic hums in the distance",
    }
