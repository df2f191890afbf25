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
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from distillcaps.atomic_folder import build_folder
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

    def pretrain(tmp: Path) -> None:
        clips = len(source.train_clips)
        print(f"pretraining the tiny LLM on {clips} clips' captions (cached in {out})", flush=True)
        meta = pretrain_tiny_llm(
            source.train_clips,
            cfg.model.llm,
            cfg.model.prompt,
            cfg.model.llm.pretrain_seed,
            tmp,
            val_clips=source.val_clips,
            top_k=cfg.retrieval.top_k,
            progress=partial(print, flush=True),
        )
        print(f"  {meta['steps']} steps in {meta['seconds']} s", flush=True)
        if meta["diagnosis"] is not None:
            ce, induction = meta["diagnosis"]["context_ce"], meta["diagnosis"]["induction_ce"]
            print(
                f"  validation caption CE own {ce['own']:.3f}, random {ce['random']:.3f}, "
                f"none {ce['none']:.3f}; induction {induction:.3f}",
                flush=True,
            )

    return build_folder(out, pretrain, marker="config.json")


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
    from distillcaps.model.context_diagnostic import diagnose_context
    from distillcaps.model.pretrain_corpus import CorpusMix, PretrainCorpus
    from distillcaps.model.prompts import PromptTokens

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
        "steps": llm_cfg.pretrain_steps,
        "batch_size": llm_cfg.pretrain_batch_size,
        "loss_every_100_steps": [
            round(sum(losses[i : i + 100]) / len(losses[i : i + 100]), 4) for i in range(0, len(losses), 100)
        ],
        "diagnosis": diagnosis.to_dict() if diagnosis is not None else None,
        "seconds": round(time.perf_counter() - started, 1),
        "torch_threads": threads,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    (out_dir / "pretraining.json").write_text(json.dumps(meta, indent=2))
    return meta


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


def train_steps(
    model: nn.Module,
    batches: Iterator[list[list[int]]],
    steps: int,
    lr: float,
    pad_id: int,
    progress: Callable[[str], None] | None = None,
) -> list[float]:
    """`steps` AdamW steps of next-token loss on rows of token ids; warm-up over 5% of the steps
    (at least 2), then cosine to zero at the last step. Returns the loss of every step."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    if steps >= 4:  # OneCycleLR divides by zero with fewer than 2 warm-up steps
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=lr, total_steps=steps, pct_start=max(0.05, 2 / steps), anneal_strategy="cos"
        )
    else:  # a handful of steps: no schedule to speak of
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    model.train()
    losses = []
    for step in range(steps):
        loss = causal_lm_loss(model, next(batches), pad_id)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if progress is not None and ((step + 1) % 500 == 0 or step + 1 == steps):
            recent = losses[-100:]
            progress(f"  step {step + 1}/{steps}: loss {sum(recent) / len(recent):.3f}")
    model.eval()
    return losses


def train_causal_lm(
    model: nn.Module, tokenizer, texts: Sequence[str], steps: int, lr: float, batch_size: int, seed: int
) -> list[float]:
    """`train_steps` on plain texts ([<bos>] text <eos>), cycling through them in shuffled order."""
    rows = encode_texts(tokenizer, texts)
    rng = random.Random(seed)

    def batches() -> Iterator[list[list[int]]]:
        while True:
            order = list(rows)
            rng.shuffle(order)
            for start in range(0, len(order), batch_size):
                yield order[start : start + batch_size]

    return train_steps(model, batches(), steps, lr, tokenizer.pad_token_id)


def encode_texts(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Each text with the tokenizer's own specials (<bos> where it adds one), then <eos>."""
    return [tokenizer(t).input_ids + [tokenizer.eos_token_id] for t in texts]


def causal_lm_loss(model: nn.Module, rows: Sequence[Sequence[int]], pad_id: int) -> torch.Tensor:
    ids, mask = pad_right(rows, pad_id)
    return model(input_ids=ids, attention_mask=mask.long(), labels=ids.masked_fill(~mask, -100)).loss


def pad_right(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L) ids and bool mask for variable-length rows."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = True
    return ids, mask
