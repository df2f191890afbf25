import numpy as np
import pytest
import soundfile as sf
import torch

import distillcaps.data.audio as audio_module
from distillcaps.data.audio import (
    BadAudioError,
    check_audio,
    crop_or_pad,
    load_audio,
    load_waveforms,
    log_mel,
    pad_waveforms,
)
from distillcaps.data.records import ClipRecord


def test_resamples_44k_stereo_to_16k_mono(tmp_path):
    sr, seconds = 44_100, 1.0
    t = np.arange(int(sr * seconds)) / sr
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([left, np.zeros_like(left)], axis=1)  # right channel silent
    sf.write(tmp_path / "s.wav", stereo, sr, subtype="FLOAT")
    wave = load_audio(tmp_path / "s.wav", 16_000)
    assert wave.dtype == torch.float32 and wave.ndim == 1
    assert wave.shape[0] == 16_000
    spectrum = torch.fft.rfft(wave).abs()
    assert int(spectrum.argmax()) == 440  # 1 Hz bins for a 1 s clip: the tone survives resampling
    # down-mix is the channel mean: half the left channel's amplitude
    assert wave[1000:-1000].abs().max().item() == pytest.approx(0.25, abs=0.01)


def test_same_rate_is_not_resampled(tmp_path, tone):
    path = tone(tmp_path / "a.wav", seconds=0.25)
    wave = load_audio(path, 16_000)
    assert wave.shape == (4000,)
    assert torch.allclose(wave, torch.from_numpy(sf.read(path, dtype="float32")[0]))


def test_crop_deterministic_random_and_pad():
    wave = torch.arange(100, dtype=torch.float32)
    fixed, valid = crop_or_pad(wave, 40, random_crop=False)
    assert valid == 40 and torch.equal(fixed, wave[:40])
    starts = set()
    for seed in range(20):
        crop, valid = crop_or_pad(wave, 40, random_crop=True, generator=torch.Generator().manual_seed(seed))
        assert valid == 40 and crop.shape == (40,)
        assert torch.equal(crop, wave[int(crop[0]) : int(crop[0]) + 40])  # a contiguous window
        starts.add(int(crop[0]))
    assert len(starts) > 5 and max(starts) <= 60
    again = crop_or_pad(wave, 40, random_crop=True, generator=torch.Generator().manual_seed(3))[0]
    assert torch.equal(
        again, crop_or_pad(wave, 40, random_crop=True, generator=torch.Generator().manual_seed(3))[0]
    )
    padded, valid = crop_or_pad(wave, 130, random_crop=True)
    assert valid == 100 and padded.shape == (130,)
    assert torch.equal(padded[:100], wave) and torch.all(padded[100:] == 0)


def test_pad_waveforms_to_a_fixed_width_or_to_the_batch_s_longest_clip():
    long, short = torch.arange(100, dtype=torch.float32), np.full(30, 0.5, dtype=np.float64)
    short.flags.writeable = False  # as waveforms from Ray's object store arrive
    audio, lengths = pad_waveforms([long, short], 60)
    assert audio.shape == (2, 60) and audio.dtype == torch.float32 and lengths.dtype == torch.int64
    assert lengths.tolist() == [60, 30] and torch.equal(audio[0], long[:60]) and torch.all(audio[1, 30:] == 0)
    audio, lengths = pad_waveforms([short, short[:10]])  # no width, no cap: the longest clip's
    assert audio.shape == (2, 30) and lengths.tolist() == [30, 10]
    audio, lengths = pad_waveforms([long, short], max_samples=50)  # the longest, capped
    assert audio.shape == (2, 50) and lengths.tolist() == [50, 30]
    assert pad_waveforms([short[:10]], max_samples=50)[0].shape == (1, 10)


def test_pad_waveforms_draws_random_crops_row_by_row_from_the_generator():
    wave = torch.arange(100, dtype=torch.float32)
    audio, _ = pad_waveforms(
        [wave, wave, wave[:20]], 40, random_crop=True, generator=torch.Generator().manual_seed(5)
    )
    generator = torch.Generator().manual_seed(5)
    one_by_one = [
        crop_or_pad(w, 40, random_crop=True, generator=generator)[0] for w in (wave, wave, wave[:20])
    ]
    assert torch.equal(audio, torch.stack(one_by_one))


def test_load_waveforms_decodes_each_file_once(tmp_path, tone, monkeypatch):
    paths = [tone(tmp_path / "a.wav", seconds=0.5), tone(tmp_path / "b.wav", seconds=0.25)]
    decoded = []
    real = audio_module.load_audio
    monkeypatch.setattr(audio_module, "load_audio", lambda p, rate: decoded.append(p) or real(p, rate))
    audio, lengths = load_waveforms([paths[0], paths[0], paths[1]], 16_000, 6_000)
    assert audio.shape == (3, 6_000) and lengths.tolist() == [6_000, 6_000, 4_000]
    assert decoded == [paths[0], paths[1]] and torch.equal(audio[0], audio[1])


def test_log_mel_shape_and_batch():
    wave = torch.randn(2, 16_000)
    mel = log_mel(wave, 16_000)
    assert mel.shape == (2, 64, 101)  # 10 ms hop, centred frames
    assert torch.isfinite(mel).all()
    assert torch.allclose(log_mel(wave[0], 16_000), mel[0], atol=1e-4)


def test_log_mel_floor_is_per_clip_not_per_batch():
    loud = torch.sin(torch.arange(16_000) * 0.3)
    quiet = 1e-6 * torch.randn(16_000)  # far below the loud clip's top_db floor
    batch = log_mel(torch.stack([loud, quiet]), 16_000)
    assert torch.allclose(batch[1], log_mel(quiet, 16_000), atol=1e-3)
    assert batch[1].min() < batch[0].max() - 120  # a batch-wide floor would have clamped this


# --- bad audio -------------------------------------------------------------------------------------


def make_bad_files(tmp_path):
    """name -> (path, reason fragment) for every kind of bad file."""
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "garbage.wav").write_bytes(b"this is not audio at all" * 10)
    sf.write(tmp_path / "zero.wav", np.zeros((0, 1)), 16_000, subtype="PCM_16")
    sf.write(tmp_path / "nan.wav", np.array([0.1, np.nan, 0.2] * 100), 16_000, subtype="FLOAT")
    sf.write(tmp_path / "inf.wav", np.array([0.1, np.inf, 0.2] * 100), 16_000, subtype="FLOAT")
    return {
        "missing.wav": "file not found",
        "empty.wav": "empty file",
        "garbage.wav": "unreadable",
        "zero.wav": "zero-length",
        "nan.wav": "non-finite",
        "inf.wav": "non-finite",
    }


def test_every_bad_file_raises_naming_file_and_reason(tmp_path):
    for name, reason in make_bad_files(tmp_path).items():
        path = tmp_path / name
        for check in (load_audio, check_audio):
            with pytest.raises(BadAudioError, match=reason) as info:
                check(path)
            assert info.value.path == path and str(path) in str(info.value)
            assert isinstance(info.value, ValueError)


def records_for(tmp_path, names):
    return [
        ClipRecord(
            fname=n,
            path=tmp_path / n,
            captions=[f"{n} one", f"{n} two"],
            dataset="jsonl",
            subset="t",
            index=i,
        )
        for i, n in enumerate(names)
    ]
