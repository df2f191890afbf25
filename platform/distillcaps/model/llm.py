"""The language model: where the base weights come from, loading them safely, and LoRA on top.

Both presets go through one loader: a registry entry (`LLMS`) only says *where* the base causal
LM lives; `load_base_llm` loads it (checking every weight was in the checkpoint — transformers 5
silently random-initialises missing keys), freezes it, and `build_llm` wraps it with peft LoRA.

    tiny  -> ensure_tiny_llm(cfg): a small Llama + BPE tokenizer trained here on the training
             captions as a causal LM, once, cached under cache_dir_for(cfg)/pretrained/.
    hf    -> cfg.model.llm.path: any HF causal LM (LLaMA-7B in the paper), local dir or HF cache.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from distillcaps.model.config import LLMConfig, PromptConfig
from distillcaps.model.tokenizer import normalize_caption, train_caption_tokenizer
from distillcaps.registry import Registry

TINY_LLM_FORMAT = 1  # bump when the pretraining recipe changes, so old caches are not reused

# name -> resolve(cfg) -> path (local dir or HF cache id) of a save_pretrained causal LM + tokenizer
LLMS: Registry[Callable[[object], str]] = Registry("LLM")


@LLMS.register("tiny")
def _tiny_llm_path(cfg) -> str:
    return str(ensure_tiny_llm(cfg))


@LLMS.register("hf")
def _hf_llm_path(cfg) -> str:
    if not cfg.model.llm.path:
        raise ValueError("model.llm.path is empty: llm.name=hf needs a local path or HF cache id")
    return cfg.model.llm.path


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
    from distillcaps.data import cache_dir_for, read_records, resolve_dataset_dir

    records = read_records(resolve_dataset_dir(cfg), cfg.data.dataset_format, cfg.data.train_subset)
    captions = [normalize_caption(c) for r in records for c in r.captions]
    captions = [c for c in captions if c]
    if not captions:
        raise ValueError(f"no training captions in subset {cfg.data.train_subset!r} to pretrain the tiny LLM")
    key = tiny_llm_key(captions, cfg.model.llm, cfg.model.prompt, cfg.seed)
    out = Path(cache_dir_for(cfg)) / "pretrained" / f"tiny-llm-{key}"
    if (out / "config.json").is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tiny-llm-{key}-", dir=out.parent))
    try:
        pretrain_tiny_llm(captions, cfg.model.llm, cfg.model.prompt, cfg.seed, tmp)
        try:
            os.rename(tmp, out)  # atomic: a reader sees the whole directory or nothing
        except OSError:
            if not (out / "config.json").is_file():  # lost a race only if the winner finished
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def tiny_llm_key(captions: Sequence[str], llm_cfg: LLMConfig, prompt: PromptConfig, seed: int) -> str:
    """Hash of everything the pretrained tiny LLM depends on."""
    h = hashlib.sha256()
    settings = {k: v for k, v in asdict(llm_cfg).items() if not k.startswith("lora_") and k != "path"}
    h.update(json.dumps([TINY_LLM_FORMAT, settings, asdict(prompt), seed], sort_keys=True).encode())
    for c in captions:
        h.update(c.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def pretrain_tiny_llm(
    captions: Sequence[str], llm_cfg: LLMConfig, prompt: PromptConfig, seed: int, out_dir: Path
) -> dict:
    """Train tokenizer + Llama on `captions` (bos + caption + eos each) and save both to `out_dir`."""
    prompt_text = [prompt.student.replace("<audio>", " "), prompt.teacher_prefix.replace("{captions}", " ")]
    tokenizer = train_caption_tokenizer(list(captions) + prompt_text * 50, llm_cfg.vocab_size)
    model = tiny_llama(llm_cfg, tokenizer)
    started = time.perf_counter()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model.apply(model._init_weights)  # reproducible from the seed alone
        losses = train_causal_lm(model, tokenizer, captions, llm_cfg, seed)
    model.eval()
    model.save_pretrained(out_dir)  # before any LoRA wrapping, so the keys are the plain Llama's
    tokenizer.save_pretrained(out_dir)
    meta = {
        "num_captions": len(captions),
        "epochs": llm_cfg.pretrain_epochs,
        "first_epoch_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
        "seconds": round(time.perf_counter() - started, 1),
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


def train_causal_lm(
    model: nn.Module, tokenizer, texts: Sequence[str], llm_cfg: LLMConfig, seed: int
) -> list[float]:
    """Plain next-token training, one text per sequence; returns the mean loss per epoch."""
    rows = [
        [tokenizer.bos_token_id] + tokenizer(t, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
        for t in texts
    ]
    batch_size = llm_cfg.pretrain_batch_size
    steps = llm_cfg.pretrain_epochs * math.ceil(len(rows) / batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=llm_cfg.pretrain_lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=llm_cfg.pretrain_lr, total_steps=max(steps, 1), pct_start=0.05
    )
    order = random.Random(seed)
    model.train()
    epoch_losses = []
    for _ in range(llm_cfg.pretrain_epochs):
        order.shuffle(rows)
        total, count = 0.0, 0
        for start in range(0, len(rows), batch_size):
            ids, mask = pad_right(rows[start : start + batch_size], tokenizer.pad_token_id)
            labels = ids.masked_fill(~mask, -100)
            loss = model(input_ids=ids, attention_mask=mask.long(), labels=labels).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            total, count = total + loss.item(), count + 1
        epoch_losses.append(total / max(count, 1))
    return epoch_losses


def pad_right(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L) ids and bool mask for variable-length rows."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = True
    return ids, mask
