"""AudioCaps: ``{train,val,test}.csv`` with ``audiocap_id,youtube_id,start_time,caption``.

Train has one caption per row and clip, val/test five rows per clip; rows are grouped into one
record per clip (youtube_id + start_time, in order of first appearance).

The audio folder layouts users already have are all accepted:
- aac-datasets: ``<root>/AUDIOCAPS/{train,val,test}.csv`` with audio in
  ``<root>/AUDIOCAPS/audio_32000Hz/<subset>/<youtube_id>_<start_time>.flac``
  (``dataset_dir`` may be ``<root>`` or ``<root>/AUDIOCAPS``; any ``audio_*Hz`` folder);
- flat: ``<dataset_dir>/<subset>/<youtube_id>.wav`` or ``Y<youtube_id>.wav`` (AudioSet style),
  also under ``<dataset_dir>/audio/<subset>/``; ``.wav`` or ``.flac``.
A clip whose file is in none of these places keeps the first expected path, so loading it reports
the missing file by name (or skips it under ``on_bad_audio=skip``).
"""

from __future__ import annotations

import csv
from pathlib import Path

from distillcaps.data.records import DATASET_READERS, ClipRecord, DatasetFormatError

AUDIOCAPS_SUBSETS = ("train", "val", "test")
REQUIRED_COLUMNS = ("audiocap_id", "youtube_id", "start_time", "caption")
AUDIO_EXTENSIONS = ("wav", "flac")


@DATASET_READERS.register("audiocaps")
def read_audiocaps(dataset_dir: Path, subset: str) -> list[ClipRecord]:
    if subset not in AUDIOCAPS_SUBSETS:
        raise DatasetFormatError(
            f"unknown AudioCaps subset {subset!r}; valid subsets: {', '.join(AUDIOCAPS_SUBSETS)}"
        )
    root = audiocaps_root(dataset_dir, subset)
    csv_path = root / f"{subset}.csv"
    clips = read_caption_rows(csv_path)
    audio_dirs = [d for d in candidate_audio_dirs(root, subset) if d.is_dir()]
    # One listing per folder instead of a stat per clip: AudioCaps train has ~50k clips.
    on_disk: dict[str, Path] = {}
    for folder in reversed(audio_dirs):  # earlier folders win
        on_disk.update({p.name: p for p in folder.iterdir()})
    fallback_dir = audio_dirs[0] if audio_dirs else root / subset

    records = []
    for (youtube_id, start_time), (audiocap_ids, captions) in clips.items():
        names = candidate_file_names(youtube_id, start_time)
        found = next((name for name in names if name in on_disk), None)
        path = on_disk[found] if found else fallback_dir / f"{youtube_id}.wav"
        records.append(
            ClipRecord(
                fname=path.name,
                path=path,
                captions=captions,
                dataset="audiocaps",
                subset=subset,
                index=len(records),
                extra={"youtube_id": youtube_id, "start_time": start_time, "audiocap_ids": audiocap_ids},
            )
        )
    return records


def audiocaps_root(dataset_dir: Path, subset: str) -> Path:
    nested = dataset_dir / "AUDIOCAPS"  # aac-datasets puts everything under this folder
    if not (dataset_dir / f"{subset}.csv").is_file() and (nested / f"{subset}.csv").is_file():
        return nested
    return dataset_dir


def read_caption_rows(csv_path: Path) -> dict[tuple[str, str], tuple[list[str], list[str]]]:
    """(youtube_id, start_time) -> (audiocap_ids, captions), in order of first appearance."""
    if not csv_path.is_file():
        raise FileNotFoundError(f"AudioCaps captions file not found: {csv_path}")
    clips: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
    with csv_path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetFormatError(f"{csv_path}: missing column(s) {', '.join(missing)}")
        for row_number, row in enumerate(reader, start=2):
            youtube_id = (row["youtube_id"] or "").strip()
            caption = (row["caption"] or "").strip()
            if not youtube_id or not caption:
                raise DatasetFormatError(f"{csv_path} line {row_number}: empty youtube_id or caption")
            key = (youtube_id, (row["start_time"] or "").strip())
            ids, captions = clips.setdefault(key, ([], []))
            ids.append((row["audiocap_id"] or "").strip())
            captions.append(caption)
    return clips


def candidate_audio_dirs(root: Path, subset: str) -> list[Path]:
    return [
        root / subset,
        root / "audio" / subset,
        *(d / subset for d in sorted(root.glob("audio_*Hz"))),
    ]


def candidate_file_names(youtube_id: str, start_time: str) -> list[str]:
    stems = [f"{youtube_id}_{start_time}", youtube_id, f"Y{youtube_id}"]
    return [f"{stem}.{ext}" for stem in stems for ext in AUDIO_EXTENSIONS]
