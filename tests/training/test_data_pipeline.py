"""Ray Data stages and rows, the frozen-feature cache key, and the corrupt-file checks (no Ray cluster)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from distillcaps.data.audio import BadAudioError
from distillcaps.data.batches import DecodeAudio, split_rows, to_model_batch
from distillcaps.data.records import ClipRecord
from distillcaps.data.usable import check_records
from distillcaps.training.data_pipeline import AttachFeatures
from distillcaps.training.feature_cache import cache_key, write_cache


def write_wave(path, seconds=0.5, rate=22_050):
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)
    return path


@pytest.fixture
def records(tmp_path):
    return [
        ClipRecord(
            "a.wav", write_wave(tmp_path / "a.wav", 0.5), ["a dog barks", "dog barking"], "clotho", "dev", 0
        ),
        ClipRecord("b.wav", write_wave(tmp_path / "b.wav", 2.0), ["rain falls"], "clotho", "dev", 1),
    ]


def test_rows_one_per_caption_for_training_one_per_clip_for_evaluation(records):
    retrieved = {"a.wav": [{"caption": "a cat meows", "score": 0.9, "source_fname": "x.wav"}], "b.wav": []}
    train_rows = split_rows(records, retrieved, per="caption")
    assert [(r["clip"], r["caption"]) for r in train_rows] == [
        (0, "a dog barks"),
        (0, "dog barking"),
        (1, "rain falls"),
    ]
    assert train_rows[0]["retrieved"] == ["a cat meows"] and train_rows[2]["retrieved"] == []
    eval_rows = split_rows(records, retrieved, per="clip")
    assert [r["references"] for r in eval_rows] == [["a dog barks", "dog barking"], ["rain falls"]]
    with pytest.raises(KeyError, match="b.wav"):  # a clip without retrieved captions is no silent []
        split_rows(records, {"a.wav": retrieved["a.wav"]}, per="clip")


def test_decode_stage_resamples_pads_and_crops(records):
    stage = DecodeAudio(sample_rate=16_000, num_samples=16_000, random_crop=False)
    batch = stage({"path": np.asarray([str(r.path) for r in records])})
    assert batch["audio"].shape == (2, 16_000) and batch["audio"].dtype == np.float32
    assert batch["audio_lengths"].tolist() == [8_000, 16_000]  # 0.5 s padded; 2 s cropped at 0
    assert np.all(batch["audio"][0, 8_000:] == 0)


def test_decode_stage_decodes_each_file_once_per_batch_and_crops_each_row(records, monkeypatch):
    import distillcaps.data.audio as audio

    calls = []
    real_load = audio.load_audio
    monkeypatch.setattr(audio, "load_audio", lambda path, rate: calls.append(path) or real_load(path, rate))
    paths = [str(records[1].path)] * 4 + [str(records[0].path)] * 2  # rows one per caption, clip by clip
    batch = DecodeAudio(16_000, 4_000, random_crop=True, seed=0)({"path": np.asarray(paths)})
    assert sorted(calls) == sorted({*paths})
    assert batch["audio"].shape == (6, 4_000) and batch["audio_lengths"].tolist() == [4_000] * 6
    assert len({batch["audio"][i].tobytes() for i in range(4)}) > 1  # the 2 s clip's rows: own crops


def test_random_crop_is_seeded(records):
    a = DecodeAudio(16_000, 4_000, random_crop=True, seed=3)({"path": np.asarray([str(records[1].path)])})
    b = DecodeAudio(16_000, 4_000, random_crop=True, seed=3)({"path": np.asarray([str(records[1].path)])})
    np.testing.assert_array_equal(a["audio"], b["audio"])


def test_attach_features_stage_reads_the_cache(tmp_path):
    tokens = np.arange(3 * 4 * 2, dtype=np.float32).reshape(3, 4, 2)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=bool)
    write_cache(tmp_path / "feat", tokens, mask, (2, 2), {"fnames": ["a", "b", "c"]})
    batch = AttachFeatures(str(tmp_path / "feat"))(
        {
            "clip": np.array([2, 0]),
            "fname": np.array(["c", "a"]),
            "caption": np.array(["x", "y"]),
            "retrieved": np.array([np.array(["r1"]), np.array(["r2"])], dtype=object),
        }
    )
    np.testing.assert_array_equal(batch["encoder_tokens"], tokens[[2, 0]])
    model_batch = to_model_batch(batch, grid=(2, 2))
    assert (
        model_batch.encoder_tokens.shape == (2, 4, 2)
        and model_batch.encoder_mask.dtype.is_floating_point is False
    )
    assert model_batch.captions == ["x", "y"] and model_batch.retrieved == [["r1"], ["r2"]]
    assert model_batch.encoder_grid == (2, 2)


def test_cache_key_changes_with_data_encoder_and_audio_settings():
    records_id = [["a.wav", "/d/a.wav", 100, 1]]
    encoder = {"name": "tiny", "config": {"dim": 128}, "weights": "abc"}
    audio = {"sample_rate": 16_000, "num_samples": 160_000, "crop": "start"}
    key = cache_key(records_id, encoder, audio)
    assert key == cache_key(records_id, dict(encoder), dict(audio))
    assert key != cache_key([["a.wav", "/d/a.wav", 101, 1]], encoder, audio)  # file changed
    assert key != cache_key(records_id, {**encoder, "weights": "abd"}, audio)  # other encoder weights
    assert key != cache_key(records_id, {**encoder, "name": "ced"}, audio)
    assert key != cache_key(records_id, encoder, {**audio, "num_samples": 80_000})  # other crop length
    assert key != cache_key(records_id, encoder, {**audio, "sample_rate": 32_000})


def test_corrupt_file_is_named_or_skipped_and_counted(records, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....not really a wave file")
    bad = ClipRecord("broken.wav", broken, ["noise"], "clotho", "dev", 2)
    with pytest.raises(BadAudioError, match="broken.wav"):
        check_records([*records, bad], "error")
    kept, skipped = check_records([*records, bad], "skip")
    assert [r.fname for r in kept] == ["a.wav", "b.wav"]
    assert len(skipped) == 1 and skipped[0].fname == "broken.wav" and "unreadable" in skipped[0].reason
