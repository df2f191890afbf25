"""Upload decoding and option parsing, without Ray: each bad input names what was wrong."""

from __future__ import annotations

import numpy as np
import pytest
from serving_helpers import encode, tone

from distillcaps.serving.config import ServingConfig
from distillcaps.serving.options import DecodingOptions, parse_options
from distillcaps.serving.upload import AudioLimits, UploadError, check_content_type, decode_audio

LIMITS = AudioLimits(max_bytes=1_000_000, max_duration_s=5.0)


def test_stereo_44k_wav_is_downmixed_and_resampled_to_16k():
    left_right = np.stack([tone(440.0, 44_100)[:, 0], -tone(440.0, 44_100)[:, 0] * 0.0], axis=1)

    decoded = decode_audio(encode(left_right, 44_100), LIMITS)

    assert decoded.source_sample_rate == 44_100 and decoded.source_channels == 2
    assert decoded.waveform.dtype == np.float32
    assert decoded.waveform.shape == (16_000,)
    assert np.abs(decoded.waveform).max() == pytest.approx(0.25, abs=0.02)  # mean of 0.5 and 0


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG"])
def test_formats_decode(fmt):
    decoded = decode_audio(encode(tone(), 16_000, fmt), LIMITS)

    assert decoded.waveform.shape[0] == pytest.approx(16_000, abs=1024)


@pytest.mark.parametrize(
    ("data", "status", "kind"),
    [
        (b"", 400, "empty_body"),
        (b"GIF89a not audio at all, an image header" * 3, 415, "not_audio"),
        (encode(tone())[:20_000], 422, "truncated_audio"),
        (encode(tone(), fmt="FLAC")[:3_000], 422, "corrupt_audio"),
        (encode(np.zeros((0, 1), np.float32)), 422, "no_samples"),
        (encode(np.full((3200, 1), np.nan, np.float32), subtype="FLOAT"), 422, "non_finite"),
        (encode(tone(seconds=5.5)), 422, "too_long"),
        (b"RIFF" + b"\0" * 1_000_000, 413, "too_large"),
    ],
)
def test_bad_audio_is_rejected_with_status_and_reason(data, status, kind):
    with pytest.raises(UploadError) as caught:
        decode_audio(data, LIMITS, name="clip.wav")

    assert (caught.value.status, caught.value.kind) == (status, kind)
    assert caught.value.to_json()["error"]


@pytest.mark.parametrize(
    ("data", "status", "kind"),
    [
        # shorter than the log-mel front end's reflect padding: it used to fail inside the batch
        (encode(tone(seconds=94 / 16_000)), 422, "too_short"),
        (encode(tone(seconds=0.05, sample_rate=44_100), 44_100), 422, "too_short"),
        (encode(tone(channels=9)), 422, "too_many_channels"),
        # a few KB of FLAC declaring 8 channels at 384 kHz: refused from the header, never decoded
        (encode(np.zeros((384_000 * 2, 8), np.float32), 384_000, "FLAC"), 422, "too_many_samples"),
        (encode(tone(), fmt="PAF", subtype="PCM_16"), 415, "unsupported_format"),
        (encode(tone(seconds=2.0), fmt="MP3")[:2444], 422, "truncated_audio"),  # decodes 74% of its frames
    ],
)
def test_header_checks_refuse_before_decoding(data, status, kind):
    limits = AudioLimits(max_bytes=10_000_000, max_duration_s=30.0)
    with pytest.raises(UploadError) as caught:
        decode_audio(data, limits, name="clip")

    assert (caught.value.status, caught.value.kind) == (status, kind), caught.value.message
    assert len(data) < 300_000


def test_the_shortest_accepted_clip_reaches_the_front_end_intact():
    decoded = decode_audio(encode(tone(seconds=0.1)), LIMITS)
    assert decoded.waveform.shape == (1600,)


def test_too_long_message_states_the_rejection_policy():
    with pytest.raises(UploadError, match=r"6\.0 s long; the limit is 5 s \(longer audio is rejected"):
        decode_audio(encode(tone(seconds=6.0)), LIMITS)


def test_content_types():
    check_content_type("audio/wav")
    check_content_type("audio/flac; charset=binary")
    check_content_type(None)  # no type: sniffed from the bytes
    with pytest.raises(UploadError) as caught:
        check_content_type("application/json")
    assert caught.value.status == 415


def test_options_parse_and_bounds():
    options = parse_options({"rag": "true", "num_beams": "4"}, max_num_beams=8, max_new_tokens=64)

    assert options.rag is True
    assert options.decoding == DecodingOptions(num_beams=4, max_new_tokens=None)
    for bad in (
        {"num_beams": "9"},
        {"num_beams": "x"},
        {"max_new_tokens": "65"},
        {"rag": "2"},
        {"beams": "1"},
    ):
        with pytest.raises(UploadError) as caught:
            parse_options(bad, max_num_beams=8, max_new_tokens=64)
        assert caught.value.status == 422 and next(iter(bad)) in caught.value.message


def test_serving_config_defaults_and_errors():
    cfg = ServingConfig()
    assert cfg.model_uri == "models:/distillcaps-student@champion"
    assert cfg.max_upload_bytes == 20 * 1024 * 1024 and cfg.max_duration_s == 30.0
    with pytest.raises(ValueError, match="unknown serving option 'max_batch'"):
        ServingConfig.from_dict({"max_batch": 3})
    with pytest.raises(ValueError, match="max_batch_size must be > 0"):
        ServingConfig.from_dict({"max_batch_size": 0})
