"""The language model: where the base weights come from, loading them safely, and LoRA on top.

Both presets go through one loader: a registry entry (`LLMS`, in `llm_sources`) only says *where*
the base causal LM lives; `load_base_llm` loads it (checking every weight was in the checkpoint —
transformers 5 silently random-initialises missing keys), freezes it, and `build_llm` wraps it with
peft LoRA.

    tiny  -> ensure_tiny_llm(cfg): a small Llama + BPE tokenizer trained here on the training
             captions as a causal LM, once, cached under cache_dir_for(cfg)/pretrained/.
    hf    -> cfg.model.llm.path: any HF causal LM (LLaMA-7B in the paper), local dir or HF cache.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from distillcaps.model.config import LLMConfig, PromptConfig
from distillcaps.model.llm_sources import LLMS, tiny_llm_source
from distillcaps.model.tokenizer import train_caption_tokenizer
from distillcaps.torch_threads import build_threads


@dataclass
class BaseLLM:
    """A frozen base causal LM with its tokenizer and where it came from."""

    model: nn.Module  # transformers causal LM (before LoRA)
    tokenizer: object  # PreTrainedTokenizerFast with pad/eos (bos may be None for some models)
    path: str


# ---------------------------------------------------------------------------------------------
# Loading + LoRA


def build_llm(cfg) -> tuple[nn.Module, object, str]:
    """The LoRA-wrapped LLM for `cfg`: (peft model, tokenizer, base path). Only LoRA trains."""
    llm_cfg: LLMConfig = cfg.model.llm
    base = load_base_llm(LLMS.get(llm_cfg.name)(cfg), llm_cfg.dtype)
    if cfg.train.gradient_checkpointing:
        base.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return apply_lora(base.model, llm_cfg), base.tokenizer, base.path


def load_base_llm(path: str | Path, dtype: str = "float32") -> BaseLLM:
    """Load a save_pretrained causal LM + tokenizer, frozen, refusing checkpoints with missing weights."""
    model, info = AutoModelForCausalLM.from_pretrained(
        str(path), dtype=getattr(torch, dtype), output_loading_info=True
    )
    tied = set(getattr(model, "_tied_weights_keys", None) or {})
    missing = [k for k in info.get("missing_keys", []) if k not in tied]
    mismatched = info.get("mismatched_keys", [])
    if missing or mismatched:
        raise ValueError(
            f"LLM checkpoint {path} does not match its config: "
            f"missing weights {sorted(missing)[:5]}, shape mismatches {list(mismatched)[:5]} "
            "(transformers would have initialised them randomly)"
        )
    model.requires_grad_(False)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if tokenizer.pad_token is None:  # LLaMA ships none; pad positions are always masked out
        tokenizer.pad_token = tokenizer.eos_token
    return BaseLLM(model=model, tokenizer=tokenizer, path=str(path))


def apply_lora(model: nn.Module, llm_cfg: LLMConfig) -> nn.Module:
    """peft LoRA on the configured modules; the base weights stay frozen."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=llm_cfg.lora_r,
        lora_alpha=llm_cfg.lora_alpha,
        lora_dropout=llm_cfg.lora_dropout,
        target_modules=list(llm_cfg.lora_target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


# ---------------------------------------------------------------------------------------------
# The tiny preset's pretrained Llama


def ensure_tiny_llm(cfg) -> Path:
    """Path of the tiny Llama + tokenizer pretrained on the training captions (trained once, cached)."""
    source = tiny_llm_source(cfg)
    out = source.folder
    if source.cached:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        clips = len(source.train_clips)
        print(f"pretraining the tiny LLM on {clips} clips' captions (cached in {out})", flush=True)
        progress = partial(print, flush=True)
        meta = pretrain_tiny_llm(
            source.train_clips,
            cfg.model.llm,
            cfg.model.prompt,
            cfg.model.llm.pretrain_seed,
            tmp,
            val_clips=source.val_clips,
            progress=progress,
        )
        print(f"  kept epoch {meta['best_epoch']} of {meta['epochs_run']} ({meta['seconds']} s)", flush=True)
        try:
            os.rename(tmp, out)  # atomic: a reader sees the whole directory or nothing
        except OSError:
            if not (out / "config.json").is_file():  # lost a race only if the winner finished
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def pretrain_tiny_llm(
    train_clips: Sequence[Sequence[str]],
    llm_cfg: LLMConfig,
    prompt: PromptConfig,
    seed: int,
    out_dir: Path,
    val_clips: Sequence[Sequence[str]] = (),
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Train tokenizer + Llama on the clips' captions and save both to `out_dir`.

    `train_clips` / `val_clips`: the captions of each clip (a list per clip). The corpus is every
    caption alone plus, with `pretrain_documents`, one caption document per clip (see
    `caption_documents`). With `val_clips`, training stops once their loss has not improved for
    `pretrain_patience` epochs and the best epoch's weights are kept.
    """
    if train_clips and isinstance(train_clips[0], str):
        raise TypeError("pretrain_tiny_llm takes a list of caption lists (one per clip), not a flat list")
    rng = random.Random(seed)
    captions = [c for clip in train_clips for c in clip]
    train_texts = captions + (
        caption_documents(train_clips, prompt, rng) if llm_cfg.pretrain_documents else []
    )
    val_texts = [c for clip in val_clips for c in clip]
    if llm_cfg.pretrain_documents:
        val_texts += caption_documents(val_clips, prompt, rng)
    prompt_text = [
        prompt.student.replace(prompt.audio_placeholder, " "),
        prompt.teacher_prefix.replace("{captions}", " "),
    ]
    tokenizer = train_caption_tokenizer(captions + prompt_text * 50, llm_cfg.vocab_size)
    model = tiny_llama(llm_cfg, tokenizer)
    started = time.perf_counter()
    # a fixed thread count, like every cached build (measured: the same weights on 1 and 2 threads
    # at the tiny preset, where the tiny CLAP's differed; see distillcaps.torch_threads)
    with torch.random.fork_rng(), build_threads() as threads:
        torch.manual_seed(seed)
        model.apply(model._init_weights)  # reproducible from the seed alone
        history = train_causal_lm(
            model, tokenizer, train_texts, llm_cfg, seed, val_texts=val_texts, progress=progress
        )
    model.eval()
    model.save_pretrained(out_dir)  # before any LoRA wrapping, so the keys are the plain Llama's
    tokenizer.save_pretrained(out_dir)
    meta = {
        "num_captions": len(captions),
        "num_documents": len(train_texts) - len(captions),
        "num_val_texts": len(val_texts),
        "max_epochs": llm_cfg.pretrain_epochs,
        "epochs_run": len(history.train),
        "best_epoch": history.best_epoch,
        "train_loss": history.train,
        "val_loss": history.val,
        "seconds": round(time.perf_counter() - started, 1),
        "torch_threads": threads,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    (out_dir / "pretraining.json").write_text(json.dumps(meta, indent=2))
    return meta


def caption_documents(clips: Sequence[Sequence[str]], prompt: PromptConfig, rng: random.Random) -> list[str]:
    """One text per clip with two or more captions, laid out as the teacher prompt without audio:
    up to three of its captions as the "similar audios" context, then the student prompt and another
    of its captions. LLaMA brings the skill of using captions placed in its prompt from generic
    pretraining; a LM pretrained on isolated captions has never seen text in its context inform what
    follows, and its teacher branch was worse than the audio-only student (docs/model.md)."""
    documents = []
    for clip in clips:
        if len(clip) < 2:
            continue
        shuffled = list(clip)
        rng.shuffle(shuffled)
        target, context = shuffled[0], shuffled[1:4]
        prefix = prompt.teacher_prefix.format(captions=prompt.caption_separator.join(context))
        documents.append(prefix + prompt.student.replace(prompt.audio_placeholder, " ") + target)
    return documents


def tiny_llama(llm_cfg: LLMConfig, tokenizer) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=llm_cfg.hidden_size,
        intermediate_size=llm_cfg.intermediate_size,
        num_hidden_layers=llm_cfg.num_layers,
        num_attention_heads=llm_cfg.num_heads,
        num_key_value_heads=llm_cfg.num_heads,
        max_position_embeddings=llm_cfg.max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config)


@dataclass
class PretrainHistory:
    train: list[float]  # mean training loss per epoch
    val: list[float]  # mean validation loss per epoch (empty without validation texts)
    best_epoch: int  # 1-based epoch whose weights were kept


def train_causal_lm(
    model: nn.Module,
    tokenizer,
    texts: Sequence[str],
    llm_cfg: LLMConfig,
    seed: int,
    val_texts: Sequence[str] = (),
    progress: Callable[[str], None] | None = None,
) -> PretrainHistory:
    """Next-token training, one text per sequence, for up to `pretrain_epochs`; with `val_texts`,
    early stopping on their loss (patience `pretrain_patience`) and the best epoch's weights kept."""
    rows = encode_texts(tokenizer, texts)
    val_rows = encode_texts(tokenizer, val_texts)
    batch_size = llm_cfg.pretrain_batch_size
    steps = llm_cfg.pretrain_epochs * math.ceil(len(rows) / batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=llm_cfg.pretrain_lr, weight_decay=0.01)
    if steps >= 4:  # warm up over 5% of the steps, at least 2 (OneCycleLR divides by zero with fewer)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=llm_cfg.pretrain_lr, total_steps=steps, pct_start=max(0.05, 2 / steps)
        )
    else:  # a handful of steps: no schedule to speak of
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    order = random.Random(seed)
    history = PretrainHistory(train=[], val=[], best_epoch=0)
    best_state = None
    for epoch in range(llm_cfg.pretrain_epochs):
        model.train()
        total, count = 0.0, 0
        for batch in length_grouped_batches(rows, batch_size, order):
            loss = causal_lm_loss(model, batch, tokenizer.pad_token_id)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            total, count = total + loss.item(), count + 1
        history.train.append(total / max(count, 1))
        if not val_rows:
            history.best_epoch = epoch + 1
            continue
        history.val.append(mean_loss(model, val_rows, tokenizer.pad_token_id, batch_size))
        if progress is not None:
            progress(
                f"  epoch {epoch + 1}/{llm_cfg.pretrain_epochs}: "
                f"train loss {history.train[-1]:.3f}, val loss {history.val[-1]:.3f}"
            )
        if history.val[-1] <= min(history.val):
            history.best_epoch, best_state = epoch + 1, {k: v.clone() for k, v in model.state_dict().items()}
        elif epoch + 1 - history.best_epoch >= llm_cfg.pretrain_patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return history


def length_grouped_batches(
    rows: list[list[int]], batch_size: int, rng: random.Random, group: int = 16
) -> list[list[list[int]]]:
    """Shuffled batches of similar-length rows: captions (~15 tokens) and caption documents (~70)
    padded together would make almost every batch document-wide (5x the work)."""
    order = list(rows)
    rng.shuffle(order)
    batches = []
    for start in range(0, len(order), batch_size * group):
        chunk = sorted(order[start : start + batch_size * group], key=len)
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def encode_texts(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    return [
        [tokenizer.bos_token_id] + tokenizer(t, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
        for t in texts
    ]


def causal_lm_loss(model: nn.Module, rows: Sequence[Sequence[int]], pad_id: int) -> torch.Tensor:
    ids, mask = pad_right(rows, pad_id)
    return model(input_ids=ids, attention_mask=mask.long(), labels=ids.masked_fill(~mask, -100)).loss


@torch.no_grad()
def mean_loss(model: nn.Module, rows: Sequence[Sequence[int]], pad_id: int, batch_size: int) -> float:
    """Mean next-token loss per token over `rows`."""
    model.eval()
    total, tokens = 0.0, 0
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        predicted = sum(len(r) - 1 for r in chunk)
        total += causal_lm_loss(model, chunk, pad_id).item() * predicted
        tokens += predicted
    return total / max(tokens, 1)


def pad_right(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L) ids and bool mask for variable-length rows."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = True
    return ids, mask
