"""The caption datastore: every distinct caption of a corpus, embedded once, with where it came from.

On disk (one folder):
    manifest.json    {"identity": "<clap backend>:<checkpoint hash>", "subset": ..., "count": M, "dim": E}
    vectors.npy      (M, E) float32, L2-normalised text embeddings
    captions.jsonl   one line per caption:
                     {"caption", "source_fname", "dataset", "sources": [resolved audio path, ...]}

Identical caption texts (after case/space/final-period normalisation) are collapsed into one
entry that remembers every source clip, so the leakage guard can drop it for any of them. A clip
is its resolved audio file, not its (dataset, name): two subsets may reuse a name for different
files, and one file may appear under two names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST = "manifest.json"
VECTORS = "vectors.npy"
CAPTIONS = "captions.jsonl"

ClipKey = str  # a clip: its audio file's resolved path, the same whichever subset or name lists it


class EncoderMismatchError(ValueError):
    """A datastore embedded with one CLAP was asked to serve queries from another."""


def caption_key(caption: str) -> str:
    """What makes two captions 'the same text': case, spacing and a final period do not count."""
    return re.sub(r"\s+", " ", caption.strip().lower()).rstrip(" .")


def clip_key(record: Any) -> ClipKey:
    return str(Path(record.path).resolve())


@dataclass
class CaptionDatastore:
    identity: str  # the CLAP that embedded the captions
    subset: str
    captions: list[str]  # (M,) distinct caption texts
    sources: list[list[ClipKey]]  # (M,) clips each caption belongs to
    vectors: np.ndarray  # (M, E) float32
    # (M,) (dataset, fname) of each caption's first clip; None: not known (a store built by hand)
    first_sources: list[tuple[str, str]] | None = None

    def __post_init__(self) -> None:
        if self.first_sources is None:
            self.first_sources = [("", "")] * len(self.captions)
        sizes = (len(self.captions), len(self.sources), len(self.vectors), len(self.first_sources))
        if len(set(sizes)) != 1:
            raise ValueError(
                f"datastore: {sizes[0]} captions, {sizes[1]} sources, {sizes[2]} vectors, "
                f"{sizes[3]} first sources"
            )

    def __len__(self) -> int:
        return len(self.captions)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    # --- building ---------------------------------------------------------------------------

    @classmethod
    def build(cls, clap: Any, records: Sequence[Any], subset: str, batch_size: int = 256) -> CaptionDatastore:
        """Collapse duplicate captions of ``records``, then embed each distinct one with ``clap``."""
        captions, sources, first = collapse_captions(records)
        if not captions:
            raise ValueError(f"datastore: subset {subset!r} has no captions")
        chunks = [clap.embed_text(captions[i : i + batch_size]) for i in range(0, len(captions), batch_size)]
        vectors = np.concatenate([c.numpy() for c in chunks]).astype(np.float32)
        return cls(clap.identity, subset, captions, sources, vectors, first)

    # --- persistence ------------------------------------------------------------------------

    def save(self, directory: Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / VECTORS, self.vectors)
        with open(directory / CAPTIONS, "w") as f:
            for caption, srcs, (dataset, fname) in zip(
                self.captions, self.sources, self.first_sources, strict=True
            ):
                row = {"caption": caption, "source_fname": fname, "dataset": dataset, "sources": srcs}
                f.write(json.dumps(row) + "\n")
        manifest = {"identity": self.identity, "subset": self.subset, "count": len(self), "dim": self.dim}
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=2))  # written last: marks it complete
        return directory

    @classmethod
    def load(cls, directory: Path, expected_identity: str | None = None) -> CaptionDatastore:
        directory = Path(directory)
        manifest_path = directory / MANIFEST
        if not manifest_path.is_file():
            raise FileNotFoundError(f"{directory}: not a caption datastore (no {MANIFEST})")
        manifest = json.loads(manifest_path.read_text())
        check_identity(manifest["identity"], expected_identity, directory)
        rows = [json.loads(line) for line in (directory / CAPTIONS).read_text().splitlines() if line]
        vectors = np.load(directory / VECTORS)
        return cls(
            identity=manifest["identity"],
            subset=manifest["subset"],
            captions=[r["caption"] for r in rows],
            sources=[list(r["sources"]) for r in rows],
            vectors=vectors.astype(np.float32, copy=False),
            first_sources=[(r["dataset"], r["source_fname"]) for r in rows],
        )


def check_identity(stored: str, expected: str | None, where: Path) -> None:
    if expected is not None and stored != expected:
        raise EncoderMismatchError(
            f"{where}: datastore was embedded with {stored!r}, but the configured CLAP is {expected!r}; "
            "rebuild it with `distillcaps index build` for this encoder"
        )


def collapse_captions(
    records: Sequence[Any],
) -> tuple[list[str], list[list[ClipKey]], list[tuple[str, str]]]:
    """-> distinct captions (first spelling kept, first-seen order) and, for each, its source clips
    and the (dataset, fname) of the first of them."""
    position: dict[str, int] = {}
    captions: list[str] = []
    sources: list[list[ClipKey]] = []
    first: list[tuple[str, str]] = []
    for record in records:
        for caption in record.captions:
            key = caption_key(caption)
            if not key:
                continue
            if key not in position:
                position[key] = len(captions)
                captions.append(caption.strip())
                sources.append([])
                first.append((str(record.dataset), str(record.fname)))
            srcs = sources[position[key]]
            if clip_key(record) not in srcs:
                srcs.append(clip_key(record))
    return captions, sources, first
