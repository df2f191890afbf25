"""Checkpoint format: only what was trained, plus what is needed to rebuild the rest.

    <dir>/trainable.safetensors   adapter, Q-Former, projector and LoRA weights (+ the encoder if it trained)
    <dir>/config.json             the resolved Config (to_dict)
    <dir>/tokenizer/              the LLM tokenizer (save_pretrained)
    <dir>/base.json               the frozen parts by reference: encoder / base LLM path + weight fingerprint
    <dir>/versions.json           torch / transformers / peft / distillcaps versions that wrote it

Loading rebuilds the model from the saved config (plus overrides), checks that the frozen parts
are the ones it was trained on (fingerprints), that the tokenizer is the same, and loads the
trained weights with explicit key and shape checks. Nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from distillcaps.config import Config, from_dict, parse_override, set_dotted

WEIGHTS_NAME = "trainable.safetensors"
CONFIG_NAME = "config.json"
BASE_NAME = "base.json"
VERSIONS_NAME = "versions.json"
TOKENIZER_DIR = "tokenizer"
FORMAT_VERSION = 1


class CheckpointMismatchError(ValueError):
    """The checkpoint does not fit the model its config (with overrides) builds; names the mismatch."""


# ---------------------------------------------------------------------------------------------
# Trained weights


def trainable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters that train, plus every tensor of the audio adapter stack (buffers included)."""
    state = {name: p for name, p in model.named_parameters() if p.requires_grad}
    for name, t in model.audio_adapter.state_dict(prefix="audio_adapter.").items():
        state.setdefault(name, t)
    return {k: v.detach().contiguous().cpu() for k, v in sorted(state.items())}


def load_trainable_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Copy `state` into the model's trained weights; every key and shape must match exactly."""
    expected = trainable_state_dict(model)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mis_shaped = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(state))
        if state[k].shape != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {_short(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_short(unexpected)}")
    if mis_shaped:
        problems.append(f"shape mismatches {_short(mis_shaped)}")
    if problems:
        raise CheckpointMismatchError(
            f"{source}: trained weights do not fit the model: " + "; ".join(problems)
        )
    targets = dict(model.named_parameters())
    targets.update(dict(model.named_buffers()))
    with torch.no_grad():
        for name, value in state.items():
            targets[name].copy_(value.to(device=targets[name].device, dtype=targets[name].dtype))


# ---------------------------------------------------------------------------------------------
# Directory format


def save_checkpoint(model: nn.Module, directory: str | Path) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(
        model.trainable_state_dict(), str(directory / WEIGHTS_NAME), metadata={"format": str(FORMAT_VERSION)}
    )
    _write_json(directory / CONFIG_NAME, model.cfg.to_dict())
    _write_json(directory / BASE_NAME, base_identity(model))
    _write_json(directory / VERSIONS_NAME, versions())
    tokenizer_dir = directory / TOKENIZER_DIR
    shutil.rmtree(tokenizer_dir, ignore_errors=True)
    model.tokenizer.save_pretrained(tokenizer_dir)
    return directory


def load_checkpoint(directory: str | Path, cfg_overrides: Sequence[str] | None = None):
    """Rebuild the model a checkpoint was trained with and load its trained weights."""
    from distillcaps.model.distillcaps_model import DistillCapsModel  # lazy: it imports this module

    directory = Path(directory)
    for name in (WEIGHTS_NAME, CONFIG_NAME):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{directory} is not a DistillCaps checkpoint: {name} is missing")
    raw = json.loads((directory / CONFIG_NAME).read_text())
    for item in cfg_overrides or ():
        set_dotted(raw, *parse_override(item))
    cfg = from_dict(Config, raw)
    model = DistillCapsModel.build(cfg)

    saved = json.loads((directory / BASE_NAME).read_text()) if (directory / BASE_NAME).is_file() else {}
    check_base_identity(saved, base_identity(model), directory)
    check_tokenizer(directory / TOKENIZER_DIR, model.tokenizer, directory)
    state = load_file(str(directory / WEIGHTS_NAME))
    try:
        load_trainable_state_dict(model, state, source=f"{directory / WEIGHTS_NAME}")
    except CheckpointMismatchError as err:
        changed = changed_model_keys(
            from_dict(Config, json.loads((directory / CONFIG_NAME).read_text())), cfg
        )
        hint = f" (config keys changed from the checkpoint's: {', '.join(changed)})" if changed else ""
        raise CheckpointMismatchError(f"{err}{hint}") from None
    return model


def changed_model_keys(saved_cfg, cfg) -> list[str]:
    """Dotted `model.*` keys whose values differ between two configs, with both values."""
    before, now = saved_cfg.flat(), cfg.flat()
    return [
        f"{k}: {before.get(k)!r} -> {now.get(k)!r}"
        for k in sorted(set(before) | set(now))
        if k.startswith("model.") and before.get(k) != now.get(k)
    ]


def base_identity(model: nn.Module) -> dict:
    """The frozen parts by reference: where they came from and a fingerprint of their weights."""
    cfg = model.cfg
    return {
        "format": FORMAT_VERSION,
        "encoder": {
            "name": cfg.model.encoder.name,
            "checkpoint": cfg.model.encoder.checkpoint,
            "fingerprint": fingerprint(model.encoder),
        },
        "llm": {
            "name": cfg.model.llm.name,
            "path": str(model.llm_path),
            "fingerprint": fingerprint(model.llm.get_base_model(), skip="lora_"),
        },
    }


def check_base_identity(saved: dict, current: dict, directory: Path) -> None:
    problems = []
    for part in ("encoder", "llm"):
        before, now = saved.get(part), current[part]
        if before is not None and before.get("fingerprint") != now["fingerprint"]:
            problems.append(
                f"frozen {part} differs from the one it was trained with "
                f"(trained: {before.get('name')} {before.get('path') or before.get('checkpoint') or ''}; "
                f"now: {now['name']} {now.get('path') or now.get('checkpoint') or ''})"
            )
    if problems:
        raise CheckpointMismatchError(f"{directory}: " + "; ".join(problems))


def check_tokenizer(tokenizer_dir: Path, tokenizer, directory: Path) -> None:
    if not tokenizer_dir.is_dir():
        return
    from transformers import AutoTokenizer

    saved = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    if saved.get_vocab() != tokenizer.get_vocab():
        raise CheckpointMismatchError(
            f"{directory}: the LLM's tokenizer differs from the one saved with the checkpoint "
            f"({len(saved)} vs {len(tokenizer)} tokens)"
        )


def fingerprint(module: nn.Module, skip: str | None = None) -> str:
    """Cheap, device-independent identity of a module's weights: names, shapes and sampled values."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        if skip and skip in name:
            continue
        h.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        sample = tensor.detach().reshape(-1)[:: max(1, tensor.numel() // 64)][:64]
        h.update(sample.to(device="cpu", dtype=torch.float32).numpy().tobytes())
    return h.hexdigest()[:20]


def versions() -> dict[str, str]:
    out = {"format": str(FORMAT_VERSION)}
    for package in ("distillcaps", "torch", "transformers", "peft", "tokenizers", "safetensors"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _short(items: list[str], limit: int = 8) -> str:
    return str(items[:limit]) + (f" (+{len(items) - limit} more)" if len(items) > limit else "")
