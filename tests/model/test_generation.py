"""Generation: greedy and beam search from prompt embeddings, config limits, post-processing."""

from __future__ import annotations

import torch
from assembly_fixtures import build_model, clip_audio, retrieved_for

from distillcaps.data.batches import ModelBatch
from distillcaps.model.config import GenerationConfig
from distillcaps.model.tokenizer import normalize_caption


def test_greedy_and_beam_search_respect_the_limits_and_post_processing():
    model = build_model()
    batch = ModelBatch.from_waveforms(
        clip_audio(3), torch.tensor([16000, 11000, 16000]), retrieved=[retrieved_for(i) for i in range(3)]
    )
    for rag in (False, True):
        for beams in (1, 3):
            captions = model.generate(
                batch, rag=rag, generation=GenerationConfig(num_beams=beams, max_new_tokens=4)
            )
            assert len(captions) == 3
            for c in captions:
                assert c == normalize_caption(c)
                # Re-tokenising decoded text may merge differently, so count words: the ByteLevel
                # pre-tokeniser never lets a token span two words, so words <= new tokens.
                assert len(c.split()) <= 4
    assert model.training  # generate() restored the mode it found
