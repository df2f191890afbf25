"""Where a config's data lives: the user's dataset folder, or the embedded synthetic set, generated once.

The synthetic set is cached under ``<data_root>/synth-<domain>-<hash of its settings>``. Generation
writes into a private temporary folder with a ``.complete`` marker written last, then renames it
into place; a process that loses the race discards its copy and uses the winner's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from distillcaps.data.synth import SYNTH_VERSION, SynthSettings, write_synthetic_dataset

if TYPE_CHECKING:  # distillcaps.config imports this package's config: no runtime cycle
    from distillcaps.config import Config

log = logging.getLogger(__name__)

COMPLETE_MARKER = ".complete"


def synth_settings(cfg: Config) -> SynthSettings:
    s = cfg.data.synth
    return SynthSettings(
        seed=s.seed,
        num_train=s.num_train,
        num_val=s.num_val,
        num_eval=s.num_eval,
        domain=s.domain,
        clip_seconds=s.clip_seconds,
    )


def synth_dir_name(settings: SynthSettings) -> str:
    payload = json.dumps({"version": SYNTH_VERSION, **asdict(settings)}, sort_keys=True)
    digest = hashlib.sha256(payload.encode()).hexdigest()[:12]
    return f"synth-{settings.domain}-{digest}"


def resolve_dataset_dir(cfg: Config) -> Path:
    """cfg.data.dataset_dir, or the synthetic set (generated on first use) when it is empty.

    Always absolute: Ray workers may run in another working directory.
    """
    if cfg.data.dataset_dir:
        path = Path(cfg.data.dataset_dir).resolve()
        if not path.is_dir():
            raise FileNotFoundError(f"data.dataset_dir does not exist: {path}")
        return path
    settings = synth_settings(cfg)
    return ensure_synthetic_dataset(Path(cfg.data.data_root).resolve(), settings)


def ensure_synthetic_dataset(data_root: Path, settings: SynthSettings) -> Path:
    target = data_root / synth_dir_name(settings)
    if (target / COMPLETE_MARKER).is_file():
        return target
    data_root.mkdir(parents=True, exist_ok=True)
    if target.exists() and not (target / COMPLETE_MARKER).is_file():
        shutil.rmtree(target, ignore_errors=True)  # not ours to finish: renames only install complete sets
    log.info("generating the synthetic data set in %s (once; cached afterwards)", target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=data_root))
    try:
        write_synthetic_dataset(staging, settings)
        (staging / COMPLETE_MARKER).write_text(json.dumps(asdict(settings)) + "\n")
        os.chmod(staging, 0o755)  # mkdtemp makes it private
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / COMPLETE_MARKER).is_file():  # not a lost race: a real failure
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def cache_dir_for(cfg: Config) -> Path:
    """cfg.data.cache_dir, or ``<dataset_dir>/.distillcaps`` (retrieval and feature caches)."""
    path = (
        Path(cfg.data.cache_dir).resolve()
        if cfg.data.cache_dir
        else resolve_dataset_dir(cfg) / ".distillcaps"
    )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # e.g. a read-only dataset folder
        raise ValueError(
            f"cannot create the cache folder {path} ({err}); set data.cache_dir to a writable folder"
        ) from err
    return path
