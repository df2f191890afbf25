"""Checkpoints: only trained weights + config + tokenizer; identical generations; named mismatches."""

from __future__ import annotations

import json

import pytest
import torch
from assembly_fixtures import build_model, cached_batch, clip_audio, overfit, shared_encoder_dir
from safetensors.torch import load_file, save_file

from distillcaps.data.batches import ModelBatch
from distillcaps.model.checkpoint import CheckpointMismatchError
from distillcaps.model.distillcaps_model import DistillCapsModel


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained a few steps (LoRA B and the adapters move off their init) and its checkpoint."""
    model = build_model()
    batch = cached_batch(model, clip_audio())
    overfit(model, batch, "distill", max_steps=8, target=0.0)
    directory = model.save_checkpoint(tmp_path_factory.mktemp("ckpt") / "student")
    return model, batch, directory


def test_checkpoint_holds_only_trained_weights_config_tokenizer_versions(trained):
    model, _, directory = trained
    names = sorted(p.name for p in directory.iterdir())
    assert names == ["base.json", "config.json", "tokenizer", "trainable.safetensors", "versions.json"]
    state = load_file(str(directory / "trainable.safetensors"))
    assert not any(k.startswith("encoder.") for k in state)  # the frozen encoder is referenced, not copied
    llm_keys = [k for k in state if k.startswith("llm.")]
    assert llm_keys and all("lora_" in k for k in llm_keys)
    assert any(k.startswith("audio_adapter.qformer.") for k in state)
    config = json.loads((directory / "config.json").read_text())
    assert config["model"]["encoder"]["checkpoint"] == str(shared_encoder_dir())
    versions = json.loads((directory / "versions.json").read_text())
    assert {"torch", "transformers", "peft"} <= set(versions)
    assert not [p for p in directory.rglob("*") if p.suffix in (".bin", ".pt", ".pkl")]


def test_round_trip_gives_identical_weights_and_generations(trained):
    model, batch, directory = trained
    loaded = DistillCapsModel.load_checkpoint(directory)
    before, after = model.trainable_state_dict(), loaded.trainable_state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    for rag in (False, True):
        assert loaded.generate(batch, rag=rag) == model.generate(batch, rag=rag)


def test_a_config_that_does_not_match_the_weights_is_named(trained):
    _, _, directory = trained
    with pytest.raises(CheckpointMismatchError) as err:
        DistillCapsModel.load_checkpoint(directory, ["model.qformer.num_layers=2"])
    assert "missing keys" in str(err.value) and "model.qformer.num_layers: 1 -> 2" in str(err.value)
    with pytest.raises(CheckpointMismatchError, match="shape mismatches.*lora_A"):
        DistillCapsModel.load_checkpoint(directory, ["model.llm.lora_r=4"])


def test_a_different_frozen_base_is_detected(trained, tmp_path):
    _, _, directory = trained
    encoder = tmp_path / "encoder"
    encoder.mkdir()
    for f in shared_encoder_dir().iterdir():
        (encoder / f.name).write_bytes(f.read_bytes())
    state = load_file(str(encoder / "model.safetensors"))
    key = next(k for k in sorted(state) if state[k].dtype == torch.float32 and state[k].numel() > 1)
    state[key] = state[key] + 1.0
    save_file(state, str(encoder / "model.safetensors"))
    with pytest.raises(CheckpointMismatchError, match="frozen encoder differs"):
        DistillCapsModel.load_checkpoint(directory, [f"model.encoder.checkpoint={encoder}"])


def test_caption_command_prints_one_caption_per_file(trained, tmp_path, capsys):
    import soundfile as sf

    from distillcaps.cli import main

    model, _, directory = trained
    audio = clip_audio(2)
    files = []
    for i in range(2):
        files.append(tmp_path / f"clip{i}.wav")
        sf.write(files[-1], audio[i].numpy(), 16000, subtype="FLOAT")
    assert main(["caption", str(directory), *map(str, files)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    expected = model.generate(ModelBatch.from_waveforms(audio, torch.tensor([16000, 16000])), rag=False)
    assert lines == [f"{f}\t{c}" for f, c in zip(files, expected)]
