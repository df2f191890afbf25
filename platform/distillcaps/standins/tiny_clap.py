"""Train the tiny CLAP once on the training split and cache it: ``ensure_tiny_clap(cfg) -> Path``.

The folder and its key are `distillcaps.model.standin_folders` (`tiny_clap_key`): the key hashes the
training records (fnames, captions, each audio file's size and mtime) and every setting that changes
the weights, so new data or config trains a new CLAP, and an unchanged one is reused.
Audio is decoded once into memory; each epoch pairs every clip with one random caption.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from distillcaps.atomic_folder import build_folder, cache_lock
from distillcaps.data.paths import resolve_dataset_dir
from distillcaps.data.usable import check_records
from distillcaps.model.encoders.tiny import TinyAudioEncoder
from distillcaps.model.standin_folders import TINY_CLAP_MARKER, tiny_clap_folder_for, tiny_clap_records
from distillcaps.retrieval.audio import load_padded
from distillcaps.retrieval.clap.tiny_model import TinyClap
from distillcaps.retrieval.clap.vocab import WordVocab
from distillcaps.retrieval.config import TinyClapConfig
from distillcaps.torch_threads import build_threads

if TYPE_CHECKING:
    from distillcaps.config import Config

log = logging.getLogger(__name__)


def ensure_tiny_clap(cfg: Config) -> Path:
    """Directory of the tiny CLAP trained on cfg's training split (trains it on first use).

    Trained on the split's usable clips (``data.on_bad_audio``: a bad file stops it, or is skipped
    as by training); built under a lock into a temporary folder renamed into place when whole."""
    records = tiny_clap_records(cfg)
    target = tiny_clap_folder_for(cfg, records)

    def build(tmp: Path) -> None:
        kept, _ = check_records(records, cfg.data.on_bad_audio)
        if not kept:
            dataset_dir = resolve_dataset_dir(cfg)
            raise ValueError(f"{dataset_dir}: training subset {cfg.data.train_subset!r} has no usable clips")
        model, stats = train_tiny_clap(kept, cfg)
        model.save(tmp)
        (tmp / TINY_CLAP_MARKER).write_text(json.dumps(stats, indent=2))  # last: the folder is whole
        log.info("tiny-clap trained in %.1f s -> %s", stats["train_seconds"], target)

    with cache_lock(target):
        return build_folder(target, build, marker=TINY_CLAP_MARKER)


def build_tiny_clap(cfg: Config, vocab: WordVocab) -> TinyClap:
    """Audio tower sized by cfg.model.encoder: the captioning model loads it as its frozen encoder."""
    return TinyClap(TinyAudioEncoder.from_encoder_config(cfg.model.encoder), vocab, cfg.retrieval.tiny)


@torch.no_grad()
def precompute_log_mel(
    model: TinyClap, records: Sequence[Any], cfg: Config, chunk: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode every clip once and run the (fixed) log-mel front end once: epochs then skip both."""
    front_end = model.audio_encoder.front_end
    specs, frames = [], []
    for start in range(0, len(records), chunk):
        paths = [r.path for r in records[start : start + chunk]]
        waves, lengths = load_padded(paths, cfg.data.sample_rate, cfg.data.max_seconds)  # (b, S), (b,)
        specs.append(front_end(waves))
        frames.append(front_end.num_frames(lengths))
    width = max(s.shape[-1] for s in specs)
    specs = [torch.nn.functional.pad(s, (0, width - s.shape[-1]), value=float(s.min())) for s in specs]
    return torch.cat(specs), torch.cat(frames)


def train_tiny_clap(records: Sequence[Any], cfg: Config) -> tuple[TinyClap, dict[str, Any]]:
    """Contrastive training on (clip, random caption) pairs. -> (model in eval mode, stats).

    Runs on ``BUILD_THREADS`` torch threads wherever it is called: the weights (and so the frozen
    encoder of every captioner trained on them) must not depend on the calling process.
    """
    with build_threads():
        return contrastive_training(records, cfg)


def contrastive_training(records: Sequence[Any], cfg: Config) -> tuple[TinyClap, dict[str, Any]]:
    tcfg: TinyClapConfig = cfg.retrieval.tiny
    generator = torch.Generator().manual_seed(tcfg.seed)
    torch.manual_seed(tcfg.seed)
    t0 = time.perf_counter()
    captions = [list(r.captions) for r in records]
    vocab = WordVocab.build(c for caps in captions for c in caps)
    model = build_tiny_clap(cfg, vocab)
    log_mel, valid_frames = precompute_log_mel(model, records, cfg)  # (N, 1, F, frames), (N,)
    load_seconds = time.perf_counter() - t0
    optimizer = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    steps_per_epoch = max(1, (len(records) + tcfg.batch_size - 1) // tcfg.batch_size)
    total_steps = tcfg.epochs * steps_per_epoch
    # OneCycleLR divides by (pct_start * total_steps - 1): zero for a one-step warm-up (10 steps)
    pct_start = 0.1 if 0.1 * total_steps != 1 else 0.2
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=tcfg.lr, total_steps=total_steps, pct_start=pct_start
    )
    losses: list[float] = []
    t1, cpu1 = time.perf_counter(), time.process_time()
    model.train()
    for epoch in range(tcfg.epochs):
        order = torch.randperm(len(records), generator=generator)
        epoch_loss = 0.0
        for start in range(0, len(records), tcfg.batch_size):
            idx = order[start : start + tcfg.batch_size]
            if len(idx) < 2:  # a contrastive batch needs negatives
                continue
            picks = [
                captions[i][int(torch.randint(len(captions[i]), (1,), generator=generator))]
                for i in idx.tolist()
            ]
            same = torch.tensor([[a == b for b in picks] for a in picks])  # (B, B)
            audio = model.embed_log_mel(log_mel[idx], valid_frames[idx])
            text = model.embed_text(picks)
            loss = model.contrastive_loss(audio, text, same)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            epoch_loss += float(loss.detach()) * len(idx)
        losses.append(epoch_loss / len(records))
        log.info("tiny-clap epoch %d/%d loss %.4f", epoch + 1, tcfg.epochs, losses[-1])
    stats = {
        "clips": len(records),
        "epochs": tcfg.epochs,
        "load_seconds": round(load_seconds, 2),
        "train_seconds": round(time.perf_counter() - t1, 2),
        "train_cpu_seconds": round(time.process_time() - cpu1, 2),  # wall time varies with load
        "threads": torch.get_num_threads(),
        "epoch_losses": [round(v, 4) for v in losses],
        "temperature": round(float(1.0 / model.logit_scale.detach().exp()), 4),
        "vocab_size": len(vocab),
    }
    return model.eval(), stats
