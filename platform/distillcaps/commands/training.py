"""``distillcaps train --config CFG [key=value ...] [--resume RUN_DIR]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from distillcaps.cli import add_config_arguments
from distillcaps.config import load_config
from distillcaps.training.trainer import train


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train on Ray Train, log to MLflow, evaluate the best checkpoint (with/without RAG)"
    )
    add_config_arguments(parser)
    parser.add_argument("--run-name", default=None, help="MLflow run name (default: <mode>-<preset>)")
    parser.add_argument(
        "--resume",
        metavar="RUN_DIR",
        default=None,
        help="continue a stopped run from its last checkpoint (its config.yaml, plus overrides)",
    )
    parser.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    if args.resume:
        # The run's own resolved config, so that only the given overrides change.
        config = Path(args.resume) / "config.yaml"
        if not config.is_file():
            raise FileNotFoundError(f"--resume {args.resume}: no config.yaml in it (not a training folder?)")
        cfg = load_config(config, args.overrides)
    else:
        cfg = load_config(args.config, args.overrides)
    result = train(cfg, run_name=args.run_name, resume_dir=Path(args.resume) if args.resume else None)
    print(f"MLflow run id: {result.run_id}")
    print(f"output folder: {result.output_dir}")
    print(f"best checkpoint: {result.best_checkpoint}")
    return 0
