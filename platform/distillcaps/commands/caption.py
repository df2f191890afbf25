"""`distillcaps caption CHECKPOINT FILE... [--rag]`: print one caption per audio file.

Output: one line per file, `<file>\\t<caption>`, in the order given. With `--rag` the captions of
the most similar training clips (the configured CLAP + datastore) go into the teacher prompt;
without it the student captions from audio alone. Trailing `key.sub=value` overrides change the
checkpoint's config (e.g. `model.generation.num_beams=4`).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

from distillcaps.config import Config
from distillcaps.data.batches import ModelBatch, num_samples
from distillcaps.evaluation.captioning import caption_clips


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser("caption", help="caption audio files with a trained checkpoint")
    parser.add_argument("checkpoint", type=Path, help="directory written by save_checkpoint")
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="audio files")
    parser.add_argument("--rag", action="store_true", help="add retrieved captions to the prompt")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="key.sub=value")
    parser.set_defaults(func=caption_command)


def caption_command(args: argparse.Namespace) -> int:
    from distillcaps.standins import load_trained_model  # lazy: torch and transformers

    model = load_trained_model(args.checkpoint, args.overrides)
    for path, caption in zip(args.files, caption_files(model, args.files, args.rag, args.batch_size)):
        print(f"{path}\t{caption}", flush=True)
    return 0


def caption_files(model, files: list[Path], rag: bool, batch_size: int = 8) -> list[str]:
    """Captions for audio files (`caption_clips`); with ``rag``, retrieved online by the
    checkpoint's config's retriever."""
    cfg = model.cfg
    retriever = None
    if rag:
        from distillcaps.standins import build_retriever  # lazy: retrieval brings CLAP and an index

        retriever = build_retriever(cfg)
    batches = file_batches(files, cfg, batch_size)
    return caption_clips(model, batches, rag=rag, retriever=retriever, top_k=cfg.retrieval.top_k)


def file_batches(files: list[Path], cfg: Config, batch_size: int) -> Iterator[ModelBatch]:
    """``batch_size`` files at a time, cropped at 0 to data.max_seconds and padded only to the
    longest clip of their batch."""
    from distillcaps.data.audio import load_waveforms  # lazy: torch, not needed to parse arguments

    for start in range(0, len(files), max(1, batch_size)):
        chunk = files[start : start + batch_size]
        audio, lengths = load_waveforms(chunk, cfg.data.sample_rate, max_samples=num_samples(cfg))
        yield ModelBatch.from_waveforms(audio, lengths)
