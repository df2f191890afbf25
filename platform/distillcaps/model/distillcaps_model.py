"""DistillCapsModel: frozen audio encoder -> FFT adapter -> windowed Q-Former -> projector -> LoRA LLM.

    model = DistillCapsModel.build(cfg)
    batch = ModelBatch.from_waveforms(wave, lengths, captions=[...], retrieved=[[...], ...])
    out = model.compute_loss(batch)         # distillcaps.data.batches.ModelBatch
    out.loss.backward()
    model.generate(batch, rag=False)        # the student: no retrieval needed
    model.save_checkpoint(dir); DistillCapsModel.load_checkpoint(dir)

One step encodes the audio once; the student (plain prompt) and the teacher (prompt with the
retrieved captions) are the same network and share those audio tokens. Which terms a step
computes is the training mode (`distillcaps.losses.TRAINING_MODES`): baseline | rag | rag+auto |
distill. The two branches run as two forward passes (their prompts differ in length).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from distillcaps.data.batches import ModelBatch
from distillcaps.losses import TRAINING_MODES, caption_cross_entropy, dda_loss
from distillcaps.model import checkpoint
from distillcaps.model.config import GenerationConfig
from distillcaps.model.encoders import build_audio_encoder
from distillcaps.model.fft_adapter import build_fft_adapter
from distillcaps.model.generation import generate_captions
from distillcaps.model.llm import build_llm
from distillcaps.model.projector import Projector
from distillcaps.model.prompts import PromptBatch, PromptBuilder
from distillcaps.model.qformer import build_qformer


@dataclass
class LossOutput:
    loss: torch.Tensor  # scalar to backprop: w_auto·auto + w_rag·rag + w_dda·dda (terms of the mode)
    auto: torch.Tensor | None = None  # student CE (detached)
    rag: torch.Tensor | None = None  # teacher CE (detached)
    dda: torch.Tensor | None = None  # T²·KL(teacher ‖ student) (detached)
    num_tokens: int = 0  # valid caption tokens (eos included) the means ran over


class DistillCapsModel(nn.Module):
    def __init__(
        self, cfg, encoder: nn.Module, audio_adapter: nn.Module, llm: nn.Module, tokenizer, llm_path: str
    ):
        super().__init__()
        self.cfg = cfg
        self.encoder = encoder  # AudioEncoder; frozen unless model.encoder.frozen is false
        self.audio_adapter = audio_adapter  # AudioTokenizer: FFT adapter + Q-Former + projector
        self.llm = llm  # peft-wrapped causal LM; only LoRA trains
        self.tokenizer = tokenizer
        self.llm_path = llm_path
        self.prompts = PromptBuilder(tokenizer, cfg.model.prompt, self.llm.get_input_embeddings())

    @classmethod
    def build(cls, cfg) -> DistillCapsModel:
        encoder = build_audio_encoder(cfg)
        llm, tokenizer, llm_path = build_llm(cfg)
        hidden = llm.get_input_embeddings().embedding_dim
        audio_adapter = AudioTokenizer.from_config(cfg, encoder.dim, hidden)
        return cls(cfg, encoder, audio_adapter, llm, tokenizer, llm_path)

    @property
    def device(self) -> torch.device:
        return next(self.audio_adapter.parameters()).device

    # -----------------------------------------------------------------------------------------
    # Audio -> LLM-space audio tokens

    def encode_frozen(self, audio: torch.Tensor, audio_lengths: torch.Tensor | None = None):
        """Encoder output for the feature cache: (tokens (B,N,D), mask (B,N) bool, grid (bands, time))."""
        with torch.no_grad():
            out = self.encoder(audio.to(self.device), _to(audio_lengths, self.device))
        return out.tokens, out.mask, tuple(out.grid)

    def audio_tokens(self, batch: ModelBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected audio tokens (B, W, H) and their valid mask (B, W) for a batch."""
        batch = batch.to(self.device)
        if batch.encoder_tokens is not None:  # the frozen encoder's output, already computed
            tokens, mask, grid = batch.encoder_tokens, batch.encoder_mask, batch.encoder_grid
        else:
            grad = not getattr(self.encoder, "frozen", False) and torch.is_grad_enabled()
            with contextlib.nullcontext() if grad else torch.no_grad():
                out = self.encoder(batch.audio, batch.audio_lengths)
            tokens, mask, grid = out.tokens, out.mask, tuple(out.grid)
        return self.audio_adapter(tokens, mask, grid)

    # -----------------------------------------------------------------------------------------
    # Training objective

    def forward(self, batch: ModelBatch, mode: str | None = None) -> LossOutput:
        """Same as `compute_loss`, so a DDP-wrapped model (Ray Train's prepare_model) syncs gradients."""
        return self.compute_loss(batch, mode)

    def compute_loss(self, batch: ModelBatch, mode: str | None = None) -> LossOutput:
        terms = TRAINING_MODES.get(mode or self.cfg.train.mode)
        train_cfg = self.cfg.train
        captions = batch.require("captions", "the loss (its targets)")
        audio, audio_mask = self.audio_tokens(batch)  # once, shared by both branches
        total = audio.new_zeros((), dtype=torch.float32)
        out = LossOutput(loss=total)

        student_logits = teacher_logits = caption = None
        if terms.student_ce or terms.distill:
            student = self.prompts.build(audio, audio_mask, captions=captions)
            student_logits, caption = self.caption_logits(student), student
            auto = caption_cross_entropy(student_logits, student.caption_targets, student.caption_mask)
            out.auto = auto.detach()
            if terms.student_ce:
                total = total + train_cfg.w_auto * auto
        if terms.needs_retrieval:
            retrieved = self.top_k(batch)
            teacher = self.prompts.build(audio, audio_mask, captions=captions, retrieved=retrieved)
            teacher_logits, caption = self.caption_logits(teacher), teacher
            rag = caption_cross_entropy(teacher_logits, teacher.caption_targets, teacher.caption_mask)
            out.rag = rag.detach()
            if terms.teacher_ce:
                total = total + train_cfg.w_rag * rag
        if terms.distill:
            dda = dda_loss(student_logits, teacher_logits, caption.caption_mask, train_cfg.temperature)
            out.dda = dda.detach()
            total = total + train_cfg.w_dda * dda
        out.loss = total
        out.num_tokens = int(caption.caption_mask.sum())
        return out

    def caption_logits(self, prompts: PromptBatch) -> torch.Tensor:
        """(B, C, V) logits predicting each caption token; only those positions go through the LM head."""
        base = self.llm.get_base_model()
        hidden = base.get_decoder()(
            inputs_embeds=prompts.inputs_embeds, attention_mask=prompts.attention_mask, use_cache=False
        ).last_hidden_state  # (B, L, H)
        index = prompts.caption_positions.unsqueeze(-1).expand(-1, -1, hidden.shape[-1])
        return base.get_output_embeddings()(hidden.gather(1, index))

    def top_k(self, batch: ModelBatch) -> list[list[str]]:
        """The first retrieval.top_k retrieved captions of each row (the teacher prompt's)."""
        retrieved = batch.require("retrieved", "the teacher (RAG) prompt")
        k = self.cfg.retrieval.top_k
        return [list(r)[:k] for r in retrieved]

    # -----------------------------------------------------------------------------------------
    # Inference

    @torch.no_grad()
    def generate(
        self, batch: ModelBatch, rag: bool = False, generation: GenerationConfig | None = None
    ) -> list[str]:
        """One caption per row; with `rag` the teacher prompt (needs batch.retrieved), same weights."""
        was_training = self.training
        self.eval()
        try:
            audio, audio_mask = self.audio_tokens(batch)
            retrieved = self.top_k(batch) if rag else None
            prompts = self.prompts.build(audio, audio_mask, retrieved=retrieved, padding_side="left")
            return generate_captions(
                self.llm, self.tokenizer, prompts, generation or self.cfg.model.generation
            )
        finally:
            self.train(was_training)

    # -----------------------------------------------------------------------------------------
    # Checkpoints (format in distillcaps.model.checkpoint)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        return checkpoint.trainable_state_dict(self)

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor], source: str = "state dict") -> None:
        checkpoint.load_trainable_state_dict(self, state, source)

    def save_checkpoint(self, directory: str | Path) -> Path:
        return checkpoint.save_checkpoint(self, directory)

    @classmethod
    def load_checkpoint(
        cls, directory: str | Path, cfg_overrides: Sequence[str] | None = None
    ) -> DistillCapsModel:
        return checkpoint.load_checkpoint(directory, cfg_overrides)


class AudioTokenizer(nn.Module):
    """Encoder tokens -> grid-aware FFT adapter -> windowed Q-Former -> projector -> LLM-space tokens."""

    def __init__(self, adapter: nn.Module, qformer: nn.Module, projector: nn.Module):
        super().__init__()
        self.adapter, self.qformer, self.projector = adapter, qformer, projector

    @classmethod
    def from_config(cls, cfg, encoder_dim: int, llm_dim: int) -> AudioTokenizer:
        qformer = build_qformer(cfg.model.qformer, encoder_dim)
        return cls(
            build_fft_adapter(cfg.model.adapter, encoder_dim), qformer, Projector(qformer.dim, llm_dim)
        )

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor, grid: tuple[int, int]):
        # tokens (B, N, D) band-major, mask (B, N) bool -> (B, W, H) audio tokens, (B, W) bool
        tokens = self.adapter(tokens, grid, mask)
        queries = self.qformer(tokens, grid, mask)
        return self.projector(queries.tokens), queries.mask


def _to(x: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
    return None if x is None else x.to(device)
