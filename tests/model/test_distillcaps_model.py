"""DistillCapsModel end to end on tiny parts: every training mode overfits 8 clips, masks, shared audio."""

from __future__ import annotations

import pytest
import torch
from assembly_fixtures import CAPTIONS, ENC_DIM, build_model, clip_audio, overfit, retrieved_for

from distillcaps.data.batches import MissingBatchFieldError, ModelBatch
from distillcaps.model.config import GenerationConfig

# which generations each mode trains: student (rag=False) and/or teacher (rag=True)
MODES = {
    "baseline": {"student": True, "teacher": False},
    "rag": {"student": False, "teacher": True},
    "rag+auto": {"student": True, "teacher": True},
    "distill": {"student": True, "teacher": True},
}


# Through the real audio stack (FFT adapter -> windowed Q-Former with the tiny preset's pooled skip
# path -> projector). Measured: every mode generates all 8 captions exactly within 300-1000 steps,
# but its loss terms level off near 0.15 per token (dropout on or off; cause not yet known, see
# docs/model.md), so "near zero" here is under 0.25 per token and under half the start. 4-21 s a mode.
# Once, in the whole suite on a fresh clone, rag+auto still had 1 of 8 captions wrong at 1000 steps
# while passing alone in that clone (which earlier test changes it is not established): up to 2000.
@pytest.mark.parametrize("mode", list(MODES))
def test_a_tiny_model_overfits_8_clips_in_each_mode_and_generates_their_captions(mode):
    model = build_model()
    assert model.audio_adapter.qformer.pooled is not None  # the tiny preset's stack, not a stand-in
    tokens = torch.randn(8, 24, ENC_DIM, generator=torch.Generator().manual_seed(0))  # 8 distinct clips
    batch = ModelBatch.from_features(
        tokens,
        torch.ones(8, 24, dtype=torch.bool),
        (4, 6),
        captions=CAPTIONS,
        retrieved=[retrieved_for(i) for i in range(8)],
    )
    with torch.no_grad():
        start = model.compute_loss(batch, mode).loss.item()
    wants = [rag for rag, key in ((False, "student"), (True, "teacher")) if MODES[mode][key]]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=1000)
    # beam search too for distill: greedy can match while a longer caption still wins on beam score
    # (length-normalised), which happened on CI's machine after greedy matched first
    beams = GenerationConfig(num_beams=3, max_new_tokens=20)
    decodings = [dict(rag=rag) for rag in wants]
    if mode == "distill":
        decodings.append(dict(rag=False, generation=beams))
    for _ in range(40):  # up to 2000 steps, checked every 50
        model.train()
        for _ in range(50):
            out = model.compute_loss(batch, mode)
            optimizer.zero_grad()
            out.loss.backward()
            optimizer.step()
            schedule.step()
        terms = eval_terms(model, batch, mode)
        if max(terms) < 0.25 and all(model.generate(batch, **kw) == CAPTIONS for kw in decodings):
            break
    assert max(terms) < 0.25 and sum(terms) < 0.5 * start
    assert (out.auto is not None) == (mode != "rag")
    assert (out.rag is not None) == (mode != "baseline")
    assert (out.dda is not None) == (mode == "distill")
    for kw in decodings:
        assert model.generate(batch, **kw) == CAPTIONS, kw


@torch.no_grad()
def eval_terms(model, batch: ModelBatch, mode: str) -> list[float]:
    """The mode's loss terms with dropout off (LoRA and the Q-Former train with dropout 0.1)."""
    model.eval()
    out = model.compute_loss(batch, mode)
    return [t.item() for t in (out.auto, out.rag, out.dda) if t is not None]


@pytest.mark.parametrize("mode", list(MODES))
def test_each_mode_trains_its_terms(mode):
    """A few optimiser steps on 4 clips lower the mode's loss (the fast stand-in for the overfit test)."""
    model = build_model()
    batch = ModelBatch.from_features(
        torch.randn(4, 24, ENC_DIM, generator=torch.Generator().manual_seed(1)),
        torch.ones(4, 24, dtype=torch.bool),
        (4, 6),
        captions=CAPTIONS[:4],
        retrieved=[retrieved_for(i) for i in range(4)],
    )
    model.eval()  # no dropout: compare like with like
    with torch.no_grad():
        before = model.compute_loss(batch, mode).loss.item()
    overfit(model, batch, mode, lr=3e-3, max_steps=6, target=0.0)
    model.eval()
    with torch.no_grad():
        after = model.compute_loss(batch, mode).loss.item()
    assert after < before


