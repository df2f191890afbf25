"""Audio in: decode with soundfile, down-mix to mono, resample with torchaudio, crop/pad, log-mel.

    wave = load_audio(path, 16_000)                                  # (S,) float32
    audio, lengths = load_waveforms(paths, 16_000, num_samples=160_000)  # (B, S), (B,)
    audio, lengths = pad_waveforms(waves, max_samples=160_000)       # (B, longest S), (B,)

``pad_waveforms`` is the one place a batch of waveforms is cropped, padded and stacked: training's
decode stage, evaluation, the experiments' splits, CLAP queries and the served requests all go
through it.

torchaudio 2.11's ``load`` needs torchcodec + FFmpeg, so decoding goes through soundfile
(libsndfile: wav, flac, ogg, mp3). Bad files raise ``BadAudioError`` naming the file and the reason;
nothing here ever substitutes silence for a file it could not read.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio


class BadAudioError(ValueError):
    """An audio file that cannot be used: missing, unreadable, empty, zero-length or non-finite."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"bad audio file {self.path}: {reason}")


# Float subtypes are the only ones that can hold NaN/inf; integer PCM is finite by construction.
FLOAT_SUBTYPES = {"FLOAT", "DOUBLE"}


def load_audio(path: str | Path, sample_rate: int = 16_000) -> torch.Tensor:
    """Mono float32 waveform (S,) at ``sample_rate``."""
    data, file_rate = read_checked(Path(path))
    wave = torch.from_numpy(data.mean(axis=1, dtype=np.float32))  # (S,) down-mix to mono
    if file_rate != sample_rate:
        wave = torchaudio.functional.resample(wave, file_rate, sample_rate)
    return wave


def read_checked(path: Path) -> tuple[np.ndarray, int]:
    """(frames, channels) float32 and the file's rate, or BadAudioError saying what is wrong."""
    if not path.is_file():
        raise BadAudioError(path, "file not found")
    if path.stat().st_size == 0:
        raise BadAudioError(path, "empty file (0 bytes)")
    try:
        data, file_rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, TypeError) as err:
        raise BadAudioError(path, f"unreadable ({err})") from err
    if data.shape[0] == 0:
        raise BadAudioError(path, "zero-length audio (0 samples)")
    if not np.isfinite(data).all():
        raise BadAudioError(path, "non-finite samples (NaN or inf)")
    return data, int(file_rate)


def check_audio(path: str | Path) -> None:
    """Raise BadAudioError if ``load_audio`` would, without decoding the whole file.

    The header's frame count is checked against the file: the last TAIL_FRAMES frames are sought and
    decoded. A FLAC or MP3 cut short keeps its header's full count (libsndfile trusts FLAC's
    STREAMINFO), so this is what catches it up front rather than mid-epoch. Float files are read
    whole, since only their samples can be NaN/inf.
    """
    path = Path(path)
    if not path.is_file():
        raise BadAudioError(path, "file not found")
    if path.stat().st_size == 0:
        raise BadAudioError(path, "empty file (0 bytes)")
    try:
        info = sf.info(path)
    except (sf.SoundFileError, RuntimeError, TypeError) as err:
        raise BadAudioError(path, f"unreadable ({err})") from err
    if info.frames == 0:
        raise BadAudioError(path, "zero-length audio (0 samples)")
    if info.subtype in FLOAT_SUBTYPES or info.frames < 0:
        read_checked(path)
        return
    check_tail(path, info.frames)


# Frames decoded at the end of a file to prove its header's length: they include the last block
# (FLAC: 4,096 frames or fewer), which a cut anywhere damages or removes; a small read, not the file.
TAIL_FRAMES = 4096


def check_tail(path: Path, frames: int) -> None:
    want = min(TAIL_FRAMES, frames)
    try:
        with sf.SoundFile(path) as f:
            f.seek(frames - want)
            got = len(f.read(want, dtype="float32"))
    except (sf.SoundFileError, RuntimeError, TypeError, ValueError) as err:
        raise BadAudioError(path, f"truncated or corrupt: its last frames do not decode ({err})") from err
    if got < want:
        raise BadAudioError(
            path, f"truncated: the header says {frames} frames, but its last {want} yield {got}"
        )


