"""Next-token training of a causal LM on rows of token ids: the tiny LLM's pretraining steps.

losses = train_steps(model, batches, steps, lr, pad_id)          # batches: lists of id rows
losses = train_causal_lm(model, tokenizer, texts, steps, lr, batch_size, seed)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from distillcaps.model.llm import pad_right


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
