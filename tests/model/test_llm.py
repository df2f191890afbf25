"""The LLM side: where the base LM comes from (`LLMS`), safe loading of it, LoRA on top."""

from __future__ import annotations

import json

import pytest
import torch
from assembly_fixtures import CAPTIONS, shared_llm_dir, tiny_cfg
from safetensors.torch import load_file, save_file

from distillcaps.config import load_config
from distillcaps.model.llm import build_llm, load_base_llm
from distillcaps.model.llm_sources import LLMS
from distillcaps.model.standin_folders import StandinMissingError


@pytest.fixture(scope="module")
def llm_dir():
    return shared_llm_dir()


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


def test_the_tiny_llm_entry_on_a_cold_cache_names_what_is_missing_and_trains_nothing(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    lines = [json.dumps({"audio": f"clip{i}.wav", "captions": [c]}) for i, c in enumerate(CAPTIONS)]
    (data / "dev.jsonl").write_text("\n".join(lines) + "\n")
    overrides = [
        f"data.dataset_dir={data}",
        "data.dataset_format=jsonl",
        f"data.cache_dir={tmp_path / 'cache'}",
    ]
    cfg = load_config(None, overrides)
    with pytest.raises(StandinMissingError, match="the tiny LLM .*tiny-llm-.*ensure_standins"):
        LLMS.get("tiny")(cfg)
    assert not any((tmp_path / "cache").iterdir())  # nothing pretrained, nothing written
