"""caption_clips: what it does with each batch (student, precomputed retrieval, online retrieval),
and evaluation's caption_records builds its batches and goes through it."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

import distillcaps.evaluation.evaluate as evaluate_module
from distillcaps.config import load_config
from distillcaps.data.batches import ModelBatch
from distillcaps.data.records import ClipRecord
from distillcaps.evaluation.captioning import caption_clips
from distillcaps.evaluation.evaluate import caption_records


class EchoModel:
    """Stands in for DistillCapsModel: a caption naming its row's length and retrieved captions."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.encoder = object()

    def generate(self, batch: ModelBatch, rag: bool = False, generation=None) -> list[str]:
        self.calls.append({"rows": len(batch), "rag": rag, "generation": generation})
        lengths = batch.audio_lengths.tolist()
        hits = batch.retrieved if rag else [[] for _ in lengths]
        return [f"{n} samples {'+'.join(h)}".strip() for n, h in zip(lengths, hits)]


class FixedRetriever:
    """Stands in for distillcaps.retrieval.Retriever (its own CLAP pass: no shared encoder)."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def shares_encoder(self, encoder) -> bool:
        return False

    def retrieve(self, waveforms, lengths, k, encoded=None):
        self.asked.append(k)
        return [[f"hit{j}" for j in range(k)] for _ in range(waveforms.shape[0])]


def batch_of(*lengths: int, retrieved=None) -> ModelBatch:
    audio = torch.zeros(len(lengths), max(lengths))
    return ModelBatch.from_waveforms(audio, torch.tensor(lengths), retrieved=retrieved)


def test_the_student_captions_every_row_of_every_batch_in_order():
    model = EchoModel()
    captions = caption_clips(model, [batch_of(3, 2), batch_of(5)], rag=False, generation="beam")
    assert captions == ["3 samples", "2 samples", "5 samples"]
    assert [c["generation"] for c in model.calls] == ["beam", "beam"] and not any(
        c["rag"] for c in model.calls
    )


def test_rag_uses_the_batch_s_retrieved_captions_or_retrieves_online():
    model = EchoModel()
    precomputed = batch_of(3, 2, retrieved=[["a", "b"], ["c"]])
    assert caption_clips(model, [precomputed], rag=True) == ["3 samples a+b", "2 samples c"]
    retriever = FixedRetriever()
    online = caption_clips(model, [batch_of(4)], rag=True, retriever=retriever, top_k=2)
    assert online == ["4 samples hit0+hit1"] and retriever.asked == [2]
    assert caption_clips(model, [batch_of(4)], rag=False, retriever=retriever, top_k=2) == ["4 samples"]
    with pytest.raises(ValueError, match="online retrieval needs top_k"):
        caption_clips(model, [batch_of(4)], rag=True, retriever=retriever)


def test_caption_records_decodes_batches_with_their_retrieved_captions_and_calls_caption_clips(
    tmp_path, monkeypatch
):
    records = []
    for i, seconds in enumerate((0.5, 2.0, 1.0)):
        path = tmp_path / f"c{i}.wav"
        sf.write(path, np.full(int(seconds * 16_000), 0.1, dtype="float32"), 16_000)
        records.append(ClipRecord(f"c{i}.wav", path, [f"ref {i}"], "jsonl", "eval", i))
    retrieved = {r.fname: [{"caption": f"{r.fname} hit{j}"} for j in range(4)] for r in records}
    cfg = load_config("tiny", ["data.max_seconds=1.0", "eval.batch_size=2"])
    seen = []

    def spy(model, batches, **options):
        seen.append(options)
        batches = list(batches)
        assert [tuple(b.audio.shape) for b in batches] == [(2, 16_000), (1, 16_000)]
        assert [b.audio_lengths.tolist() for b in batches] == [[8_000, 16_000], [16_000]]
        assert batches[1].retrieved == [["c2.wav hit0", "c2.wav hit1"]]  # the first top_k
        return caption_clips(model, batches, **options)

    monkeypatch.setattr(evaluate_module, "caption_clips", spy)
    captions = caption_records(EchoModel(), records, retrieved, cfg, rag=True, top_k=2)
    assert seen == [{"rag": True}]
    assert captions == ["8000 samples c0.wav hit0+c0.wav hit1", *captions[1:]] and len(captions) == 3
