"""The tiny LLM stand-in: pretrained once on the training captions and cached by their key, the
registry finds it without transformers, and the pretraining steps' schedule."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import pytest
import torch
from assembly_fixtures import CAPTIONS

from distillcaps.config import load_config
from distillcaps.model.config import LLMConfig, PromptConfig
from distillcaps.model.llm import load_base_llm, tiny_llama
from distillcaps.model.standin_folders import tiny_llm_key
from distillcaps.model.tokenizer import train_caption_tokenizer
from distillcaps.standins.causal_lm import train_causal_lm, train_steps
from distillcaps.standins.tiny_llm import ensure_tiny_llm, pretrain_tiny_llm


def write_jsonl_dataset(root, captions):
    root.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"audio": f"clip{i}.wav", "captions": [c]}) for i, c in enumerate(captions)]
    (root / "dev.jsonl").write_text("\n".join(lines) + "\n")
    (root / "val.jsonl").write_text("\n".join(lines[:3]) + "\n")  # seen captions: val loss keeps falling
    return root


def tiny_llm_cfg(dataset_dir, cache_dir):
    return load_config(None, tiny_llm_overrides(dataset_dir, cache_dir))


def tiny_llm_overrides(dataset_dir, cache_dir) -> list[str]:
    return [
        f"data.dataset_dir={dataset_dir}",
        "data.dataset_format=jsonl",
        f"data.cache_dir={cache_dir}",
        "model.llm.hidden_size=32",
        "model.llm.num_layers=1",
        "model.llm.num_heads=2",
        "model.llm.intermediate_size=64",
        "model.llm.vocab_size=300",
        "model.llm.pretrain_steps=120",
        "model.llm.pretrain_batch_size=8",
        "model.llm.pretrain_lr=0.01",
    ]


def test_ensure_tiny_llm_pretrains_once_and_caches_by_captions(tmp_path):
    cfg = tiny_llm_cfg(write_jsonl_dataset(tmp_path / "data", CAPTIONS), tmp_path / "cache")
    path = ensure_tiny_llm(cfg)
    assert path.parent == tmp_path / "cache" / "pretrained" and path.name.startswith("tiny-llm-")
    meta = json.loads((path / "pretraining.json").read_text())
    assert meta["num_captions"] == len(CAPTIONS)
    losses = meta["loss_every_100_steps"]
    assert meta["steps"] == 120 and losses[-1] < 0.85 * losses[0]  # it learned from the rows
    assert meta["diagnosis"] is None  # one caption per clip: no `own` context to diagnose with
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert ensure_tiny_llm(cfg) == path and (path / "model.safetensors").stat().st_mtime_ns == stamp
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left

    base = load_base_llm(path)
    tok = base.tokenizer
    ids = tok(CAPTIONS[0], add_special_tokens=False).input_ids
    assert tok.decode(ids) == CAPTIONS[0]  # words joined by one space
    assert len(ids) == len(CAPTIONS[0].split())  # word-level: one id per word
    assert all(not p.requires_grad for p in base.model.parameters())

    other = tiny_llm_cfg(write_jsonl_dataset(tmp_path / "data2", CAPTIONS[:-1]), tmp_path / "cache")
    assert ensure_tiny_llm(other) != path

    # the run's seed varies the captioner's training only: every seed shares one pretrained stand-in
    assert ensure_tiny_llm(dataclasses.replace(cfg, seed=7)) == path
    clips, llm, prompt = [[c] for c in CAPTIONS], cfg.model.llm, cfg.model.prompt
    reseeded = dataclasses.replace(llm, pretrain_seed=1)
    assert tiny_llm_key(clips, [], llm, prompt, 0) == tiny_llm_key(clips, [], reseeded, prompt, 0)
    assert tiny_llm_key(clips, [], llm, prompt, 0) != tiny_llm_key(clips, [], llm, prompt, 1)

    # A training driver resolves the cached LLM without importing transformers (~20 s in a fresh
    # process): a new interpreter, since this one has transformers loaded already.
    overrides = tiny_llm_overrides(tmp_path / "data", tmp_path / "cache")
    probe = (
        "import sys; from distillcaps.config import load_config; "
        "from distillcaps.model.llm_sources import LLMS; "
        f"print(LLMS.get('tiny')(load_config(None, {overrides!r}))); "
        "print('transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(path), "False"]


def test_the_schedule_warms_up_and_anneals_to_zero_at_the_last_step():

    llm_cfg = LLMConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, vocab_size=200)
    tokenizer = train_caption_tokenizer(CAPTIONS, llm_cfg.vocab_size)
    model = tiny_llama(llm_cfg, tokenizer)
    rows = [tokenizer(c).input_ids for c in CAPTIONS]  # <bos> + caption
    rates = []
    original = torch.optim.AdamW.step

    def recording_step(self, *args, **kwargs):
        rates.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    torch.optim.AdamW.step = recording_step
    try:
        losses = train_steps(model, iter([rows] * 40), 40, 1e-2, tokenizer.pad_token_id)
    finally:
        torch.optim.AdamW.step = original
    assert len(losses) == 40 and losses[-1] < losses[0]
    peak = rates.index(max(rates))
    assert 0 < peak < 5 and max(rates) == pytest.approx(1e-2)  # warm-up over 5% (at least 2 steps)
    assert rates[-1] < 0.01 * max(rates) and rates[-1] == min(rates[peak:])  # annealed at the end


def test_pretrain_tiny_llm_refuses_a_flat_caption_list(tmp_path):

    with pytest.raises(TypeError, match="one per clip"):
        pretrain_tiny_llm(CAPTIONS, LLMConfig(), PromptConfig(), 0, tmp_path)


@pytest.mark.parametrize("steps", [1, 3, 20])
def test_pretraining_with_very_few_steps_runs(steps):
    """1, 3 and 20 steps: OneCycleLR's 5% warm-up used to divide by zero at 20 steps or fewer."""

    llm_cfg = LLMConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, vocab_size=200)
    tokenizer = train_caption_tokenizer(CAPTIONS, llm_cfg.vocab_size)
    model = tiny_llama(llm_cfg, tokenizer)
    losses = train_causal_lm(model, tokenizer, CAPTIONS, steps=steps, lr=1e-2, batch_size=8, seed=0)
    assert len(losses) == steps and all(math.isfinite(x) for x in losses)
