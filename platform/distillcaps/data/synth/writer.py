"""Writes the synthetic benchmark in the Clotho v2 layout, plus the ground truth behind each caption.

    out/development/*.wav  out/clotho_captions_development.csv   (dev)
    out/validation/*.wav   out/clotho_captions_validation.csv    (val)
    out/evaluation/*.wav   out/clotho_captions_evaluation.csv    (eval)
    out/scenes.jsonl       one line per clip: subset, file_name, relation, events, captions
    out/synth.json         the settings that produced it

Each clip has its own random stream seeded by (seed, domain, subset, index), so output is
byte-identical for the same settings and a clip does not change when other subsets grow.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from distillcaps.data.readers.clotho import CAPTION_COLUMNS, CLOTHO_SPLITS
from distillcaps.data.synth.captions import CaptionWriter
from distillcaps.data.synth.domains import DOMAINS
from distillcaps.data.synth.render import render_scene
from distillcaps.data.synth.scene import compose_scene

SYNTH_VERSION = 2  # bump when the generator's output changes, so cached copies are regenerated
SAMPLE_RATE = 16_000
SUBSET_IDS = {"dev": 0, "val": 1, "eval": 2}


@dataclass(frozen=True)
class SynthSettings:
    seed: int = 0
    num_train: int = 600
    num_val: int = 100
    num_eval: int = 150
    domain: str = "outdoor"
    clip_seconds: float = 5.0

    def subset_sizes(self) -> dict[str, int]:
        return {"dev": self.num_train, "val": self.num_val, "eval": self.num_eval}


def write_synthetic_dataset(out_dir: str | Path, settings: SynthSettings, workers: int = 1) -> Path:
    """Generate every clip; ``workers`` > 1 renders in that many processes (same bytes either way)."""
    DOMAINS.get(settings.domain)  # unknown domain: fail before any work
    if settings.clip_seconds < 3.0:
        raise ValueError(
            f"synth clip_seconds must be >= 3.0 (two events and a gap), got {settings.clip_seconds}"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for subset in SUBSET_IDS:
        (out_dir / CLOTHO_SPLITS[subset]).mkdir(exist_ok=True)
    jobs = [
        ClipJob(settings, subset, index, str(out_dir))
        for subset, size in settings.subset_sizes().items()
        for index in range(size)
    ]
    if workers > 1 and len(jobs) > 1:
        # spawn, not fork: callers may hold threads (torch, Ray) that fork would copy half-alive.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            lines = list(pool.map(make_clip, jobs, chunksize=16))
    else:
        lines = [make_clip(job) for job in jobs]

    with (out_dir / "scenes.jsonl").open("w", encoding="utf-8") as scenes_file:
        for line in lines:
            scenes_file.write(json.dumps(line) + "\n")
    for subset in SUBSET_IDS:
        split = CLOTHO_SPLITS[subset]
        with (out_dir / f"clotho_captions_{split}.csv").open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["file_name", *CAPTION_COLUMNS])
            writer.writerows(
                [line["file_name"], *line["captions"]] for line in lines if line["subset"] == subset
            )
    meta = {"generator": "distillcaps.data.synth", "version": SYNTH_VERSION, **asdict(settings)}
    (out_dir / "synth.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out_dir


@dataclass(frozen=True)
class ClipJob:
    settings: SynthSettings
    subset: str
    index: int
    out_dir: str


def make_clip(job: ClipJob) -> dict:
    """Compose, render, caption and write one clip; returns its scenes.jsonl line."""
    settings = job.settings
    domain = DOMAINS.get(settings.domain)
    rng = np.random.default_rng(
        [settings.seed, zlib.crc32(domain.name.encode()), SUBSET_IDS[job.subset], job.index]
    )
    scene = compose_scene(rng, domain, settings.clip_seconds)
    audio = render_scene(rng, scene, domain, SAMPLE_RATE)
    captions = CaptionWriter(rng, domain).captions(scene)
    file_name = f"{domain.name}_{job.subset}_{job.index:05d}.wav"
    pcm = np.round(audio * 32767).astype(np.int16)
    sf.write(Path(job.out_dir) / CLOTHO_SPLITS[job.subset] / file_name, pcm, SAMPLE_RATE, subtype="PCM_16")
    return {"subset": job.subset, "file_name": file_name, **scene.to_json(), "captions": captions}
