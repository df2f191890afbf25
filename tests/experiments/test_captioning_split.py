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
