"""Turn uploaded bytes into a 16 kHz mono waveform, or say exactly what is wrong with them.

Every rejection is an ``UploadError`` carrying the HTTP status and a short machine-readable kind, so
the HTTP layer and batch captioning report bad audio the same way.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

TARGET_SAMPLE_RATE = 16_000  # what every encoder of the model expects
MIN_SAMPLE_RATE = 1_000  # below this a "sample rate" is a corrupt header, not audio
MAX_SAMPLE_RATE = 384_000
# Containers libsndfile reads that audio tools write; the rest it knows (PAF, SD2, MAT5, ...) are
# refused rather than parsed on a server (soundfile's `info.format` names)
ALLOWED_FORMATS = frozenset({"WAV", "WAVEX", "RF64", "W64", "FLAC", "OGG", "MP3", "AIFF"})

# Raw-body content types we decode (soundfile sniffs the real format from the bytes).
AUDIO_CONTENT_TYPES = frozenset(
    {
        "audio/wav",
        "audio/wave",
        "audio/x-wav",
        "audio/vnd.wave",
        "audio/flac",
        "audio/x-flac",
        "audio/ogg",
        "application/ogg",
        "audio/vorbis",
        "audio/opus",
        "audio/aiff",
        "audio/x-aiff",
        "application/octet-stream",
    }
)


class UploadError(ValueError):
    """Bad input: ``status`` is the HTTP code, ``kind`` a stable name, the message says what was wrong."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message

    def to_json(self) -> dict[str, str]:
        return {"error": self.message, "kind": self.kind}


@dataclass(frozen=True)
class AudioLimits:
    max_bytes: int = 20 * 1024 * 1024
    max_duration_s: float = 30.0
    # The log-mel front end reflect-pads by half its 512-sample window: a clip needs > 256 samples
    # at 16 kHz, and one under 0.1 s holds no sound event a caption could name
    min_duration_s: float = 0.1
    max_channels: int = 8
    # Decoded samples (frames x channels) checked from the header before decoding: a few KB of
    # compressed audio can declare 8 channels at 384 kHz (~0.9 GB of float32 for 30 s). The default
    # takes 30 s of 96 kHz stereo; 64M samples is 256 MB of float32.
    max_decoded_samples: int = 30 * 96_000 * 2


@dataclass
class DecodedAudio:
    waveform: np.ndarray  # (S,) float32 mono at 16 kHz
    source_sample_rate: int
    source_channels: int
    duration_s: float


def check_content_type(content_type: str | None) -> None:
    """Reject raw bodies whose declared type is not audio (multipart parts are checked by content)."""
    base = (content_type or "").split(";")[0].strip().lower()
    if base and base not in AUDIO_CONTENT_TYPES:
        raise UploadError(
            415,
            "unsupported_content_type",
            f"unsupported content type {base!r}: send audio (wav, flac, ogg) as the raw body with an "
            "audio/* type, or as a multipart/form-data file field named 'audio'",
        )


def decode_audio(data: bytes, limits: AudioLimits, *, name: str = "upload") -> DecodedAudio:
    """Decode wav/flac/ogg/... bytes of any sample rate and channel count to 16 kHz mono float32."""
    if len(data) == 0:
        raise UploadError(400, "empty_body", f"{name}: the audio is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise UploadError(
            413, "too_large", f"{name}: {len(data)} bytes is over the size limit of {limits.max_bytes} bytes"
        )
    info = _read_info(data, name)
    _check_header(info, limits, name)
    # Duration from the header first, so a long file is refused before it is decoded.
    if info.frames > 0 and info.frames / info.samplerate > limits.max_duration_s:
        raise UploadError(
            422,
            "too_long",
            f"{name}: audio is {info.frames / info.samplerate:.1f} s long; the limit is "
            f"{limits.max_duration_s:g} s (longer audio is rejected, not cropped)",
        )
    _check_wav_not_truncated(data, name)
    try:
        samples, sample_rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)  # (S, C)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise UploadError(422, "corrupt_audio", f"{name}: the audio is corrupt or truncated ({err})") from err
    if samples.shape[0] == 0:
        raise UploadError(422, "no_samples", f"{name}: the audio has no samples (zero-length or truncated)")
    if info.frames > 0 and samples.shape[0] != info.frames:
        raise UploadError(
            422,
            "truncated_audio",
            f"{name}: the header declares {info.frames} frames, {samples.shape[0]} were decoded",
        )
    if samples.shape[0] / sample_rate < limits.min_duration_s:
        raise _too_short(samples.shape[0] / sample_rate, limits, name)
    if samples.shape[0] / sample_rate > limits.max_duration_s:
        raise UploadError(
            422,
            "too_long",
            f"{name}: audio is {samples.shape[0] / sample_rate:.1f} s long; the limit is "
            f"{limits.max_duration_s:g} s (longer audio is rejected, not cropped)",
        )
    finite = np.isfinite(samples)
    if not finite.all():
        what = "all samples are" if not finite.any() else f"{int((~finite).sum())} samples are"
        raise UploadError(422, "non_finite", f"{name}: {what} NaN or infinite")
    mono = samples.mean(axis=1)  # (S,) down-mix
    waveform = resample(mono, sample_rate)
    return DecodedAudio(
        waveform=waveform,
        source_sample_rate=int(sample_rate),
        source_channels=int(samples.shape[1]),
        duration_s=samples.shape[0] / sample_rate,
    )


