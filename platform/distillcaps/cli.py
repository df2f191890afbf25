"""The one command-line entry point: ``distillcaps <command> ...``.

Each room of the package has its subcommands in a module of ``distillcaps.commands`` with
``add_commands(subparsers)``; each subcommand sets ``func(args) -> int | None`` as its handler.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import threading
from collections.abc import Iterator, Sequence

from distillcaps import __version__
from distillcaps.process_env import QUIET, set_defaults

# Modules that provide subcommands (distillcaps.commands); each defines add_commands(subparsers).
COMMAND_MODULES: list[str] = [
    "distillcaps.commands.retrieval",
    "distillcaps.commands.data",
    "distillcaps.commands.serving",
    "distillcaps.commands.training",
    "distillcaps.commands.evaluation",
    "distillcaps.commands.caption",
    "distillcaps.commands.diagnose",
    "distillcaps.commands.standins",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="distillcaps",
        description="DistillCaps: retrieval-distilled audio captioning on Ray + MLflow.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(subparsers)
    return parser


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """--config NAME|PATH plus trailing dotted overrides, shared by every command that takes a config."""
    parser.add_argument("--config", default="tiny", help="preset name (tiny, paper) or YAML path")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="dotted config overrides")


def main(argv: Sequence[str] | None = None) -> int:
    set_defaults(QUIET)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        print(__version__)
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with sigterm_as_interrupt():
            return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as err:
        # Bad input: say what was wrong, no traceback.
        print(f"distillcaps {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"distillcaps {args.command}: stopped", file=sys.stderr)
        return 130


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a job stopped by a scheduler, `ray job stop`, `kill`) raises KeyboardInterrupt, as
    Ctrl-C does, so open MLflow runs end KILLED and cleanup code runs, instead of the process
    vanishing with its runs left RUNNING. Only from the main thread, where Python handles signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
