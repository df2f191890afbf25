"""Caption a batch with online retrieval, doing each piece of work once per batch.

    captions = caption_with_retrieval(model, retriever, audio, lengths, top_k)

Where the captioner's frozen encoder *is* the CLAP audio tower (the tiny preset: both load the tiny
CLAP's ``audio_encoder/``), the encoder runs once and its output serves both the caption (through
the adapter) and the query (through the CLAP's pooling and projection); elsewhere (the paper
preset: CED encodes for the captioner, HTSAT-CLAP for retrieval) the CLAP encodes the audio itself.
Either way the queries are embedded in one batched pass, searched in one call against the
pre-normalised datastore matrix, and the teacher prompts are prefilled together in one generate.
The captions are the ones ``model.generate(rag=True)`` gives after ``retriever.retrieve``.
"""

from __future__ import annotations

from typing import Any

import torch

from distillcaps.data.batches import ModelBatch
from distillcaps.model.encoders.base import EncoderOutput


@torch.inference_mode()
def caption_with_retrieval(
    model: Any,  # DistillCapsModel
    retriever: Any,  # Retriever
    audio: torch.Tensor,  # (B, S) float 16 kHz
    lengths: torch.Tensor | None,  # (B,) valid samples
    top_k: int,
    generation: Any | None = None,  # model.config.GenerationConfig; None: the model's
) -> list[str]:
    if not retriever.shares_encoder(model.encoder):
        retrieved = retriever.retrieve(audio, lengths, top_k)
        batch = ModelBatch.from_waveforms(audio, lengths, retrieved=retrieved)
        return list(model.generate(batch, rag=True, generation=generation))
    tokens, mask, grid = model.encode_frozen(audio, lengths)  # (B, N, D), (B, N), (bands, time)
    retrieved = retriever.retrieve(audio, lengths, top_k, encoded=EncoderOutput(tokens, mask, grid))
    # the encoder's output as the model's input: audio_tokens() does not run the encoder again
    batch = ModelBatch.from_features(tokens, mask, grid, retrieved=retrieved)
    return list(model.generate(batch, rag=True, generation=generation))
