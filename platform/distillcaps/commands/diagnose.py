"""``distillcaps diagnose context [--config NAME] [CHECKPOINT] [--split val] --output diag.json``.

Scores the captions of a split with the LM alone (no audio) after own / retrieved / random / no
context and the induction probe (`distillcaps.model.context_diagnostic`), prints the table and
writes ``{"llm", "context_ce": {...}, "induction_ce", "num_captions", "top_k", "targets"}``.
Without CHECKPOINT it diagnoses the config's base LM; with one, that checkpoint's LM with its LoRA
weights. The stand-ins it reads (the tiny LLM, the tiny CLAP for the retrieved context) are built
first if they are not cached (`distillcaps.standins`). Exits 1 when a target is not met.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from distillcaps.config import load_config


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser("diagnose", help="diagnostics of a model's parts")
    kinds = parser.add_subparsers(dest="diagnostic", metavar="DIAGNOSTIC", required=True)
    context = kinds.add_parser(
        "context", help="does the LM read the captions in its prompt? (own / retrieved / random / none)"
    )
    context.add_argument("--split", default="val", help="train | val | eval, or a subset name (default val)")
    context.add_argument("--max-captions", type=int, default=500, help="captions scored per context")
    context.add_argument("--no-retrieval", action="store_true", help="skip the `retrieved` context")
    context.add_argument("--output", type=Path, default=None, help="write the JSON here")
    context.add_argument("--config", default="tiny", help="preset name (tiny, paper, ...) or YAML path")
    context.add_argument(
        "items", nargs="*", metavar="[CHECKPOINT] key.sub=value",
        help="a checkpoint folder (optional), then dotted config overrides",
    )  # fmt: skip
    context.set_defaults(func=diagnose_context_command)


def diagnose_context_command(args: argparse.Namespace) -> int:
    from distillcaps.model.context_diagnostic import diagnose_context  # lazy: torch

    paths = [item for item in args.items if "=" not in item]
    if len(paths) > 1:
        raise ValueError(f"one CHECKPOINT at most, got {paths}")
    args.checkpoint = Path(paths[0]) if paths else None
    args.overrides = [item for item in args.items if "=" in item]

    if args.checkpoint is not None:
        from distillcaps.model.distillcaps_model import DistillCapsModel  # lazy: torch, transformers
        from distillcaps.standins import ensure_checkpoint_standins  # lazy: trains with torch on a miss

        ensure_checkpoint_standins(args.checkpoint, args.overrides)
        model = DistillCapsModel.load_checkpoint(args.checkpoint, args.overrides)
        cfg, llm, tokens, name = model.cfg, model.llm, model.prompts.tokens, args.checkpoint.name
    else:
        from distillcaps.model.llm import load_base_llm  # lazy: transformers
        from distillcaps.model.llm_sources import LLMS  # lazy: reads audio files (soundfile)
        from distillcaps.model.prompts import PromptTokens  # lazy: torch
        from distillcaps.standins import ensure_standins  # lazy: trains with torch on a miss

        cfg = load_config(args.config, args.overrides)
        ensure_standins(cfg, names=["tiny-llm"] if args.no_retrieval else None)
        path = LLMS.get(cfg.model.llm.name)(cfg)
        base = load_base_llm(path, cfg.model.llm.dtype)
        cfg_name = args.config if len(Path(args.config).parts) == 1 else Path(args.config).stem
        where = Path(path).name if Path(path).is_dir() else path  # no local folders in shared results
        llm, tokens, name = base.model, PromptTokens(base.tokenizer, cfg.model.prompt), f"{cfg_name}: {where}"

    subset = split_subset(cfg, args.split)
    clips, retrieved = split_contexts(cfg, subset, with_retrieval=not args.no_retrieval)
    diagnosis = diagnose_context(
        llm, tokens, clips, retrieved, top_k=cfg.retrieval.top_k, max_captions=args.max_captions, name=name
    )
    print(diagnosis.table())
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(diagnosis.to_dict(), indent=1))
        print(f"written: {args.output}")
    return 1 if diagnosis.unmet() else 0


def split_subset(cfg, split: str) -> str:
    aliases = {"train": cfg.data.train_subset, "val": cfg.data.val_subset, "validation": cfg.data.val_subset,
               "eval": cfg.data.eval_subset, "test": cfg.data.eval_subset}  # fmt: skip
    return aliases.get(split, split)


def split_contexts(cfg, subset: str, with_retrieval: bool = True):
    """(captions per clip, retrieved captions per clip or None) of a subset, normalised."""
    from distillcaps.data import read_records, resolve_dataset_dir  # lazy: soundfile
    from distillcaps.data.usable import usable_records  # lazy: soundfile
    from distillcaps.model.tokenizer import normalize_caption  # lazy: tokenizers

    if not with_retrieval:  # captions only: the audio is never read, so it is not checked either
        records = read_records(resolve_dataset_dir(cfg), cfg.data.dataset_format, subset)
        return [[normalize_caption(c) for c in r.captions] for r in records], None
    records, _ = usable_records(cfg, subset)  # the clips the retrieval file holds
    clips = [[normalize_caption(c) for c in r.captions] for r in records]
    from distillcaps.retrieval import load_retrieved  # lazy: torch

    hits = load_retrieved(cfg, subset)
    return clips, [[h["caption"] for h in hits[r.fname]] for r in records]
