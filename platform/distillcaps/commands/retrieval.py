"""``distillcaps index {train-clap,build,retrieve,report}``: the retrieval room's commands."""

from __future__ import annotations

import argparse
import json


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    from distillcaps.cli import add_config_arguments

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
    from distillcaps.config import load_config

    return load_config(args.config, args.overrides)


def train_clap(args: argparse.Namespace) -> int:
    from distillcaps.retrieval.clap import ensure_tiny_clap

    path = ensure_tiny_clap(config_of(args))
    stats = json.loads((path / "train_stats.json").read_text())
    print(f"tiny-clap: {path}")
    print(
        f"  {stats['clips']} clips, {stats['epochs']} epochs, audio+log-mel {stats['load_seconds']} s, "
        f"training {stats['train_seconds']} s, final loss {stats['epoch_losses'][-1]}"
    )
    return 0


def build_datastore(args: argparse.Namespace) -> int:
    from distillcaps.retrieval.clap import build_clap
    from distillcaps.retrieval.precompute import ensure_datastore, ensure_index

    cfg = config_of(args)
    clap = build_clap(cfg)
    store, directory = ensure_datastore(cfg, clap)
    index = ensure_index(cfg, store, directory)
    print(f"datastore: {directory} ({len(store)} distinct captions, dim {store.dim}, {clap.identity})")
    print(f"index: {index.kind} (retrieval.index={cfg.retrieval.index}, {index.size} vectors)")
    return 0


def retrieve_all(args: argparse.Namespace) -> int:
    from distillcaps.data.usable import SkippedFile, print_skipped
    from distillcaps.retrieval.precompute import MANIFEST, ensure_retrieval, subsets_of

    cfg = config_of(args)
    out = ensure_retrieval(cfg)
    skipped = json.loads((out / MANIFEST).read_text()).get("skipped", {})
    for subset in subsets_of(cfg):
        lines = sum(1 for _ in open(out / f"{subset}.jsonl"))
        print(f"{subset}: {out / f'{subset}.jsonl'} ({lines} clips, {cfg.retrieval.store_k} captions each)")
        print_skipped([SkippedFile(**s) for s in skipped.get(subset, [])], f"subset {subset!r}")
    return 0


def report_quality(args: argparse.Namespace) -> int:
    from distillcaps.retrieval.report import retrieval_report

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
    from distillcaps.tracking import start_run

    with start_run(cfg, run_name="retrieval-report", tags={"kind": "retrieval-report"}):
        mlflow.log_params({k: v for k, v in cfg.flat().items() if k.startswith("retrieval.")})
        mlflow.log_metrics(report)
