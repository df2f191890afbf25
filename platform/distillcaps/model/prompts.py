"""Student and teacher prompts, assembled as LLM input embeddings with the audio tokens spliced in.

    student:  <bos> "Describe the detail of this audio:" [audio tokens] "\\n---\\nDetailed: " caption <eos>
    teacher:  <bos> "Similar audios sound like:\\n\\n{c1}\\n\\n{c2}\\n\\n{c3}\\n\\n" + the student prompt

Each clip brings its own number of audio tokens (a valid-token mask); only the valid ones are
placed, so padding never reaches attention or the loss. Training batches are padded on the right;
generation batches on the LEFT so every row's next token comes from the last position.

For the loss the builder also returns, per caption token, the position whose logits predict it
(the first caption token is predicted by the last prompt position). Gathering logits there aligns
the student and teacher branches by caption-token index although their prompts differ in length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from distillcaps.model.config import PromptConfig
from distillcaps.model.tokenizer import normalize_caption


@dataclass
class PromptBatch:
    inputs_embeds: torch.Tensor  # (B, L, H)
    attention_mask: torch.Tensor  # (B, L) long, 1 = real token
    caption_targets: torch.Tensor | None = None  # (B, C) long: caption ids + eos (training only)
    caption_mask: torch.Tensor | None = None  # (B, C) bool
    caption_positions: torch.Tensor | None = None  # (B, C) long: position whose logits predict token c


class PromptBuilder:
    """Tokenises prompts and captions and splices audio embeddings in at the placeholder."""

    def __init__(self, tokenizer, prompt: PromptConfig, embed_tokens: nn.Module) -> None:
        if prompt.student.count(prompt.audio_placeholder) != 1:
            raise ValueError(
                f"model.prompt.student must contain {prompt.audio_placeholder!r} exactly once: "
                f"{prompt.student!r}"
            )
        if "{captions}" not in prompt.teacher_prefix:
            raise ValueError(
                f"model.prompt.teacher_prefix needs a {{captions}} slot: {prompt.teacher_prefix!r}"
            )
        self.tokenizer = tokenizer
        self.prompt = prompt
        self.embed_tokens = embed_tokens
        self.before_audio, self.after_audio = prompt.student.split(prompt.audio_placeholder)
        self.bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        self.after_ids = self.encode(self.after_audio)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids if text else []

    def teacher_text(self, retrieved: Sequence[str]) -> str:
        captions = self.prompt.caption_separator.join(normalize_caption(c) for c in retrieved)
        return self.prompt.teacher_prefix.replace("{captions}", captions)

    def caption_ids(self, caption: str) -> list[int]:
        ids = self.encode(normalize_caption(caption))[: self.prompt.max_caption_tokens]
        return ids + [self.tokenizer.eos_token_id]

    def build(
        self,
        audio_embeds: torch.Tensor,  # (B, W, H) projected audio tokens
        audio_mask: torch.Tensor,  # (B, W) bool, valid audio tokens
        captions: Sequence[str] | None = None,  # targets (training); None for generation
        retrieved: Sequence[Sequence[str]] | None = None,  # teacher prompt when given
        padding_side: Literal["right", "left"] = "right",
    ) -> PromptBatch:
        batch = audio_embeds.shape[0]
        texts_before = [
            (self.teacher_text(retrieved[i]) if retrieved is not None else "") + self.before_audio
            for i in range(batch)
        ]
        before = [self.bos + ids for ids in self._encode_many(texts_before)]
        targets = [self.caption_ids(c) for c in captions] if captions is not None else [[]] * batch
        num_audio = audio_mask.sum(dim=1).tolist()
        lengths = [
            len(before[i]) + num_audio[i] + len(self.after_ids) + len(targets[i]) for i in range(batch)
        ]
        width = max(lengths)

        pad_id = self.tokenizer.pad_token_id
        ids = torch.full((batch, width), pad_id, dtype=torch.long)
        attention = torch.zeros((batch, width), dtype=torch.long)
        audio_slots = torch.zeros((batch, width), dtype=torch.bool)
        caption_start = []
        for i in range(batch):
            offset = width - lengths[i] if padding_side == "left" else 0
            row = before[i] + [pad_id] * num_audio[i] + self.after_ids + targets[i]
            ids[i, offset : offset + lengths[i]] = torch.tensor(row, dtype=torch.long)
            attention[i, offset : offset + lengths[i]] = 1
            audio_start = offset + len(before[i])
            audio_slots[i, audio_start : audio_start + num_audio[i]] = True
            caption_start.append(audio_start + num_audio[i] + len(self.after_ids))

        device = audio_embeds.device
        embeds = self.embed_tokens(ids.to(device))  # (B, L, H)
        valid_audio = audio_embeds[audio_mask].to(embeds.dtype)  # (total valid, H), row-major
        embeds = embeds.masked_scatter(audio_slots.to(device).unsqueeze(-1), valid_audio)
        out = PromptBatch(inputs_embeds=embeds, attention_mask=attention.to(device))
        if captions is not None:
            out.caption_targets, out.caption_mask = _pad_targets(targets, pad_id)
            steps = torch.arange(out.caption_targets.shape[1])
            out.caption_positions = (torch.tensor(caption_start)[:, None] - 1 + steps).clamp(max=width - 1)
            out.caption_targets = out.caption_targets.to(device)
            out.caption_mask = out.caption_mask.to(device)
            out.caption_positions = out.caption_positions.to(device)
        return out

    def _encode_many(self, texts: list[str]) -> list[list[int]]:
        # The student prefix is the same for every row: tokenise it once.
        unique = list(dict.fromkeys(texts))
        encoded = dict(zip(unique, self.tokenizer(unique, add_special_tokens=False).input_ids))
        return [encoded[t] for t in texts]


def _pad_targets(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = True
    return ids, mask
