"""Clotho v2 layout: ``{development,validation,evaluation}/*.wav`` beside
``clotho_captions_{development,validation,evaluation}.csv`` with ``file_name,caption_1..caption_5``."""

from __future__ import annotations

import csv
from pathlib import Path

from distillcaps.data.records import DATASET_READERS, ClipRecord, DatasetFormatError, clean_captions

# aac-datasets' subset names -> Clotho's folder / CSV suffix.
CLOTHO_SPLITS = {"dev": "development", "val": "validation", "eval": "evaluation"}
CAPTION_COLUMNS = [f"caption_{i}" for i in range(1, 6)]


@DATASET_READERS.register("clotho")
def read_clotho(dataset_dir: Path, subset: str) -> list[ClipRecord]:
    if subset not in CLOTHO_SPLITS:
        raise DatasetFormatError(
            f"unknown Clotho subset {subset!r}; valid subsets: {', '.join(CLOTHO_SPLITS)}"
        )
    split = CLOTHO_SPLITS[subset]
    csv_path = dataset_dir / f"clotho_captions_{split}.csv"
    if not csv_path.is_file():
        raise FileNotFoundError(f"Clotho captions file not found: {csv_path}")
    with csv_path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in ["file_name", *CAPTION_COLUMNS] if c not in header]
        if missing:
            raise DatasetFormatError(f"{csv_path}: missing column(s) {', '.join(missing)}")
        records = []
        for row_number, row in enumerate(reader, start=2):
            captions = clean_captions([row[c] for c in CAPTION_COLUMNS])
            fname = (row["file_name"] or "").strip()
            if not fname or not captions:
                raise DatasetFormatError(f"{csv_path} line {row_number}: empty file_name or no captions")
            records.append(
                ClipRecord(
                    fname=fname,
                    path=dataset_dir / split / fname,
                    captions=captions,
                    dataset="clotho",
                    subset=subset,
                    index=len(records),
                )
            )
    return records
