"""`distillcaps caption CHECKPOINT FILE... [--rag]`: print one caption per audio file.

Output: one line per file, `<file>\\t<caption>`, in the order given. With `--rag` the captions of
the most similar training clips (the configured CLAP + datastore) go into the teacher prompt;
without it the student captions from audio alone. Trailing `key.sub=value` overrides change the
checkpoint's config (e.g. `model.generation.num_beams=4`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser("caption", help="caption audio files with a trained checkpoint")
    parser.add_argument("checkpoint", type=Path, help="directory written by save_checkpoint")
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="audio files")
    parser.add_argument("--rag", action="store_true", help="add retrieved captions to the prompt")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="key.sub=value")
    parser.set_defaults(func=caption_command)


def caption_command(args: argparse.Namespace) -> int:
    from distillcaps.model.distillcaps_model import DistillCapsModel

    model = DistillCapsModel.load_checkpoint(args.checkpoint, args.overrides)
    for path, caption in zip(args.files, caption_files(model, args.files, args.rag, args.batch_size)):
        print(f"{path}\t{caption}", flush=True)
    return 0


def caption_files(model, files: list[Path], rag: bool, batch_size: int = 8) -> list[str]:
    """Captions for audio files: deterministic crop to data.max_seconds, batched generation."""
    from distillcaps.data import crop_or_pad, load_audio

    cfg = model.cfg
    retriever = None
    if rag:
        from distillcaps.retrieval import Retriever  # lazy: retrieval brings CLAP and an index

        retriever = Retriever.from_config(cfg)
    num_samples = int(cfg.data.max_seconds * cfg.data.sample_rate)
    captions: list[str] = []
    for start in range(0, len(files), max(1, batch_size)):
        waves, lengths = [], []
        for path in files[start : start + batch_size]:
            wave, length = crop_or_pad(load_audio(path, cfg.data.sample_rate), num_samples, random_crop=False)
            waves.append(wave)
            lengths.append(length)
        # pad only to the longest clip of this batch
        width = max(lengths)
        audio = torch.stack([w[:width] for w in waves])
        audio_lengths = torch.tensor(lengths)
        batch = {"audio": audio, "audio_lengths": audio_lengths}
        if retriever is not None:
            batch["retrieved"] = retriever.retrieve(audio, audio_lengths, cfg.retrieval.top_k)
        captions.extend(model.generate(batch, rag=rag))
    return captions
