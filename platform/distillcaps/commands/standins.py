"""``distillcaps standins [--config NAME] [key.sub=value ...]``: build the stand-ins a config uses.

The tiny CLAP and the tiny LLM are trained once (cached by their key) and their folders printed; a
config that names real checkpoints (the paper preset) builds nothing. Training and the retrieval
and diagnose commands build them themselves; this command builds them ahead, e.g. before a sweep.
"""

from __future__ import annotations

import argparse

from distillcaps.cli import add_config_arguments
from distillcaps.config import load_config


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "standins", help="build (once, cached) the tiny CLAP and tiny LLM a config uses; print their folders"
    )
    add_config_arguments(parser)
    parser.set_defaults(func=build_standins)


def build_standins(args: argparse.Namespace) -> int:
    from distillcaps.standins import ensure_standins  # lazy: trains with torch on a miss

    folders = ensure_standins(load_config(args.config, args.overrides))
    for name, folder in folders.items():
        print(f"{name}: {folder}")
    if not folders:
        print("no stand-ins: the config names real checkpoints")
    return 0
