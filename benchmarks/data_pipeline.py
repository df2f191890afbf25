"""Data pipeline headroom: rows/s the Ray Data pipeline delivers alone vs rows/s training consumes
(cache off). The pipeline must not be the bottleneck: target ratio >= 2 on CPU.

    python benchmarks/data_pipeline.py            # 40 clips x 5 captions = 200 rows per epoch
    python benchmarks/data_pipeline.py --quick    # 16 clips x 5 = 80 rows

Sides, alternating (each repetition is one epoch over the same rows):
  pipeline   the training room's Ray Data pipeline with the cache off
             (``distillcaps.training.data_pipeline.audio_dataset``: from_items -> DecodeAudio as
             tasks on warm worker processes: decode each file once per batch + resample + random
             crop per row), iterated with iter_batches as a Train worker does, nothing consuming the
             batches. Its first (cold) epoch starts the worker processes: timed on its own
  training   distill steps (frozen encoder + both branches + backward + AdamW) on ready batches of
             audio, in this process, ``--threads`` threads; a randomly initialised tiny model
The ratio pipeline / training is the headroom. Each side runs alone here, so it is an upper bound of
the headroom inside a real run where both share the cores. Ray runs locally with ``--ray-cpus`` CPUs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import ray
import soundfile as sf
import torch

from distillcaps.benchmarking import (
    BenchmarkResult,
    Case,
    base_parser,
    build_random_tiny_stack,
    measure_alternating,
    paired_ratio,
    parse_args,
    set_threads,
    start_benchmark_ray,
    synthetic_captions,
    time_call,
)
from distillcaps.config import Config, load_config
from distillcaps.data.batches import split_rows, to_model_batch
from distillcaps.data.records import ClipRecord
from distillcaps.training.data_pipeline import audio_dataset


def arg_parser() -> argparse.ArgumentParser:
    parser = base_parser(__file__, __doc__)
    parser.add_argument("--clips", type=int, default=0, help="clips per epoch (0: 40, or 16 with --quick)")
    parser.add_argument("--captions-per-clip", type=int, default=5, help="rows per clip (Clotho: 5)")
    parser.add_argument("--seconds", type=float, default=5.0, help="clip length (synthetic set: 5 s)")
    parser.add_argument("--rate", type=int, default=44_100, help="file sample rate (Clotho: 44.1 kHz)")
    parser.add_argument("--batch", type=int, default=32, help="rows per training step (tiny preset: 32)")
    parser.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the local Ray instance")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parse_args(arg_parser(), argv)
    args.clips = args.clips or (16 if args.quick else 40)
    set_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        tmp = Path(tmp)
        rows = training_rows(tmp / "wav", args)
        overrides = [f"data.max_seconds={args.seconds}"]
        stack = build_random_tiny_stack(tmp / "stack", overrides, datastore_size=1000)
        cfg = load_config("tiny", overrides)
        start_benchmark_ray(args.ray_cpus)
        try:
            ctx = ray.data.DataContext.get_current()
            ctx.enable_progress_bars = False
            ctx.print_on_execution_start = False
            pipeline, training, cold_s = measure_epochs(stack.model.train(), rows, cfg, args)
        finally:
            ray.shutdown()

    result = BenchmarkResult(
        name="data_pipeline",
        args=args,
        settings={
            "model": stack.description,
            "clips": args.clips,
            "rows_per_epoch": len(rows),
            "captions_per_clip": args.captions_per_clip,
            "clip_seconds": args.seconds,
            "file_rate": args.rate,
            "batch": args.batch,
            "ray_cpus": args.ray_cpus,
            "pipeline": "distillcaps.training.data_pipeline.audio_dataset (DecodeAudio as tasks, "
            "TaskPoolStrategy(size=1), 0.25 CPU) + iter_batches; warm epochs (the cold first one apart)",
            "training": "distill steps from audio (cache off), this process",
            "cpu_count": os.cpu_count(),
        },
        versions=("ray", "torch", "torchaudio", "soundfile"),
    )
    add_ratio_and_finding(result, pipeline, training, cold_s)
    result.write()
    return 0


def training_rows(folder: Path, args: Any) -> list[dict[str, Any]]:
    """Training rows (one per caption) over ``--clips`` wav files, each with 3 retrieved captions."""
    per_clip = args.captions_per_clip
    captions = synthetic_captions(args.clips * per_clip, seed=1)
    records = [
        ClipRecord(
            fname=p.name,
            path=p,
            captions=captions[i * per_clip :][:per_clip],
            dataset="bench",
            subset="dev",
            index=i,
        )
        for i, p in enumerate(write_wavs(folder, args.clips, args.seconds, args.rate))
    ]
    retrieved = {
        r.fname: [{"caption": c} for c in captions[(i * 3) % len(captions) :][:3]]
        for i, r in enumerate(records)
    }
    return split_rows(records, retrieved, per="caption")


def measure_epochs(model, rows: list[dict[str, Any]], cfg: Config, args: Any) -> tuple[Case, Case, float]:
    """The pipeline's epochs against training's, alternating; -> (pipeline, training, the pipeline's
    cold first epoch in seconds, timed apart)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)

    def pipeline_epoch() -> None:
        ds = audio_dataset(rows, cfg, random_crop=True)
        batches = ds.iter_batches(batch_size=args.batch, batch_format="numpy")
        delivered = sum(len(b["caption"]) for b in batches)
        assert delivered == len(rows), f"pipeline delivered {delivered} of {len(rows)} rows"

    cold_s, _ = time_call(pipeline_epoch)  # a run's first epoch: the worker processes start

    # Training consumes ready batches: decode them once (outside the timing) with the same stage.
    decoded = audio_dataset(rows, cfg, random_crop=True)
    first = list(decoded.iter_batches(batch_size=len(rows), batch_format="numpy"))[0]
    batches = [
        to_model_batch({k: v[i : i + args.batch] for k, v in first.items()}, None)
        for i in range(0, len(rows), args.batch)
    ]

    def training_epoch() -> None:
        for batch in batches:
            loss = model.compute_loss(batch, mode="distill").loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    params = {"rows": len(rows), "clips": args.clips, "batch": args.batch, "feature_cache": False}
    pipeline = Case("pipeline", "rows", len(rows), {**params, "ray_cpus": args.ray_cpus})
    pipeline.extra["cold_first_epoch_s"] = round(cold_s, 3)
    training = Case("training", "rows", len(rows), {**params, "threads": args.threads})
    measure_alternating([(pipeline, pipeline_epoch), (training, training_epoch)], args.repeats, args.warmup)
    return pipeline, training, cold_s


def add_ratio_and_finding(result: BenchmarkResult, pipeline: Case, training: Case, cold_s: float) -> None:
    result.add(pipeline)
    result.add(training)
    headroom = paired_ratio("pipeline / training (rows/s): headroom", pipeline, training)
    result.ratios.append(headroom)
    verdict = "meets" if headroom["median"] >= 2 else "DOES NOT meet"
    result.findings.append(
        f"the Ray Data pipeline delivers {pipeline.median_rate:.1f} rows/s alone, training consumes "
        f"{training.median_rate:.1f} rows/s: headroom {headroom['median']:.2f}x, "
        f"which {verdict} the >= 2x target; the first epoch of a run takes {cold_s:.1f} s "
        f"(worker processes start) against {pipeline.median_s:.1f} s for a warm one"
    )


def write_wavs(folder: Path, count: int, seconds: float, rate: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"clip_{i:04d}.wav"
        sf.write(
            path, (0.1 * rng.standard_normal(int(rate * seconds))).astype(np.float32), rate, subtype="PCM_16"
        )
        paths.append(path)
    return paths


if __name__ == "__main__":
    raise SystemExit(main())
