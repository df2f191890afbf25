"""Clip records: one audio file with all its reference captions, read from a dataset folder.

    records = read_records("data/clotho", "clotho", "dev")    # one ClipRecord per clip

Formats are chosen through the ``DATASET_READERS`` registry (clotho, audiocaps, jsonl); a reader
is ``reader(dataset_dir: Path, subset: str) -> list[ClipRecord]``. Readers only read metadata and
say where each file should be; whether the audio is usable is decided by ``check_audio`` before a
run (``distillcaps.data.usable``) or when it is loaded, so a missing file is reported by name there.
Clip names are unique within a subset (``DatasetFormatError`` naming both files otherwise).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from distillcaps.registry import Registry


@dataclass
class ClipRecord:
    fname: str  # the clip's name in its dataset (DCASE CSVs and retrieval caches key on it)
    path: Path  # where the audio file is (or should be)
    captions: list[str]  # every reference caption of the clip
    dataset: str  # clotho | audiocaps | jsonl, as in aac-datasets' "dataset" field
    subset: str  # Clotho dev/val/eval, AudioCaps train/val/test, or the JSONL manifest's stem
    index: int  # position within the subset
    extra: dict = field(default_factory=dict)  # format-specific metadata (e.g. AudioCaps youtube_id)


DatasetReader = Callable[[Path, str], list[ClipRecord]]
DATASET_READERS: Registry[DatasetReader] = Registry("dataset format")


class DatasetFormatError(ValueError):
    """A dataset folder does not match its declared format; the message names the file and what is wrong."""


def read_records(dataset_dir: str | Path, dataset_format: str, subset: str) -> list[ClipRecord]:
    """Every clip of ``subset`` in ``dataset_dir``, read with the ``dataset_format`` reader."""
    import distillcaps.data.readers  # noqa: F401  # lazy: they register on import and import this module

    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {dataset_dir}")
    records = DATASET_READERS.get(dataset_format)(dataset_dir, subset)
    check_unique_names(records, f"{dataset_format} subset {subset!r} of {dataset_dir}")
    return records


def check_unique_names(records: list[ClipRecord], where: str) -> None:
    """A clip's name keys its retrieved captions, cached features and predictions row: two clips
    sharing one would silently get each other's."""
    first: dict[str, ClipRecord] = {}
    for record in records:
        seen = first.setdefault(record.fname, record)
        if seen is not record:
            raise DatasetFormatError(
                f"{where}: clip name {record.fname!r} is used twice, by {seen.path} (clip {seen.index}) "
                f"and {record.path} (clip {record.index})"
            )


def clean_captions(raw: list[str | None]) -> list[str]:
    """Strip whitespace and drop empty cells (CSV exports often leave trailing blanks)."""
    return [c.strip() for c in raw if c is not None and c.strip()]
