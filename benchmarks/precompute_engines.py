"""Precompute passes through a Ray Data stage vs in this process: clips/s to fill the frozen-feature
cache and to embed clips with the CLAP for retrieval, on the tiny preset. What "auto" rests on
(``distillcaps.precompute_engine``).

    python benchmarks/precompute_engines.py              # the default training split's 600 clips
    python benchmarks/precompute_engines.py --quick      # --quick's 48 clips
    python benchmarks/precompute_engines.py --clips 1800

Sides, alternating (each repetition is one whole pass over the clips, as a cold cache computes it):
  features/ray     ``feature_cache.encode_with_ray``: Ray Data decodes in tasks and encodes in one
                   ``EncodeFrozen`` actor, which each pass starts afresh (imports torch, loads the encoder)
  features/local   ``feature_cache.encode_locally``: the same decode and encode, in this process
  clap/ray         ``retrieval.embed.embed_records_ray``: one ``EmbedAudio`` actor per pass
  clap/local       ``retrieval.embed.embed_records_local``
The ratios are local / ray in clips per second, wall clock: above 1 means this process is faster.
CPU time is this process's only (the Ray side's actors are not in it), so only wall time compares.
Weights do not change the speed: the tiny CLAP (whose audio tower is the encoder) trains 1 epoch
(``ensure_standins``, untimed).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import ray

from distillcaps.benchmarking import (
    BenchmarkResult,
    Case,
    base_parser,
    measure_alternating,
    paired_ratio,
    parse_args,
    set_threads,
    start_benchmark_ray,
)
from distillcaps.config import Config, load_config
from distillcaps.data import read_records, resolve_dataset_dir
from distillcaps.retrieval.clap import build_clap
from distillcaps.retrieval.embed import embed_records_local, embed_records_ray
from distillcaps.retrieval.precompute import pinned_config
from distillcaps.standins import ensure_standins
from distillcaps.training.feature_cache import encode_locally, encode_with_ray

PASSES = ("features/ray", "features/local", "clap/ray", "clap/local")


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__file__, __doc__)
    parser.add_argument("--clips", type=int, default=0, help="clips per pass (0: 600, or 48 with --quick)")
    parser.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the local Ray instance")
    args = parse_args(parser, argv)
    clips = args.clips or (48 if args.quick else 600)
    set_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="bench-precompute-") as tmp:
        cfg = load_config(
            "tiny",
            [
                f"data.data_root={Path(tmp) / 'data'}",
                f"data.synth.num_train={clips}",
                "data.synth.num_val=4",
                "data.synth.num_eval=4",
                "retrieval.tiny.epochs=1",
            ],
        )
        records = read_records(resolve_dataset_dir(cfg), cfg.data.dataset_format, cfg.data.train_subset)
        ensure_standins(cfg, names=["tiny-clap"])  # trains the tiny CLAP once (untimed)
        start_benchmark_ray(args.ray_cpus)
        try:
            cases, outputs = measure_passes(cfg, records, args)
        finally:
            ray.shutdown()
        # Both engines must compute the same thing, or their speeds do not compare.
        np.testing.assert_allclose(outputs["features/ray"][0], outputs["features/local"][0], atol=1e-5)
        np.testing.assert_allclose(outputs["clap/ray"], outputs["clap/local"], atol=1e-5)
    write_result(cfg, cases, args)
    return 0


def measure_passes(cfg: Config, records: list, args: Any) -> tuple[dict[str, Case], dict[str, Any]]:
    """Each pass over the clips, the four alternating; -> (cases, each pass's last output)."""
    rows = [{"clip": i, "fname": r.fname, "path": str(r.path)} for i, r in enumerate(records)]
    paths = [str(r.path) for r in records]
    clap = build_clap(cfg)
    pinned = pinned_config(cfg, clap)
    ray.data.DataContext.get_current().enable_progress_bars = False
    passes = {
        "features/ray": lambda: encode_with_ray(cfg, rows),
        "features/local": lambda: encode_locally(cfg, rows),
        "clap/ray": lambda: embed_records_ray(pinned, clap, paths),
        "clap/local": lambda: embed_records_local(pinned, clap, paths),
    }
    outputs: dict[str, Any] = {}

    def keep(name: str):
        def run() -> None:
            outputs[name] = passes[name]()

        return run

    params = {"clips": len(rows), "threads": args.threads, "ray_cpus": args.ray_cpus}
    cases = {name: Case(name, "clips", len(rows), dict(params)) for name in PASSES}
    measure_alternating([(cases[name], keep(name)) for name in PASSES], args.repeats, args.warmup)
    return cases, outputs


def write_result(cfg: Config, cases: dict[str, Case], args: Any) -> None:
    clips = int(next(iter(cases.values())).items_per_repetition)
    result = BenchmarkResult(
        name="precompute_engines",
        args=args,
        settings={
            "clips": clips,
            "clip_seconds": cfg.data.synth.clip_seconds,
            "encoder": cfg.model.encoder.name,
            "clap": cfg.retrieval.clap,
            "feature_batch": cfg.eval.batch_size,
            "clap_batch": cfg.retrieval.batch_size,
            "ray_cpus": args.ray_cpus,
            "cpu_count": os.cpu_count(),
        },
        versions=("ray", "torch", "torchaudio", "soundfile"),
    )
    for case in cases.values():
        result.add(case)
    for what in ("features", "clap"):
        local, on_ray = cases[f"{what}/local"], cases[f"{what}/ray"]
        ratio = paired_ratio(f"{what}: local / ray (clips/s)", local, on_ray)
        result.ratios.append(ratio)
        faster = "this process" if ratio["median"] > 1 else "Ray Data"
        result.findings.append(
            f"{what}, {clips} clips: {faster} is faster ({ratio['median']:.2f}x local/ray): "
            f"{local.median_s:.1f} s in this process against {on_ray.median_s:.1f} s through Ray Data"
        )
    result.write()


if __name__ == "__main__":
    raise SystemExit(main())
