"""``distillcaps index {train-clap,build,retrieve,report}``: the retrieval room's commands.

Each builds the tiny CLAP first when the config uses it (`distillcaps.standins`): the retrieval
registry only loads it.
"""

from __future__ import annotations

import argparse
import json

from distillcaps.cli import add_config_arguments
from distillcaps.config import load_config
from distillcaps.tracking import start_run


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    index = subparsers.add_parser(
        "index", help="CLAP, caption datastore, precomputed retrieval, quality report"
    )
    commands = index.add_subparsers(dest="index_command", metavar="INDEX_COMMAND", required=True)

    train = commands.add_parser("train-clap", help="train (once, cached) the tiny CLAP on the training split")
    add_config_arguments(train)
    train.set_defaults(func=train_clap)

    build = commands.add_parser("build", help="embed the datastore captions and build the index")
    add_config_arguments(build)
    build.set_defaults(func=build_datastore)

    retrieve = commands.add_parser(
        "retrieve", help="precompute top-k captions for every clip of every subset"
    )
    add_config_arguments(retrieve)
    retrieve.set_defaults(func=retrieve_all)

    report = commands.add_parser("report", help="recall@1/5/10 on the validation split + the leakage check")
    add_config_arguments(report)
    report.add_argument(
        "--mlflow", action="store_true", help="log the figures to MLflow (a new run if none is active)"
    )
    report.set_defaults(func=report_quality)


def config_of(args: argparse.Namespace):
    """The command's config, with the tiny CLAP built if it uses it (the tiny LLM is not needed here)."""
    from distillcaps.standins import ensure_standins  # lazy: trains with torch on a miss

    cfg = load_config(args.config, args.overrides)
    ensure_standins(cfg, names=["tiny-clap"])
    return cfg


def train_clap(args: argparse.Namespace) -> int:
    from distillcaps.model.standin_folders import TINY_CLAP_MARKER  # lazy: reads audio files (soundfile)
    from distillcaps.standins import ensure_tiny_clap  # lazy: trains with torch

    path = ensure_tiny_clap(load_config(args.config, args.overrides))
    stats = json.loads((path / TINY_CLAP_MARKER).read_text())
    print(f"tiny-clap: {path}")
    print(
        f"  {stats['clips']} clips, {stats['epochs']} epochs, audio+log-mel {stats['load_seconds']} s, "
        f"training {stats['train_seconds']} s, final loss {stats['epoch_losses'][-1]}"
    )
    return 0


def build_datastore(args: argparse.Namespace) -> int:
    from distillcaps.retrieval.clap import build_clap  # lazy: torch
    from distillcaps.retrieval.precompute import ensure_datastore, ensure_index  # lazy: torch

    cfg = config_of(args)
    clap = build_clap(cfg)
    store, directory = ensure_datastore(cfg, clap)
    index = ensure_index(cfg, store, directory)
    print(f"datastore: {directory} ({len(store)} distinct captions, dim {store.dim}, {clap.identity})")
    print(f"index: {index.kind} (retrieval.index={cfg.retrieval.index}, {index.size} vectors)")
    return 0


def retrieve_all(args: argparse.Namespace) -> int:
    from distillcaps.data.usable import SkippedFile, print_skipped  # lazy: soundfile
    from distillcaps.retrieval.precompute import MANIFEST, ensure_retrieval, subsets_of  # lazy: torch

    cfg = config_of(args)
    out = ensure_retrieval(cfg)
    skipped = json.loads((out / MANIFEST).read_text()).get("skipped", {})
    for subset in subsets_of(cfg):
        lines = sum(1 for _ in open(out / f"{subset}.jsonl"))
        print(f"{subset}: {out / f'{subset}.jsonl'} ({lines} clips, {cfg.retrieval.store_k} captions each)")
        print_skipped([SkippedFile(**s) for s in skipped.get(subset, [])], f"subset {subset!r}")
    return 0


def report_quality(args: argparse.Namespace) -> int:
    from distillcaps.retrieval.report import retrieval_report  # lazy: torch

    cfg = config_of(args)
    report = retrieval_report(cfg)
    for key, value in report.items():
        print(f"{key}: {value:.4f}")
    if args.mlflow:
        log_to_mlflow(cfg, report)
    return 0 if report["retrieval/train_leakage"] == 0 else 1


def log_to_mlflow(cfg, report: dict[str, float]) -> None:
    import mlflow

    if mlflow.active_run() is not None:
        mlflow.log_metrics(report)
        return
    with start_run(cfg, run_name="retrieval-report", tags={"kind": "retrieval-report"}):
        mlflow.log_params({k: v for k, v in cfg.flat().items() if k.startswith("retrieval.")})
        mlflow.log_metrics(report)