def _check_header(info, limits: AudioLimits, name: str) -> None:
    """Format, rate, channels, duration and decoded size, all before a sample is decoded."""
    if info.format not in ALLOWED_FORMATS:
        allowed = ", ".join(sorted(ALLOWED_FORMATS))
        raise UploadError(
            415, "unsupported_format", f"{name}: {info.format} audio is not accepted ({allowed})"
        )
    if not MIN_SAMPLE_RATE <= info.samplerate <= MAX_SAMPLE_RATE:
        rate = info.samplerate
        raise UploadError(422, "bad_sample_rate", f"{name}: sample rate {rate} Hz is not plausible")
    if not 1 <= info.channels <= limits.max_channels:
        message = f"{name}: {info.channels} channels; at most {limits.max_channels} are accepted"
        raise UploadError(422, "too_many_channels", message)
    if info.frames > 0 and info.frames / info.samplerate < limits.min_duration_s:
        raise _too_short(info.frames / info.samplerate, limits, name)
    if info.frames * info.channels > limits.max_decoded_samples:
        raise UploadError(
            422,
            "too_many_samples",
            f"{name}: {info.frames} frames x {info.channels} channels would decode to "
            f"{info.frames * info.channels} samples; the limit is {limits.max_decoded_samples}",
        )


def _too_short(seconds: float, limits: AudioLimits, name: str) -> UploadError:
    return UploadError(
        422,
        "too_short",
        f"{name}: audio is {seconds * 1000:.0f} ms long; the minimum is {limits.min_duration_s:g} s",
    )


def resample(mono: np.ndarray, sample_rate: int) -> np.ndarray:
    """(S,) at sample_rate -> (S',) float32 at 16 kHz."""
    if sample_rate == TARGET_SAMPLE_RATE:
        return np.ascontiguousarray(mono, dtype=np.float32)
    wave = torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32))
    return AF.resample(wave, sample_rate, TARGET_SAMPLE_RATE).numpy()


def _read_info(data: bytes, name: str) -> sf._SoundFileInfo:
    try:
        return sf.info(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError) as err:
        text = str(err)
        if "Format not recognised" in text or "unknown format" in text.lower():
            raise UploadError(
                415, "not_audio", f"{name}: not a recognised audio file (wav, flac, ogg, aiff ...)"
            ) from err
        message = f"{name}: the audio is corrupt or truncated ({text})"
        raise UploadError(422, "corrupt_audio", message) from err


def _check_wav_not_truncated(data: bytes, name: str) -> None:
    """libsndfile silently reads what is there of a cut-off WAV; compare with the declared data size."""
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RF64") or data[8:12] != b"WAVE":
        return
    offset = 12
    while offset + 8 <= len(data):
        chunk_id = data[offset : offset + 4]
        (size,) = struct.unpack("<I", data[offset + 4 : offset + 8])
        if chunk_id == b"data":
            available = len(data) - offset - 8
            # RF64 and streamed WAVs write 0 or 0xFFFFFFFF as a placeholder size.
            if size not in (0, 0xFFFFFFFF) and available < size:
                raise UploadError(
                    422,
                    "truncated_audio",
                    f"{name}: the WAV is truncated: its header declares {size} bytes of samples, "
                    f"only {available} are present",
                )
            return
        offset += 8 + size + (size & 1)