def crop_or_pad(
    wave: torch.Tensor, num_samples: int, *, random_crop: bool, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, int]:
    """(num_samples,) window of ``wave`` (S,) and how many of its samples are real audio.

    Longer clips are cropped at a random start when ``random_crop`` (training) and at 0 otherwise
    (evaluation stays deterministic); shorter ones are zero-padded at the end, and the returned
    valid length lets encoders mask the padding.
    """
    length = wave.shape[-1]
    if length >= num_samples:
        start = 0
        if random_crop and length > num_samples:
            start = int(torch.randint(0, length - num_samples + 1, (1,), generator=generator))
        return wave[..., start : start + num_samples], num_samples
    padded = torch.nn.functional.pad(wave, (0, num_samples - length))
    return padded, length


def pad_waveforms(
    waves: Sequence[torch.Tensor | np.ndarray],
    num_samples: int | None = None,
    *,
    max_samples: int | None = None,
    random_crop: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """B clips of (S_i,) samples, each cropped or zero-padded to one width, stacked.

    -> audio (B, S) float32, lengths (B,) int64 (valid samples of each row). The width S is
    ``num_samples`` when given (every batch the same shape: training, evaluation), else the longest
    clip's capped at ``max_samples`` (None: no cap), so a batch of short clips is not padded to the
    crop length. Crops start at 0 unless ``random_crop``; the starts are drawn from ``generator``
    row by row (`crop_or_pad`).
    """
    rows = [as_float_tensor(wave) for wave in waves]
    width = num_samples if num_samples is not None else longest(rows, max_samples)
    cropped = [crop_or_pad(wave, width, random_crop=random_crop, generator=generator) for wave in rows]
    audio = torch.stack([wave for wave, _ in cropped])  # (B, S)
    lengths = torch.tensor([length for _, length in cropped], dtype=torch.int64)  # (B,)
    return audio, lengths


def load_waveforms(
    paths: Sequence[str | Path],
    sample_rate: int,
    num_samples: int | None = None,
    *,
    max_samples: int | None = None,
    random_crop: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`load_audio` each file (once, however often it is listed), then `pad_waveforms`."""
    decoded: dict[str, torch.Tensor] = {}
    for path in paths:
        # training rows come one per caption, a clip's rows side by side: one decode serves them all
        if str(path) not in decoded:
            decoded[str(path)] = load_audio(path, sample_rate)  # (S_i,)
    waves = [decoded[str(path)] for path in paths]
    return pad_waveforms(
        waves, num_samples, max_samples=max_samples, random_crop=random_crop, generator=generator
    )


def as_float_tensor(wave: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(S,) float32 tensor; arrays are copied (waveforms from Ray's object store are read-only)."""
    if isinstance(wave, torch.Tensor):
        return wave.to(torch.float32)
    return torch.from_numpy(np.array(wave, dtype=np.float32))


def longest(waves: Sequence[torch.Tensor], cap: int | None) -> int:
    """The longest clip's sample count, at most ``cap``, at least 1."""
    width = max(int(wave.shape[-1]) for wave in waves)
    return max(1, width if cap is None else min(cap, width))


def log_mel(
    wave: torch.Tensor, sample_rate: int = 16_000, n_mels: int = 64, n_fft: int = 512, hop: int = 160
) -> torch.Tensor:
    """Log-mel spectrogram in dB: (..., S) -> (..., n_mels, S // hop + 1).

    CED's front end: 32 ms window (n_fft 512 at 16 kHz), 10 ms hop, 64 mels, dB with top_db 120
    applied per clip (never across a batch, so a clip's features do not depend on its batchmates).
    """
    mel_spectrogram, to_db = mel_transforms(sample_rate, n_mels, n_fft, hop)
    mel = mel_spectrogram.to(wave.device)(wave)  # (..., n_mels, frames)
    # AmplitudeToDB takes the top_db floor over the last three dims: give each clip its own.
    return to_db(mel.unsqueeze(-3)).squeeze(-3)


@functools.lru_cache(maxsize=8)
def mel_transforms(
    sample_rate: int, n_mels: int, n_fft: int, hop: int
) -> tuple[torch.nn.Module, torch.nn.Module]:
    mel_spectrogram = torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=n_fft, win_length=n_fft, hop_length=hop, n_mels=n_mels, f_min=0.0
    )
    return mel_spectrogram, torchaudio.transforms.AmplitudeToDB(top_db=120)
