"""A generic manifest: ``<dataset_dir>/<subset>.jsonl``, one ``{"audio": path, "captions": [...]}`` per line.

Relative audio paths are relative to the manifest. An optional ``"fname"`` names the clip; otherwise
the audio path as written in the manifest does (unique even when folders repeat base names).
"""

from __future__ import annotations

import json
from pathlib import Path

from distillcaps.data.records import DATASET_READERS, ClipRecord, DatasetFormatError, clean_captions


@DATASET_READERS.register("jsonl")
def read_jsonl(dataset_dir: Path, subset: str) -> list[ClipRecord]:
    manifest = dataset_dir / f"{subset}.jsonl"
    if not manifest.is_file():
        available = ", ".join(sorted(p.stem for p in dataset_dir.glob("*.jsonl"))) or "none"
        raise FileNotFoundError(f"JSONL manifest not found: {manifest} (subsets here: {available})")
    records = []
    for line_number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{manifest} line {line_number}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as err:
            raise DatasetFormatError(f"{where}: not valid JSON ({err.msg})") from err
        if not isinstance(entry, dict):
            raise DatasetFormatError(f"{where}: expected an object, got {type(entry).__name__}")
        for key in ("audio", "captions"):
            if key not in entry:
                raise DatasetFormatError(f"{where}: missing key {key!r}")
        if not isinstance(entry["audio"], str):
            raise DatasetFormatError(f"{where}: 'audio' must be a path string")
        if not isinstance(entry["captions"], list) or not all(isinstance(c, str) for c in entry["captions"]):
            raise DatasetFormatError(f"{where}: 'captions' must be a list of strings")
        captions = clean_captions(entry["captions"])
        if not captions:
            raise DatasetFormatError(f"{where}: 'captions' is empty")
        audio = Path(entry["audio"])
        records.append(
            ClipRecord(
                fname=str(entry.get("fname") or entry["audio"]),
                path=audio if audio.is_absolute() else manifest.parent / audio,
                captions=captions,
                dataset="jsonl",
                subset=subset,
                index=len(records),
            )
        )
    return records
