"""The clips a run uses: every record of a subset whose audio passes ``check_audio``.

    kept, skipped = usable_records(cfg, "dev")     # data.on_bad_audio: "error" raises, "skip" drops
    print_skipped(skipped, "dev")                  # names every dropped file and why
    log_skipped(uri, run_id, skipped)              # MLflow: param data.skipped_files, skipped_files.json

Every stage that reads audio takes its clips from here: the retrieval lists, the frozen-feature
cache, the Ray Data pipeline and the evaluation, so with ``skip`` they all see the same clips. The
check happens once, before Ray starts: a bad file is found up front, never mid-epoch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distillcaps.data.paths import resolve_dataset_dir
from distillcaps.data.records import ClipRecord, read_records
from distillcaps.tracking import RunLogger

if TYPE_CHECKING:
    from distillcaps.config import Config

SKIPPED_PARAM = "data.skipped_files"  # MLflow param: how many clips with bad audio a run dropped
SKIPPED_ARTIFACT = "skipped_files.json"  # MLflow artifact: [{"fname", "path", "reason"}, ...]


@dataclass
class SkippedFile:
    fname: str
    path: str
    reason: str


def usable_records(cfg: Config, subset: str) -> tuple[list[ClipRecord], list[SkippedFile]]:
    """The configured subset's clips, checked under ``cfg.data.on_bad_audio``."""
    records = read_records(resolve_dataset_dir(cfg), cfg.data.dataset_format, subset)
    return check_records(records, cfg.data.on_bad_audio)


def check_records(records: list[ClipRecord], on_bad_audio: str) -> tuple[list[ClipRecord], list[SkippedFile]]:
    """ "error" raises BadAudioError naming the first bad file; "skip" drops bad clips and returns
    them, so the caller can count and report them."""
    from distillcaps.data.audio import BadAudioError, check_audio  # lazy: torch, for a check that may not run

    kept, skipped = [], []
    for record in records:
        try:
            check_audio(record.path)
        except BadAudioError as err:
            if on_bad_audio != "skip":
                raise BadAudioError(
                    err.path, f"{err.reason} (set data.on_bad_audio=skip to drop such clips and count them)"
                ) from None
            skipped.append(SkippedFile(record.fname, str(record.path), err.reason))
            continue
        kept.append(record)
    return kept, skipped


def files_identity(records: list[ClipRecord]) -> list[list[Any]]:
    """[dataset, fname, resolved path, size, mtime_ns, captions] per clip (None, None for a missing
    file): what a cache built from these clips' audio depends on, including which of them
    ``check_records`` keeps, without reading any audio."""
    out = []
    for r in records:
        path = Path(r.path).resolve()
        try:
            stat = path.stat()
            size, mtime = stat.st_size, stat.st_mtime_ns
        except OSError:
            size = mtime = None
        out.append([r.dataset, r.fname, str(path), size, mtime, list(r.captions)])
    return out


def print_skipped(skipped: list[SkippedFile], where: str) -> None:
    """Name every skipped file on stdout (the CLI's output), one line each."""
    if not skipped:
        return
    print(f"skipped {len(skipped)} clips with bad audio in {where} (data.on_bad_audio=skip):", flush=True)
    for s in skipped:
        print(f"  {s.path}: {s.reason}", flush=True)


def log_skipped(uri: str, run_id: str, skipped: list[SkippedFile], subset: str | None = None) -> None:
    """The count as an MLflow param (``data.skipped_files``, or ``data.skipped_files.<subset>`` for
    an evaluation's subset) and the list as an artifact (``skipped_files[-<subset>].json``)."""
    from mlflow.exceptions import MlflowException

    param = SKIPPED_PARAM if subset is None else f"{SKIPPED_PARAM}.{subset}"
    logger = RunLogger(uri, run_id)
    try:
        logger.log_params({param: len(skipped)})
    except MlflowException as err:  # a resumed run whose files changed since: params are fixed
        print(f"{param}={len(skipped)} not logged: {err}", flush=True)
    artifact = SKIPPED_ARTIFACT if subset is None else SKIPPED_ARTIFACT.replace(".json", f"-{subset}.json")
    logger.log_dict([asdict(s) for s in skipped], artifact)
