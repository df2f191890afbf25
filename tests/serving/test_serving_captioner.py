"""The DistillCaps captioner backend in-process: batching, decoding options, the rag wiring."""

from __future__ import annotations

import numpy as np
import pytest

from distillcaps.serving.captioner import Captioner, RetrievalUnavailable
from distillcaps.serving.options import DecodingOptions


class RecordingRetriever:
    """Stands in for distillcaps.retrieval.Retriever: fixed captions, records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple, list[int], int]] = []

    def shares_encoder(self, encoder) -> bool:
        return False  # queries come from retrieve's own audio pass

    def retrieve(self, waveforms, lengths, k, encoded=None):
        self.calls.append((tuple(waveforms.shape), lengths.tolist(), k))
        return [["a dog barks twice near a fence", "rain falls steadily on a tin roof"]] * waveforms.shape[0]


@pytest.fixture(scope="module")
def captioner(tiny_checkpoints) -> Captioner:
    return Captioner.from_uri(str(tiny_checkpoints["v1"]))


def test_batch_of_different_lengths_gives_one_caption_each(captioner):
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (16_000, 8_000, 24_000)]

    captions = captioner.caption(waves)

    assert len(captions) == 3 and all(isinstance(c, str) for c in captions)
    assert captioner.caption([]) == []


def test_max_new_tokens_bounds_the_caption(captioner):
    wave = np.random.default_rng(1).standard_normal(16_000).astype(np.float32) * 0.1
    short = captioner.caption([wave], options=DecodingOptions(max_new_tokens=2))[0]
    tokens = captioner.backend.model.tokenizer(short, add_special_tokens=False).input_ids

    assert len(tokens) <= 2


def test_rag_needs_a_datastore_and_passes_retrieved_captions_to_the_model(captioner):
    wave = np.random.default_rng(2).standard_normal(16_000).astype(np.float32) * 0.1
    with pytest.raises(RetrievalUnavailable, match="retrieval is not available"):
        captioner.caption([wave], rag=True)

    backend = captioner.backend
    retriever = RecordingRetriever()
    backend.retriever, backend.rag_unavailable_reason = retriever, None
    try:
        captions = captioner.caption([wave, wave[:8000]], rag=True)
    finally:
        backend.retriever, backend.rag_unavailable_reason = None, "no datastore"

    assert len(captions) == 2
    assert retriever.calls == [((2, 16_000), [16_000, 8_000], backend.cfg.retrieval.top_k)]