def test_padding_changes_neither_the_loss_nor_the_generation():
    model = build_model().eval()
    audio = clip_audio(4)
    lengths = torch.full((4,), audio.shape[1])
    padded = torch.nn.functional.pad(audio, (0, 8000), value=0.5)  # 0.5 s of junk past each clip's end
    common = {"captions": CAPTIONS[:4], "retrieved": [retrieved_for(i) for i in range(4)]}
    plain = ModelBatch.from_waveforms(audio, lengths, **common)
    noisy = ModelBatch.from_waveforms(padded, lengths, **common)
    with torch.no_grad():
        a, b = model.compute_loss(plain, "distill"), model.compute_loss(noisy, "distill")
    for x, y in [(a.loss, b.loss), (a.auto, b.auto), (a.rag, b.rag), (a.dda, b.dda)]:
        assert torch.allclose(x, y, atol=1e-5)
    for rag in (False, True):
        together = model.generate(plain, rag=rag)
        assert model.generate(noisy, rag=rag) == together
        # each clip alone (no left padding at all) decodes what it decoded inside the batch
        alone = [
            model.generate(
                ModelBatch.from_waveforms(
                    audio[i : i + 1], lengths[i : i + 1], retrieved=common["retrieved"][i : i + 1]
                ),
                rag=rag,
            )[0]
            for i in range(4)
        ]
        assert alone == together


def test_one_step_encodes_the_audio_once_and_both_branches_get_gradient():
    model = build_model()
    calls = []
    model.encoder.register_forward_hook(lambda *_: calls.append(1))
    batch = ModelBatch.from_waveforms(
        clip_audio(2),
        torch.tensor([16000, 12000]),
        captions=CAPTIONS[:2],
        retrieved=[retrieved_for(0), retrieved_for(1)],
    )
    out = model.compute_loss(batch, "distill")
    assert len(calls) == 1
    out.loss.backward()
    projector = model.audio_adapter.projector.fc2.weight
    assert projector.grad is not None and projector.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.encoder.parameters())  # frozen
    lora = [p for n, p in model.llm.named_parameters() if "lora_B" in n]
    assert lora and all(p.grad is not None for p in lora)


def test_frozen_feature_path_equals_the_audio_path():
    model = build_model().eval()
    audio = clip_audio(3)
    lengths = torch.tensor([16000, 9000, 12000])
    tokens, mask, grid = model.encode_frozen(audio, lengths)
    common = {"captions": CAPTIONS[:3], "retrieved": [retrieved_for(i) for i in range(3)]}
    with torch.no_grad():
        direct = model.compute_loss(ModelBatch.from_waveforms(audio, lengths, **common), "distill")
        cached = model.compute_loss(ModelBatch.from_features(tokens, mask, grid, **common), "distill")
    assert torch.equal(direct.loss, cached.loss)


def test_retrieval_modes_need_retrieved_captions():
    model = build_model()
    batch = ModelBatch.from_waveforms(clip_audio(1), captions=CAPTIONS[:1])
    with pytest.raises(MissingBatchFieldError, match="no 'retrieved', needed by the teacher"):
        model.compute_loss(batch, "distill")
    assert model.compute_loss(batch, "baseline").rag is None


def test_paper_preset_builds_from_stand_in_checkpoints_in_the_real_formats(tmp_path):
    """paper.yaml's code path (ced encoder from an original-format state dict, hf LLM in bfloat16)."""
    from assembly_fixtures import shared_llm_dir

    from distillcaps.config import load_config
    from distillcaps.model.distillcaps_model import DistillCapsModel
    from distillcaps.model.encoders import CEDEncoder

    torch.manual_seed(0)
    ced = CEDEncoder(dim=64, depth=1, num_heads=1, num_classes=5)
    torch.save(ced.state_dict(), tmp_path / "ced_tiny.pt")  # what CED's released .pt files hold
    cfg = load_config(
        "paper",
        [
            f"model.encoder.checkpoint={tmp_path / 'ced_tiny.pt'}",
            "model.encoder.dim=64",
            f"model.llm.path={shared_llm_dir()}",
            "model.qformer.dim=32",
            "model.qformer.num_heads=2",
            "model.generation.max_new_tokens=4",
        ],
    )
    assert (
        cfg.model.llm.name == "hf" and cfg.model.encoder.name == "ced" and cfg.model.llm.dtype == "bfloat16"
    )
    model = DistillCapsModel.build(cfg)
    assert model.llm.get_input_embeddings().weight.dtype == torch.bfloat16
    batch = ModelBatch.from_waveforms(
        clip_audio(2),
        torch.tensor([16000, 8000]),
        captions=CAPTIONS[:2],
        retrieved=[retrieved_for(0), retrieved_for(1)],
    )
    out = model.compute_loss(batch)
    assert cfg.train.mode == "distill" and torch.isfinite(out.loss) and out.dda is not None
    out.loss.backward()
    for rag in (False, True):
        captions = model.generate(batch, rag=rag)
        assert len(captions) == 2 and all(isinstance(c, str) for c in captions)
