"""The LLM side: tiny Llama pretraining (cached), safe loading of a base LM, LoRA on top."""

from __future__ import annotations

import json

import pytest
import torch
from assembly_fixtures import CAPTIONS, shared_llm_dir, tiny_cfg
from safetensors.torch import load_file, save_file

from distillcaps.config import load_config
from distillcaps.model.llm import build_llm, ensure_tiny_llm, load_base_llm


@pytest.fixture(scope="module")
def llm_dir():
    return shared_llm_dir()


def write_jsonl_dataset(root, captions):
    root.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"audio": f"clip{i}.wav", "captions": [c]}) for i, c in enumerate(captions)]
    (root / "dev.jsonl").write_text("\n".join(lines) + "\n")
    return root


def tiny_llm_cfg(dataset_dir, cache_dir):
    return load_config(
        None,
        [
            f"data.dataset_dir={dataset_dir}",
            "data.dataset_format=jsonl",
            f"data.cache_dir={cache_dir}",
            "model.llm.hidden_size=32",
            "model.llm.num_layers=1",
            "model.llm.num_heads=2",
            "model.llm.intermediate_size=64",
            "model.llm.vocab_size=300",
            "model.llm.pretrain_epochs=40",
            "model.llm.pretrain_batch_size=8",
            "model.llm.pretrain_lr=0.01",
        ],
    )


def test_ensure_tiny_llm_pretrains_once_and_caches_by_captions(tmp_path):
    cfg = tiny_llm_cfg(write_jsonl_dataset(tmp_path / "data", CAPTIONS), tmp_path / "cache")
    path = ensure_tiny_llm(cfg)
    assert path.parent == tmp_path / "cache" / "pretrained" and path.name.startswith("tiny-llm-")
    meta = json.loads((path / "pretraining.json").read_text())
    assert meta["num_captions"] == len(CAPTIONS)
    assert meta["final_loss"] < 0.5 * meta["first_epoch_loss"]  # it learned from the captions
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert ensure_tiny_llm(cfg) == path and (path / "model.safetensors").stat().st_mtime_ns == stamp
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left

    base = load_base_llm(path)
    tok = base.tokenizer
    ids = tok(CAPTIONS[0], add_special_tokens=False).input_ids
    assert tok.decode(ids) == CAPTIONS[0]  # ByteLevel decoder: no "Ġ" markers
    assert all(not p.requires_grad for p in base.model.parameters())

    other = tiny_llm_cfg(write_jsonl_dataset(tmp_path / "data2", CAPTIONS[:-1]), tmp_path / "cache")
    assert ensure_tiny_llm(other) != path


def test_load_base_llm_refuses_a_checkpoint_with_missing_weights(llm_dir, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in llm_dir.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    state = load_file(str(broken / "model.safetensors"))
    del state["model.layers.0.self_attn.q_proj.weight"]
    save_file(state, str(broken / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="model.layers.0.self_attn.q_proj.weight"):
        load_base_llm(broken)


def test_build_llm_trains_only_lora_on_the_configured_modules(llm_dir):
    cfg = tiny_cfg(llm_dir, "model.llm.lora_target_modules=[q_proj, v_proj]", "model.llm.lora_r=4")
    llm, tokenizer, path = build_llm(cfg)
    trainable = {n for n, p in llm.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert {n.split(".")[-4] for n in trainable} == {"q_proj", "v_proj"}
    a = next(p for n, p in llm.named_parameters() if n.endswith("q_proj.lora_A.default.weight"))
    assert a.shape[0] == 4
    # LoRA starts as the identity: the wrapped model computes what the base computed
    ids = torch.tensor(
        [[tokenizer.bos_token_id] + tokenizer(CAPTIONS[1], add_special_tokens=False).input_ids]
    )
    base = load_base_llm(llm_dir).model
    with torch.no_grad():
        assert torch.allclose(llm(input_ids=ids).logits, base(input_ids=ids).logits, atol=1e-6)
    assert path == str(llm_dir)
