"""`ensure_standins(cfg)`: build (or find cached) every stand-in the config uses, before anything loads them.

A stand-in is a model trained here in place of a checkpoint the config leaves out, so the tiny preset
runs offline on a CPU. The registries (`AUDIO_ENCODERS["tiny"]`, `CLAP_ENCODERS["tiny-clap"]`,
`LLMS["tiny"]`) only load a stand-in's cached folder and raise `StandinMissingError` when it is not
built; an entry point (training, `distillcaps index ...`, `distillcaps diagnose`) calls this once, in
its driver process, before Ray workers start, so each stand-in is trained once in one process.

    folders = ensure_standins(cfg)     # {"tiny-clap": Path, "tiny-llm": Path}, or {} for the paper preset
    ensure_checkpoint_standins(checkpoint_dir)     # those a trained checkpoint's model loads
    model = load_trained_model(checkpoint_dir)     # the two steps every captioning entry point takes
    retriever = build_retriever(cfg)               # the online retriever, its tiny CLAP built first
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from distillcaps.config import Config, from_dict, parse_override, set_dotted
from distillcaps.model.checkpoint import CONFIG_NAME
from distillcaps.model.standin_folders import tiny_llm_source
from distillcaps.registry import Registry
from distillcaps.retrieval.clap.tiny import TinyClapEncoder
from distillcaps.retrieval.retriever import Retriever
from distillcaps.standins.tiny_clap import ensure_tiny_clap

TINY_ENCODER = "tiny"  # AUDIO_ENCODERS name whose default checkpoint is the tiny CLAP's audio tower
TINY_LLM = "tiny"  # LLMS name of the pretrained tiny Llama


@dataclass(frozen=True)
class Standin:
    used_by: Callable[[Config], bool]  # does this config load the stand-in?
    ensure: Callable[[Config], Path]  # its folder, trained on the first call and cached


def uses_tiny_clap(cfg: Config) -> bool:
    """The retrieval CLAP is the tiny one without a checkpoint, or the captioning encoder is the tiny
    one without a checkpoint (its default is the tiny CLAP's audio tower)."""
    retrieval, encoder = cfg.retrieval, cfg.model.encoder
    retrieval_uses = retrieval.clap == TinyClapEncoder.name and not retrieval.clap_checkpoint
    encoder_uses = encoder.name == TINY_ENCODER and not encoder.checkpoint
    return retrieval_uses or encoder_uses


def uses_tiny_llm(cfg: Config) -> bool:
    return cfg.model.llm.name == TINY_LLM


def tiny_llm_folder(cfg: Config) -> Path:
    """The cached tiny LLM's folder, found without transformers (~5 s in every sweep trial's driver);
    the pretraining code is imported only to build it."""
    source = tiny_llm_source(cfg)
    if source.cached:
        return source.folder
    from distillcaps.standins.tiny_llm import ensure_tiny_llm  # lazy: transformers, only to pretrain

    return ensure_tiny_llm(cfg)


# names() is sorted: the tiny CLAP is built first, then the tiny LLM.
STANDINS: Registry[Standin] = Registry("stand-in")
STANDINS.register("tiny-clap")(Standin(uses_tiny_clap, ensure_tiny_clap))
STANDINS.register("tiny-llm")(Standin(uses_tiny_llm, tiny_llm_folder))


def ensure_standins(cfg: Config, names: Collection[str] | None = None) -> dict[str, Path]:
    """Every stand-in cfg uses, built once and cached: {name: folder}. Nothing for real checkpoints.

    `names` limits it to those stand-ins (a command that only retrieves needs no tiny LLM)."""
    for name in names or ():
        STANDINS.get(name)  # an unknown name is an error, not a silent no-op
    folders = {}
    for name in STANDINS.names():
        standin = STANDINS.get(name)
        if (names is None or name in names) and standin.used_by(cfg):
            folders[name] = standin.ensure(cfg)
    return folders


def ensure_checkpoint_standins(directory: str | Path, overrides: Sequence[str] = ()) -> dict[str, Path]:
    """The stand-ins a trained checkpoint's model loads: `ensure_standins` of the config saved with it
    (and the overrides `load_checkpoint` is given). Nothing when the folder has no saved config:
    `load_checkpoint` then says what the folder is missing."""
    config_file = Path(directory) / CONFIG_NAME
    if not config_file.is_file():
        return {}
    raw = json.loads(config_file.read_text())
    for item in overrides:
        set_dotted(raw, *parse_override(item))
    return ensure_standins(from_dict(Config, raw))


def load_trained_model(directory: str | Path, overrides: Sequence[str] = ()):
    """A trained checkpoint's DistillCapsModel, its stand-ins built first (a fresh cache, or another
    machine that has the data but not the caches)."""
    ensure_checkpoint_standins(directory, overrides)
    from distillcaps.model.distillcaps_model import DistillCapsModel  # lazy: transformers

    return DistillCapsModel.load_checkpoint(directory, overrides)


def build_retriever(cfg: Config) -> Retriever:
    """The online retriever of ``cfg`` (its CLAP, datastore and index), the tiny CLAP built first."""
    ensure_standins(cfg, names=["tiny-clap"])
    return Retriever.from_config(cfg)
