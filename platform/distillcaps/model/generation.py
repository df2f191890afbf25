"""Decoding captions from prompt embeddings: greedy or beam search, batched, with the KV cache.

The prompt batch is left-padded (`PromptBuilder.build(..., padding_side="left")`), so every row
continues from its last position; HF `generate` with `inputs_embeds` returns only the new tokens.
Decoded text goes through `normalize_caption`, the same rule the training targets went through.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import GenerationConfig as HFGenerationConfig

from distillcaps.model.config import GenerationConfig
from distillcaps.model.prompts import PromptBatch
from distillcaps.model.tokenizer import normalize_caption


@torch.no_grad()
def generate_captions(
    llm: nn.Module, tokenizer, prompts: PromptBatch, generation: GenerationConfig
) -> list[str]:
    """One caption per prompt row; greedy when num_beams == 1, else beam search."""
    settings = HFGenerationConfig(
        max_new_tokens=generation.max_new_tokens,
        min_new_tokens=generation.min_new_tokens,
        num_beams=generation.num_beams,
        do_sample=False,
        early_stopping=generation.num_beams > 1,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        use_cache=True,
    )
    new_tokens = llm.generate(
        inputs_embeds=prompts.inputs_embeds,
        attention_mask=prompts.attention_mask,
        generation_config=settings,
    )  # (B, <= max_new_tokens): only the continuation when generating from embeddings
    texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    return [normalize_caption(t) for t in texts]
