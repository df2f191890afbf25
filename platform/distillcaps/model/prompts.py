"""Student and teacher prompts, assembled as LLM input embeddings with the audio tokens spliced in.

    student:  <bos> "Describe the detail of this audio:" [audio tokens] "\\n---\\nDetailed:" " caption" <eos>
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


class PromptTokens:
    """The prompts' token ids, text only (no embeddings): one tokenisation for training, generation,
    the tiny LM's pretraining documents and the context diagnostic.

    A row is ``prefix_ids(retrieved) + [audio tokens] + after_ids + caption_ids(caption)``. The
    student prompt's trailing space ("Detailed: ") belongs to the caption: a caption is encoded
    *after* the prompt's last word, so a BPE tokenizer gives it the word-initial ids ("Ġa Ġdog") it
    gives the same text in one piece, never a lone space followed by "a".
    """

    def __init__(self, tokenizer, prompt: PromptConfig) -> None:
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
        self.before_audio, after_audio = prompt.student.split(prompt.audio_placeholder)
        self.after_audio = after_audio.rstrip(
            " "
        )  # the prompt's text; its trailing space goes with the caption
        self.caption_lead = after_audio[len(self.after_audio) :]
        # <bos> where the tokenizer itself opens a text with it (LLaMA's, the tiny one), none where
        # it does not (SmolLM2's: its GGUF says add_bos_token false)
        opens_with_bos = tokenizer("a").input_ids[:1] == [tokenizer.bos_token_id]
        self.bos = [tokenizer.bos_token_id] if opens_with_bos else []
        self.after_ids = self.encode(self.after_audio)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids if text else []

    def teacher_text(self, retrieved: Sequence[str]) -> str:
        captions = self.prompt.caption_separator.join(normalize_caption(c) for c in retrieved)
        return self.prompt.teacher_prefix.replace("{captions}", captions)

    def prefix_ids(self, contexts: Sequence[Sequence[str] | None]) -> list[list[int]]:
        """<bos> + [teacher prefix with the row's captions] + the text before the audio, per row
        (None: the student prompt)."""
        texts = [(self.teacher_text(c) if c is not None else "") + self.before_audio for c in contexts]
        # the student prefix is the same for every row: tokenise each distinct text once
        unique = list(dict.fromkeys(texts))
        encoded = dict(zip(unique, self.tokenizer(unique, add_special_tokens=False).input_ids))
        return [self.bos + encoded[t] for t in texts]

    def caption_ids(self, caption: str) -> list[int]:
        """The caption's ids as they follow `after_ids` in one tokenisation, cut at
        max_caption_tokens, then eos."""
        text = normalize_caption(caption)
        joint = self.encode(self.after_audio + self.caption_lead + text)
        n = len(self.after_ids)
        # a tokenizer whose ids for the prompt change with what follows it: encode the caption alone
        ids = joint[n:] if joint[:n] == self.after_ids else self.encode(self.caption_lead + text)
        return ids[: self.prompt.max_caption_tokens] + [self.tokenizer.eos_token_id]


class PromptBuilder:
    """Splices audio embeddings into the tokenised prompts (`PromptTokens`) at the placeholder."""

    def __init__(self, tokenizer, prompt: PromptConfig, embed_tokens: nn.Module) -> None:
        self.tokens = PromptTokens(tokenizer, prompt)
        self.tokenizer = tokenizer
        self.prompt = prompt
        self.embed_tokens = embed_tokens
        self.after_ids = self.tokens.after_ids

    def encode(self, text: str) -> list[int]:
        return self.tokens.encode(text)

    def teacher_text(self, retrieved: Sequence[str]) -> str:
        return self.tokens.teacher_text(retrieved)

    def caption_ids(self, caption: str) -> list[int]:
        return self.tokens.caption_ids(caption)

    def build(
        self,
        audio_embeds: torch.Tensor,  # (B, W, H) projected audio tokens
        audio_mask: torch.Tensor,  # (B, W) bool, valid audio tokens
        captions: Sequence[str] | None = None,  # targets (training); None for generation
        retrieved: Sequence[Sequence[str]] | None = None,  # teacher prompt when given
        padding_side: Literal["right", "left"] = "right",
    ) -> PromptBatch:
        batch = audio_embeds.shape[0]
        before = self.tokens.prefix_ids(list(retrieved) if retrieved is not None else [None] * batch)
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


def _pad_targets(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = True
    return ids, mask
