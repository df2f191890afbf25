"""Where the stand-ins are cached: the tiny CLAP and the tiny LLM, each a folder named by a hash of
what its weights depend on (settings and training data), so a registry finds one without building it.

    folder = built_tiny_clap(cfg)      # <cache root>/pretrained/tiny-clap-<key>/, or StandinMissingError
    folder = built_tiny_llm(cfg)       # <cache root>/pretrained/tiny-llm-<key>/, or StandinMissingError

Only `distillcaps.standins` builds them (`ensure_standins(cfg)`, or `distillcaps standins`); the
folders and keys are defined here, below the registries that load them (`AUDIO_ENCODERS["tiny"]`,
`CLAP_ENCODERS["tiny-clap"]`, `LLMS["tiny"]`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from distillcaps.data.paths import cache_dir_for, resolve_dataset_dir
from distillcaps.data.records import read_records
from distillcaps.data.usable import files_identity
from distillcaps.model.config import LLMConfig, PromptConfig
from distillcaps.model.tokenizer import normalize_caption
from distillcaps.torch_threads import BUILD_THREADS

TINY_CLAP_MARKER = "train_stats.json"  # written last: the tiny CLAP's folder is whole
TINY_CLAP_AUDIO_DIR = "audio_encoder"  # the tiny CLAP's audio tower, a TinyAudioEncoder folder
TINY_LLM_MARKER = "config.json"  # the tiny LLM's folder (renamed into place whole) holds it
TINY_LLM_FORMAT = 4  # bump when the pretraining recipe changes, so old caches are not reused
BUILD_HINT = "call distillcaps.standins.ensure_standins(cfg), or run `distillcaps standins --config ...`"


class StandinMissingError(FileNotFoundError):
    """A stand-in the config uses is not built: registries load stand-ins, they never train them."""


def require_built(folder: Path, marker: str, what: str) -> Path:
    """`folder` if its marker file is there, else StandinMissingError naming it and how to build it."""
    if not (folder / marker).is_file():
        raise StandinMissingError(f"{what} for this config is not built: {folder} is missing; {BUILD_HINT}")
    return folder


# ---------------------------------------------------------------------------------------------
# The tiny CLAP (its audio tower is the tiny captioning encoder's default checkpoint)


def tiny_clap_folder(cfg) -> Path:
    """`<cache root>/pretrained/tiny-clap-<key>/` for cfg's training split (built or not)."""
    return tiny_clap_folder_for(cfg, tiny_clap_records(cfg))


def tiny_clap_folder_for(cfg, records: Sequence[Any]) -> Path:
    return Path(cache_dir_for(cfg)) / "pretrained" / f"tiny-clap-{tiny_clap_key(cfg, records)}"


def tiny_clap_records(cfg) -> list[Any]:
    """The training split's records (every clip: the key covers the bad ones too)."""
    dataset_dir = resolve_dataset_dir(cfg)
    records = read_records(dataset_dir, cfg.data.dataset_format, cfg.data.train_subset)
    if not records:
        raise ValueError(f"{dataset_dir}: training subset {cfg.data.train_subset!r} has no clips")
    return records


def built_tiny_clap(cfg) -> Path:
    return require_built(tiny_clap_folder(cfg), TINY_CLAP_MARKER, "the tiny CLAP")


def tiny_clap_key(cfg, records: Sequence[Any]) -> str:
    """Every setting that changes the weights, and the training clips: names, captions and each
    audio file's path, size and mtime (a changed or newly bad file trains a new CLAP)."""
    enc = cfg.model.encoder
    digest = hashlib.sha256()
    settings = {
        # the seed is hashed on its own, so keys stay those of caches made before it had a field
        "tiny": {k: v for k, v in asdict(cfg.retrieval.tiny).items() if k != "seed"},
        "encoder": {k: getattr(enc, k, None) for k in ("name", "n_mels", "dim", "num_layers", "num_heads")},
        "seed": cfg.retrieval.tiny.seed,
        "torch_threads": BUILD_THREADS,  # the weights differ bit-wise between thread counts
        "sample_rate": cfg.data.sample_rate,
        "max_seconds": cfg.data.max_seconds,
    }
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for row in files_identity(list(records)):
        digest.update(json.dumps(row).encode())
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# The tiny LLM (a small Llama pretrained on the training captions)


@dataclass
class TinyLLMSource:
    """What the tiny Llama is pretrained on (normalised captions per clip) and where it is cached."""

    folder: Path
    train_clips: list[list[str]]
    val_clips: list[list[str]] = field(default_factory=list)

    @property
    def cached(self) -> bool:
        return (self.folder / TINY_LLM_MARKER).is_file()


def tiny_llm_source(cfg) -> TinyLLMSource:
    """The training (and, if there is one, validation) split's captions and their cache folder."""
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


def built_tiny_llm(cfg) -> Path:
    return require_built(tiny_llm_source(cfg).folder, TINY_LLM_MARKER, "the tiny LLM")


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
