"""ModelBatch: built from a numpy batch, from waveforms or from encoder features; shapes checked,
a missing field named."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from distillcaps.data.batches import DecodeAudio, MissingBatchFieldError, ModelBatch, to_model_batch


def test_a_decoded_clip_batch_becomes_a_model_batch_with_audio_and_its_references(tone, tmp_path):
    paths = [str(tone(tmp_path / "a.wav", seconds=0.5)), str(tone(tmp_path / "b.wav", seconds=2.0))]
    numpy_batch = DecodeAudio(16_000, 16_000, random_crop=False)(
        {
            "fname": np.array(["a.wav", "b.wav"]),
            "path": np.array(paths),
            "references": np.array([np.array(["one", "two"]), np.array(["three"])], dtype=object),
            "retrieved": np.array([np.array(["r1", "r2"]), np.array(["r3"])], dtype=object),
        }
    )
    batch = to_model_batch(numpy_batch, grid=None)
    assert batch.audio.shape == (2, 16_000) and batch.audio.dtype == torch.float32
    assert batch.audio_lengths.tolist() == [8_000, 16_000] and batch.audio_lengths.dtype == torch.int64
    assert batch.encoder_tokens is None and len(batch) == 2
    assert batch.references == [["one", "two"], ["three"]]
    assert batch.captions == ["one", "three"]  # a clip row's loss target: its first reference
    assert batch.retrieved == [["r1", "r2"], ["r3"]] and batch.fname == ["a.wav", "b.wav"]


def test_a_feature_cache_batch_becomes_a_model_batch_with_encoder_tokens_and_the_grid():
    numpy_batch = {
        "fname": np.array(["a", "b"]),
        "caption": np.array(["x", "y"]),
        "retrieved": np.array([np.array(["r1"]), np.array(["r2"])], dtype=object),
        "encoder_tokens": np.zeros((2, 8, 4), dtype=np.float32),
        "encoder_mask": np.ones((2, 8), dtype=bool),
    }
    batch = to_model_batch(numpy_batch, grid=np.array([2, 4]))
    assert batch.encoder_tokens.shape == (2, 8, 4) and batch.encoder_mask.dtype == torch.bool
    assert batch.encoder_grid == (2, 4) and all(type(g) is int for g in batch.encoder_grid)
    assert batch.audio is None and batch.captions == ["x", "y"] and batch.references is None
    with pytest.raises(ValueError, match="needs the feature cache's grid"):
        to_model_batch(numpy_batch, grid=None)


def test_constructors_check_the_audio_side_and_the_row_counts():
    audio = torch.zeros(3, 100)
    assert len(ModelBatch.from_waveforms(audio)) == 3  # lengths are optional: every sample counts
    features = ModelBatch.from_features(torch.zeros(3, 8, 4), torch.ones(3, 8, dtype=torch.bool), (2, 4))
    assert len(features) == 3 and features.encoder_grid == (2, 4)
    with pytest.raises(ValueError, match="audio .* or encoder_tokens .*exactly one"):
        ModelBatch(captions=["a"])
    with pytest.raises(ValueError, match="exactly one"):
        ModelBatch(audio=audio, encoder_tokens=features.encoder_tokens, encoder_mask=features.encoder_mask)
    with pytest.raises(ValueError, match="need their encoder_mask"):
        ModelBatch(encoder_tokens=torch.zeros(3, 8, 4))
    with pytest.raises(ValueError, match="3 rows but 2 entries in 'retrieved'"):
        ModelBatch.from_waveforms(audio, retrieved=[["a"], ["b"]])
    with pytest.raises(ValueError, match="3 rows but 2 entries in 'audio_lengths'"):
        ModelBatch.from_waveforms(audio, torch.tensor([100, 50]))


def test_a_missing_field_is_an_error_naming_it_and_what_needs_it():
    batch = ModelBatch.from_waveforms(torch.zeros(2, 100), captions=["a", "b"])
    assert batch.require("captions", "the loss") == ["a", "b"]
    with pytest.raises(MissingBatchFieldError, match="the batch has no 'retrieved', needed by the teacher"):
        batch.require("retrieved", "the teacher prompt")


def test_to_moves_every_tensor_and_keeps_the_text():
    batch = ModelBatch.from_waveforms(torch.zeros(2, 100), torch.tensor([100, 40]), fname=["a", "b"])
    moved = batch.to("meta")
    assert moved.audio.device.type == "meta" and moved.audio_lengths.device.type == "meta"
    assert moved.fname == ["a", "b"] and batch.audio.device.type == "cpu"  # a new batch; the old stays
