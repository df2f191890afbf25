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


def test_the_backend_captions_through_caption_clips_with_the_request_s_decoding(captioner, monkeypatch):
    import distillcaps.serving.captioner as captioner_module

    real, calls = captioner_module.caption_clips, []

    def spy(model, batches, **options):
        batches = list(batches)
        calls.append(([(tuple(b.audio.shape), b.audio_lengths.tolist()) for b in batches], options))
        return real(model, batches, **options)

    monkeypatch.setattr(captioner_module, "caption_clips", spy)
    rng = np.random.default_rng(3)
    waves = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (8_000, 12_000)]

    captions = captioner.caption(waves, options=DecodingOptions(num_beams=2, max_new_tokens=3))

    assert len(captions) == 2 and all(isinstance(c, str) for c in captions) and len(calls) == 1
    shapes, options = calls[0]
    assert shapes == [((2, 12_000), [8_000, 12_000])]  # one batch, padded to its longest clip
    assert options["rag"] is False and options["retriever"] is None
    assert options["generation"].num_beams == 2 and options["generation"].max_new_tokens == 3


def test_the_batch_actor_captions_through_caption_clips(tiny_checkpoints, tmp_path, monkeypatch):
    import soundfile as sf

    import distillcaps.serving.captioner as captioner_module
    from distillcaps.serving.batch import CaptionActor

    def fake(model, batches, **options):  # "<row> of <rows>" for each row of each batch
        return [f"{row} of {len(b)}" for b in batches for row in range(len(b))]

    monkeypatch.setattr(captioner_module, "caption_clips", fake)
    paths = []
    for name, seconds in (("a.wav", 0.5), ("b.wav", 1.0)):
        sf.write(tmp_path / name, np.full(int(seconds * 16_000), 0.1, dtype="float32"), 16_000)
        paths.append(str(tmp_path / name))
    actor = CaptionActor({"model_uri": str(tiny_checkpoints["v1"])}, rag=False, decoding={})

    out = actor({"index": np.arange(2), "file_name": np.array(["a.wav", "b.wav"]), "path": np.array(paths)})

    assert list(out["caption_predicted"]) == ["0 of 2", "1 of 2"] and list(out["error"]) == ["", ""]
