"""Inference timing captions the split through caption_clips: the student side without a
retriever, the retrieval side with the checkpoint's, and records both sides' times."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch

import distillcaps.experiments.captioning as captioning
import distillcaps.experiments.inference_time as inference_time
import distillcaps.model.distillcaps_model as model_module
import distillcaps.retrieval.retriever as retriever_module
import distillcaps.standins.ensure as standins_module
from distillcaps.config import load_config


class FakeRetriever:
    def shares_encoder(self, encoder) -> bool:
        return encoder == "clap tower"


def test_time_captioning_goes_through_caption_clips_for_both_sides(monkeypatch):
    cfg = load_config("tiny", ["retrieval.top_k=4"])
    model = SimpleNamespace(cfg=cfg, encoder="clap tower", eval=lambda: None)
    retriever = FakeRetriever()
    split = captioning.SplitAudio(["a", "b", "c"], torch.zeros(3, 10), torch.tensor([10, 6, 3]))
    monkeypatch.setattr(
        model_module.DistillCapsModel, "load_checkpoint", classmethod(lambda cls, path, overrides=(): model)
    )
    built = []  # the stand-ins are built before the model loads and the retriever is made
    monkeypatch.setattr(
        standins_module, "ensure_checkpoint_standins", lambda path, overrides=(): built.append(path)
    )
    monkeypatch.setattr(standins_module, "ensure_standins", lambda c, names=None: built.append(names))
    monkeypatch.setattr(retriever_module.Retriever, "from_config", classmethod(lambda cls, c: retriever))
    monkeypatch.setattr(inference_time, "load_split", lambda c, subset: split)
    calls = []

    def spy(model_arg, batches, **options):
        assert model_arg is model
        calls.append(([len(b) for b in batches], options))
        return ["a caption"] * len(split)

    monkeypatch.setattr(captioning, "caption_clips", spy)

    timing = inference_time.time_captioning(Path("ckpt"), cfg, batch_size=2, repeats=2)

    assert built == [Path("ckpt"), ["tiny-clap"]]
    assert len(calls) == 2 + 2 * 2  # one untimed warm-up per side, then 2 timed repeats per side
    assert all(batches == [2, 1] for batches, _ in calls)
    student = {"rag": False, "retriever": None, "top_k": 4}
    teacher = {"rag": True, "retriever": retriever, "top_k": 4}
    assert [options for _, options in calls] == [student, teacher, student, teacher, teacher, student]
    assert timing.clips == 3 and timing.encoder_pass_shared is True
    assert {side: len(values) for side, values in timing.seconds.items()} == {
        "without_retrieval": 2,
        "with_retrieval": 2,
    }
