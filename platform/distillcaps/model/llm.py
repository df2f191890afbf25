"""The language model: where the base weights come from, loading them safely, and LoRA on top.

Both presets go through one loader: a registry entry (`LLMS`, in `llm_sources`) only says *where*
the base causal LM lives; `load_base_llm` loads it (checking every weight was in the checkpoint —
transformers 5 silently random-initialises missing keys), freezes it, and `build_llm` wraps it with
peft LoRA.

    tiny  -> a small Llama (`tiny_llama`) + word-level tokenizer pretrained on the training captions
             by `distillcaps.standins.ensure_standins(cfg)`, cached under cache_dir_for(cfg)/pretrained/.
    hf    -> cfg.model.llm.path: any HF causal LM (LLaMA-7B in the paper), local dir or HF cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from distillcaps.model.config import LLMConfig
from distillcaps.model.llm_sources import LLMS


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
# The tiny preset's Llama (pretrained by distillcaps.standins.tiny_llm)


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


def pad_right(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L) ids and bool mask for variable-length rows."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = True
    return ids, mask
