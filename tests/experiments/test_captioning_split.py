"""distillcaps.experiments.captioning.load_split: the clips an experiment captions follow
data.on_bad_audio like every other stage."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from distillcaps.config import load_config
from distillcaps.data.audio import BadAudioError
from distillcaps.experiments.captioning import load_split


def test_skip_mode_leaves_out_and_names_a_missing_clip(tmp_path, capsys):
    sf.write(tmp_path / "good.wav", np.full(16_000, 0.1, dtype="float32"), 16_000)
    rows = [{"audio": "good.wav", "captions": ["a tone"]}, {"audio": "gone.wav", "captions": ["silence"]}]
    (tmp_path / "dev.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    base = [f"data.dataset_dir={tmp_path}", "data.dataset_format=jsonl", "data.max_seconds=1.0"]

    with pytest.raises(BadAudioError, match="gone.wav: file not found"):
        load_split(load_config("tiny", base), "dev")
    split = load_split(load_config("tiny", [*base, "data.on_bad_audio=skip"]), "dev")
    assert [r.fname for r in split.records] == ["good.wav"]
    assert tuple(split.waves.shape) == (1, 16_000) and split.lengths.tolist() == [16_000]
    assert f"{tmp_path / 'gone.wav'}: file not found" in capsys.readouterr().out


def test_caption_split_goes_through_caption_clips_in_batches_of_the_split(monkeypatch):
    import torch

    import distillcaps.experiments.captioning as captioning

    calls = []

    def spy(model, batches, **options):
        batches = list(batches)
        calls.append(([b.audio_lengths.tolist() for b in batches], options))
        return [f"clip {n}" for b in batches for n in b.audio_lengths.tolist()]

    monkeypatch.setattr(captioning, "caption_clips", spy)
    split = captioning.SplitAudio(["a", "b", "c"], torch.zeros(3, 10), torch.tensor([10, 7, 4]))
    retriever = object()

    assert captioning.caption_split("model", split, batch_size=2) == ["clip 10", "clip 7", "clip 4"]
    captioning.caption_split("model", split, batch_size=2, retriever=retriever, top_k=5)
    assert calls[0] == ([[10, 7], [4]], {"rag": False, "retriever": None, "top_k": 3})
    assert calls[1][1] == {"rag": True, "retriever": retriever, "top_k": 5}
