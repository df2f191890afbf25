"""Audio front end: clips/s per core for decode + resample + log-mel vs decode alone (the floor).

    python benchmarks/audio_frontend.py            # 40 clips of 10 s per sample rate
    python benchmarks/audio_frontend.py --quick    # 12 clips

Clips are generated as 16-bit PCM wav files (mono noise plus tones) at 44.1 kHz (Clotho's rate)
and 16 kHz (the model's rate, where resampling is a no-op). Each repetition processes every clip
once, one at a time, on ``--threads`` threads, through the data room's ``load_audio`` and
``log_mel``; the floor is ``soundfile.read`` of the same files (what ``load_audio`` decodes with).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
import torchaudio

from distillcaps.benchmarking import (
    BenchmarkResult,
    Case,
    base_parser,
    measure_alternating,
    paired_ratio,
    parse_args,
    set_threads,
)
from distillcaps.data import load_audio, log_mel

MODEL_RATE = 16_000


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__file__, __doc__)
    parser.add_argument(
        "--clips", type=int, default=0, help="clips per sample rate (0: 40, or 12 with --quick)"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length (AudioCaps: 10 s)")
    parser.add_argument("--rates", type=int, nargs="+", default=[44_100, 16_000], help="file sample rates")
    args = parse_args(parser, argv)
    clips = args.clips or (12 if args.quick else 40)
    set_threads(args.threads)

    result = BenchmarkResult(
        name="audio_frontend",
        args=args,
        settings={
            "clips_per_rate": clips,
            "clip_seconds": args.seconds,
            "file_rates": args.rates,
            "target_rate": MODEL_RATE,
            "file_format": "wav PCM_16 mono",
            "log_mel": "data room defaults (64 mels, n_fft 512, hop 160, dB)",
            "functions": "distillcaps.data.load_audio / log_mel",
            "per_core": args.threads == 1,
        },
        versions=("torch", "torchaudio", "soundfile", "numpy"),
    )
    with tempfile.TemporaryDirectory(prefix="bench-audio-") as tmp:
        for rate in args.rates:
            measure_rate(result, rate, write_clips(Path(tmp), rate, clips, args.seconds), args)
    result.write()
    return 0


def front_end_stages(paths: list[Path], rate: int) -> dict[str, Any]:
    """One repetition of each stage: every clip once, one at a time."""
    # The measured alternative: torchaudio.functional.resample rebuilds its sinc kernel on every
    # call; the transform builds it once per rate pair.
    resampler = torchaudio.transforms.Resample(rate, MODEL_RATE)

    def decode_only() -> None:
        for p in paths:
            sf.read(p, dtype="float32", always_2d=True)

    def decode_resample() -> None:
        for p in paths:
            load_audio(p, sample_rate=MODEL_RATE)

    def decode_cached_resample() -> None:
        with torch.inference_mode():
            for p in paths:
                data, _ = sf.read(p, dtype="float32", always_2d=True)
                resampler(torch.from_numpy(data.mean(axis=1)))

    def decode_resample_logmel() -> None:
        with torch.inference_mode():
            for p in paths:
                log_mel(load_audio(p, sample_rate=MODEL_RATE), sample_rate=MODEL_RATE)

    return {
        "floor": decode_only,
        "middle": decode_resample,
        "cached": decode_cached_resample,
        "full": decode_resample_logmel,
    }


def measure_rate(result: BenchmarkResult, rate: int, paths: list[Path], args: Any) -> None:
    """The stages side by side on files at ``rate``; the cached-kernel side only where there is resampling."""
    clips, stages = len(paths), front_end_stages(paths, rate)
    params: dict[str, Any] = {"file_rate": rate, "clips": clips, "clip_seconds": args.seconds}
    floor = Case(f"decode@{rate}", "clips", clips, {**params, "stage": "soundfile.read"})
    middle = Case(f"decode+resample@{rate}", "clips", clips, {**params, "stage": "load_audio"})
    full = Case(f"decode+resample+logmel@{rate}", "clips", clips, {**params, "stage": "load_audio + log_mel"})
    cached = Case(
        f"decode+cached-kernel-resample@{rate}",
        "clips",
        clips,
        {**params, "stage": "soundfile.read + torchaudio.transforms.Resample (alternative)"},
    )
    sides = [(floor, stages["floor"]), (middle, stages["middle"]), (full, stages["full"])]
    if rate != MODEL_RATE:
        sides.insert(2, (cached, stages["cached"]))
    measure_alternating(sides, repeats=args.repeats, warmup=args.warmup)
    if rate != MODEL_RATE:
        result.ratios.append(
            paired_ratio(f"cached-kernel resample / load_audio @{rate} (clips/s)", cached, middle)
        )
    for case, _ in sides:
        case.extra["audio_seconds_per_s"] = round(case.median_rate * args.seconds, 1)
        result.add(case)
    of_floor = paired_ratio(f"full / decode @{rate} (clips/s)", full, floor)
    result.ratios.append(of_floor)
    result.ratios.append(paired_ratio(f"decode+resample / decode @{rate} (clips/s)", middle, floor))
    result.findings.append(
        f"{rate} Hz files: decode+resample+log-mel runs at {full.median_rate:.1f} clips/s per "
        f"{args.threads} thread(s) = {of_floor['median']:.2f}x the decode-only floor "
        f"({floor.median_rate:.1f} clips/s); {full.median_rate * args.seconds:.0f} s of audio per s"
    )


def write_clips(root: Path, rate: int, count: int, seconds: float) -> list[Path]:
    """``count`` mono PCM_16 wav files of noise plus a tone, so the codec has real content."""
    rng = np.random.default_rng(rate)
    folder = root / str(rate)
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(rate * seconds), dtype=np.float32) / rate
    paths = []
    for i in range(count):
        wave = 0.1 * rng.standard_normal(t.shape[0]).astype(np.float32)
        wave += 0.3 * np.sin(2 * np.pi * (220 + 40 * i) * t, dtype=np.float32)
        path = folder / f"clip_{i:04d}.wav"
        sf.write(path, wave, rate, subtype="PCM_16")
        paths.append(path)
    return paths


if __name__ == "__main__":
    raise SystemExit(main())
