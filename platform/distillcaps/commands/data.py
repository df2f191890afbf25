"""``distillcaps data synth OUT_DIR ...`` and ``distillcaps data info [--config ...]``."""

from __future__ import annotations

import argparse
import time

from distillcaps.cli import add_config_arguments
from distillcaps.config import load_config
from distillcaps.data.paths import resolve_dataset_dir
from distillcaps.data.records import read_records
from distillcaps.data.synth import DOMAINS, SynthSettings, write_synthetic_dataset


def add_commands(subparsers) -> None:
    data = subparsers.add_parser("data", help="data sets: generate the synthetic benchmark, inspect data")
    commands = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)

    synth = commands.add_parser("synth", help="write the synthetic sound-scene benchmark (Clotho layout)")
    synth.add_argument("out_dir", metavar="OUT_DIR")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--num-train", type=int, default=600, help="clips in the dev (training) subset")
    synth.add_argument("--num-val", type=int, default=100)
    synth.add_argument("--num-eval", type=int, default=150)
    synth.add_argument("--domain", default="outdoor", help="outdoor (default) or indoor (shifted domain)")
    synth.add_argument("--clip-seconds", type=float, default=5.0)
    synth.add_argument("--workers", type=int, default=1, help="render in this many processes (same output)")
    synth.set_defaults(func=run_synth)

    info = commands.add_parser("info", help="subsets, clip and caption counts of the configured data set")
    info.add_argument(
        "--check-audio", action="store_true", help="also open every audio file and report bad ones"
    )
    add_config_arguments(info)
    info.set_defaults(func=run_info)


def run_synth(args: argparse.Namespace) -> int:
    DOMAINS.get(args.domain)  # unknown domain -> error naming the valid ones
    for flag in ("num_train", "num_val", "num_eval"):
        if getattr(args, flag) < 0:
            raise ValueError(f"--{flag.replace('_', '-')} must be >= 0, got {getattr(args, flag)}")
    settings = SynthSettings(
        seed=args.seed,
        num_train=args.num_train,
        num_val=args.num_val,
        num_eval=args.num_eval,
        domain=args.domain,
        clip_seconds=args.clip_seconds,
    )
    start = time.perf_counter()
    out = write_synthetic_dataset(args.out_dir, settings, workers=args.workers)
    total = args.num_train + args.num_val + args.num_eval
    seconds = time.perf_counter() - start
    print(f"wrote {total} clips ({args.domain}, seed {args.seed}) to {out} in {seconds:.1f} s")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from distillcaps.data.audio import BadAudioError, check_audio  # lazy: torch, at CLI start

    cfg = load_config(args.config, args.overrides)
    root = resolve_dataset_dir(cfg)
    print(f"dataset: {root} (format {cfg.data.dataset_format})")
    bad_total = 0
    for role in ("train", "val", "eval"):
        subset = getattr(cfg.data, f"{role}_subset")
        records = read_records(root, cfg.data.dataset_format, subset)
        captions = sum(len(r.captions) for r in records)
        line = f"  {role:5s} subset {subset!r}: {len(records)} clips, {captions} captions"
        if args.check_audio:
            bad = []
            for record in records:
                try:
                    check_audio(record.path)
                except BadAudioError as err:
                    bad.append(err)
            bad_total += len(bad)
            line += f", {len(bad)} bad audio files"
            for err in bad[:10]:
                line += f"\n    {err}"
        print(line)
    return 1 if bad_total else 0
