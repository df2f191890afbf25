"""Pretrain the tiny Llama once on the training captions and cache it: ``ensure_tiny_llm(cfg) -> Path``.

A word-level tokenizer and a small Llama trained here as a causal LM on `PretrainCorpus` rows (caption
documents in the training prompt layout, and repeated random-word sequences), saved with
`save_pretrained` into `<cache root>/pretrained/tiny-llm-<key>/` (the folder and key are
`distillcaps.model.standin_folders`), where `LLMS["tiny"]` finds it.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import torch

from distillcaps.atomic_folder import build_folder
from distillcaps.model.config import LLMConfig, PromptConfig
from distillcaps.model.context_diagnostic import ContextDiagnosis, diagnose_context
from distillcaps.model.llm import tiny_llama
from distillcaps.model.prompts import PromptTokens
from distillcaps.model.standin_folders import TINY_LLM_MARKER, tiny_llm_source
from distillcaps.model.tokenizer import train_caption_tokenizer
from distillcaps.standins.causal_lm import train_steps
from distillcaps.standins.pretrain_corpus import CorpusMix, PretrainCorpus
from distillcaps.torch_threads import build_threads

say = partial(print, flush=True)  # pretraining takes minutes: its progress goes to the console


def ensure_tiny_llm(cfg) -> Path:
    """Path of the tiny Llama + tokenizer pretrained on the training captions (trained once, cached)."""
    source = tiny_llm_source(cfg)
    out = source.folder
    if source.cached:
        return out

    def pretrain(tmp: Path) -> None:
        say(f"pretraining the tiny LLM on {len(source.train_clips)} clips' captions (cached in {out})")
        meta = pretrain_tiny_llm(
            source.train_clips,
            cfg.model.llm,
            cfg.model.prompt,
            cfg.model.llm.pretrain_seed,
            tmp,
            val_clips=source.val_clips,
            top_k=cfg.retrieval.top_k,
            progress=say,
        )
        say(f"  {meta['steps']} steps in {meta['seconds']} s")
        if meta["diagnosis"] is not None:
            ce, induction = meta["diagnosis"]["context_ce"], meta["diagnosis"]["induction_ce"]
            say(
                f"  validation caption CE own {ce['own']:.3f}, random {ce['random']:.3f}, "
                f"none {ce['none']:.3f}; induction {induction:.3f}"
            )

    return build_folder(out, pretrain, marker=TINY_LLM_MARKER)


def pretrain_tiny_llm(
    train_clips: Sequence[Sequence[str]],
    llm_cfg: LLMConfig,
    prompt: PromptConfig,
    seed: int,
    out_dir: Path,
    val_clips: Sequence[Sequence[str]] = (),
    top_k: int = 3,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Train tokenizer + Llama on the clips' captions and save both to `out_dir`.

    `train_clips` / `val_clips`: the captions of each clip (a list per clip). The rows are drawn by
    `PretrainCorpus` (caption documents with own / neighbour / random / no context, and repeated
    random-word sequences) for `pretrain_steps` steps under one warm-up + cosine schedule that ends
    at the last step, whose weights are kept. The context diagnostic of the validation clips (the
    training clips without them) is recorded in pretraining.json.
    """
    if train_clips and isinstance(train_clips[0], str):
        raise TypeError("pretrain_tiny_llm takes a list of caption lists (one per clip), not a flat list")
    captions = [c for clip in train_clips for c in clip]
    prompt_text = [prompt.student.replace(prompt.audio_placeholder, " "), prompt.teacher_prefix]
    tokenizer = train_caption_tokenizer(captions + prompt_text, llm_cfg.vocab_size)
    tokens = PromptTokens(tokenizer, prompt)
    mix = CorpusMix(
        max_context=llm_cfg.pretrain_max_context, induction_share=llm_cfg.pretrain_induction_share
    )
    corpus = PretrainCorpus(train_clips, tokens, mix)
    model = tiny_llama(llm_cfg, tokenizer)
    started = time.perf_counter()
    # a fixed thread count, like every cached build (see distillcaps.torch_threads)
    with torch.random.fork_rng(), build_threads() as threads:
        torch.manual_seed(seed)
        model.apply(model._init_weights)  # reproducible from the seed alone
        losses = train_steps(
            model,
            corpus.batches(llm_cfg.pretrain_batch_size, random.Random(seed)),
            llm_cfg.pretrain_steps,
            llm_cfg.pretrain_lr,
            tokenizer.pad_token_id,
            progress=progress,
        )
        diagnosed = [c for c in (val_clips or train_clips) if len(c) >= 2]  # `own` needs two captions
        diagnosis = (
            diagnose_context(model, tokens, diagnosed, None, top_k=top_k, seed=seed, name="tiny")
            if len(diagnosed) >= 2
            else None
        )
    model.eval()
    model.save_pretrained(out_dir)  # before any LoRA wrapping, so the keys are the plain Llama's
    tokenizer.save_pretrained(out_dir)
    meta = {
        "num_clips": len(corpus.clips),
        "num_captions": len(captions),
        "vocabulary": len(tokenizer),
        **pretraining_record(llm_cfg, losses, diagnosis),
        "seconds": round(time.perf_counter() - started, 1),
        "torch_threads": threads,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    (out_dir / "pretraining.json").write_text(json.dumps(meta, indent=2))
    return meta


def pretraining_record(llm_cfg: LLMConfig, losses: list[float], diagnosis: ContextDiagnosis | None) -> dict:
    """pretraining.json's steps, batch size, mean loss of every 100 steps and context diagnostic."""
    return {
        "steps": llm_cfg.pretrain_steps,
        "batch_size": llm_cfg.pretrain_batch_size,
        "loss_every_100_steps": [
            round(sum(losses[i : i + 100]) / len(losses[i : i + 100]), 4) for i in range(0, len(losses), 100)
        ],
        "diagnosis": diagnosis.to_dict() if diagnosis is not None else None,
    }
