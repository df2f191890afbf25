"""``distillcaps evaluate CHECKPOINT [--dataset-dir DIR] [--dataset-format F] [--split S] [--rag]``.

The model is rebuilt from the checkpoint's config; --dataset-dir/--dataset-format and overrides
say what to caption. ``--output metrics.json``; predictions.csv is written beside it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from distillcaps.config import Config, from_dict, parse_override, set_dotted


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="caption every clip of a split with a checkpoint and score it (+ baselines)"
    )
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="a model checkpoint folder")
    parser.add_argument("--dataset-dir", default=None, help="data to caption (default: the checkpoint's)")
    parser.add_argument(
        "--dataset-format", default=None, help="a registered reader (clotho, audiocaps, jsonl)"
    )
    parser.add_argument("--split", default=None, help="subset to caption (default: data.eval_subset)")
    parser.add_argument("--rag", action="store_true", help="prompt with retrieved captions (teacher prompt)")
    parser.add_argument("--output", default="metrics.json", help="metrics JSON (predictions.csv beside it)")
    parser.add_argument("--run-id", default=None, help="also log into this MLflow run")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="dotted config overrides")
    parser.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from distillcaps.evaluation.evaluate import evaluate  # lazy: soundfile and the metrics stack
    from distillcaps.model.checkpoint import CONFIG_NAME  # lazy: torch

    checkpoint = Path(args.checkpoint)
    if not (checkpoint / CONFIG_NAME).is_file():
        raise FileNotFoundError(f"{checkpoint} is not a DistillCaps checkpoint: {CONFIG_NAME} is missing")
    overrides = list(args.overrides)
    if args.dataset_dir:
        overrides.append(f"data.dataset_dir={args.dataset_dir}")
    if args.dataset_format:
        overrides.append(f"data.dataset_format={args.dataset_format}")
    cfg = load_config_from_json(checkpoint / CONFIG_NAME, overrides)
    output = Path(args.output)
    result = evaluate(
        checkpoint,
        cfg,
        subset=args.split or cfg.data.eval_subset,
        rag=args.rag,
        output_dir=output.parent if str(output.parent) else Path("."),
        run_id=args.run_id,
    )
    written = output.parent / "metrics.json"
    if written.resolve() != output.resolve():
        output.write_text(written.read_text())
    print(json.dumps({"metrics": result.metrics, "unavailable": result.unavailable}, indent=1))
    for name, baseline in result.baselines.items():
        print(f"baseline {name}: " + ", ".join(f"{k} {v:.4f}" for k, v in baseline.metrics.items()))
    d = result.diversity
    collapsed = " (collapsed)" if d["collapsed"] else ""
    print(
        f"{d['distinct_captions']} distinct captions, the top one on {d['top_caption_share']:.0%}{collapsed}"
    )
    print(f"predictions: {result.predictions_csv}")
    print(f"metrics: {output}")
    return 0


def load_config_from_json(path: Path, overrides: list[str]):
    """The checkpoint's resolved config (JSON) plus dotted overrides, through the typed loader."""
    raw = json.loads(path.read_text())
    for item in overrides:
        set_dotted(raw, *parse_override(item))
    return from_dict(Config, raw)
