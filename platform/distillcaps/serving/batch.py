"""Caption whole folders or JSONL manifests through Ray Data, into the DCASE predictions CSV.

    inputs (folder | manifest.jsonl) -> ray.data.from_items -> map_batches(CaptionActor pool) -> CSVs

Each actor loads the Captioner once (``__init__``) and captions a batch of files per call. A file that
cannot be read or decoded, or that the model fails on, becomes a row of the errors CSV
(``file_name,error``) instead of stopping the job. Both CSVs are written inside ``--out``'s folder,
never elsewhere.

Nothing finished is lost: each result is appended to ``<out>.progress.jsonl`` as its batch completes,
and a rerun with the same ``--out`` skips the files found there. The CSVs are written, in input
order, when every file has a result; the progress file is then removed.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from distillcaps.serving.captioner import Captioner, caption_each
from distillcaps.serving.config import ServingConfig
from distillcaps.serving.options import DecodingOptions
from distillcaps.serving.upload import AudioLimits, UploadError, decode_audio

AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".mp3"})


@dataclass(frozen=True)
class BatchInput:
    index: int  # input order, kept in the CSV
    file_name: str  # what the CSV's file_name column says
    path: str


@dataclass(frozen=True)
class BatchResult:
    predictions_csv: Path
    errors_csv: Path
    num_inputs: int
    num_captioned: int
    num_failed: int


def read_inputs(source: str | Path) -> list[BatchInput]:
    """A folder (audio files found recursively, sorted) or a JSONL manifest of {"path", "file_name"?}."""
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
        return [BatchInput(i, p.relative_to(source).as_posix(), str(p)) for i, p in enumerate(files)]
    if source.is_file() and source.suffix.lower() in (".jsonl", ".json"):
        return _refuse_duplicates(_read_manifest(source), source)
    raise FileNotFoundError(f"batch input {source}: not a folder nor a .jsonl manifest")


def _refuse_duplicates(inputs: list[BatchInput], source: Path) -> list[BatchInput]:
    """Two rows of the CSV with one file_name could not be told apart."""
    seen: dict[str, int] = {}
    duplicates = sorted(
        {item.file_name for item in inputs if seen.setdefault(item.file_name, item.index) != item.index}
    )
    if duplicates:
        shown = ", ".join(repr(name) for name in duplicates[:5])
        raise ValueError(
            f"{source}: {len(duplicates)} file_name(s) appear more than once ({shown}): give each row "
            "a distinct file_name"
        )
    return inputs


def _read_manifest(manifest: Path) -> list[BatchInput]:
    inputs = []
    for line_no, line in enumerate(manifest.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            path = Path(row["path"])
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{manifest}:{line_no}: expected a JSON object with a 'path' ({err})") from None
        if not path.is_absolute():
            path = manifest.parent / path  # relative to the manifest, like dataset manifests
        file_name = str(row.get("file_name") or row.get("fname") or path.name)
        inputs.append(BatchInput(len(inputs), file_name, str(path)))
    return inputs


def output_paths(out: str | Path, errors: str | Path | None = None) -> tuple[Path, Path]:
    """(predictions csv, errors csv); the errors file must stay inside the predictions' folder."""
    out = Path(out)
    if out.suffix.lower() != ".csv":
        raise ValueError(f"--out {out}: must name a .csv file")
    folder = out.parent.resolve()
    errors_path = Path(errors) if errors else Path(f"{out.stem}_errors.csv")
    resolved = (folder / errors_path).resolve() if not errors_path.is_absolute() else errors_path.resolve()
    if not resolved.is_relative_to(folder) or resolved == out.resolve():
        raise ValueError(f"--errors {errors_path}: must be a different file inside --out's folder {folder}")
    return folder / out.name, resolved


class CaptionActor:
    """One model replica of the Ray Data actor pool: loads once, captions a batch of files per call."""

    def __init__(self, serving: dict[str, Any], rag: bool, decoding: dict[str, Any]) -> None:
        import torch

        torch.set_num_threads(1)  # one thread per actor; the pool gives the parallelism
        self.cfg = ServingConfig.from_dict(serving)
        self.captioner = Captioner.load(self.cfg)
        self.rag = rag
        self.decoding = DecodingOptions(**decoding)
        self.limits = AudioLimits(max_bytes=self.cfg.max_upload_bytes, max_duration_s=self.cfg.max_duration_s)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [str(n) for n in batch["file_name"]]
        captions = [""] * len(names)
        errors = [""] * len(names)
        good_rows, waves = [], []
        for row, (name, path) in enumerate(zip(names, batch["path"])):
            try:
                size = Path(str(path)).stat().st_size
                if size > self.limits.max_bytes:  # before reading it
                    raise UploadError(
                        413, "too_large", f"{name}: {size} bytes is over {self.limits.max_bytes}"
                    )
                waves.append(decode_audio(Path(str(path)).read_bytes(), self.limits, name=name).waveform)
                good_rows.append(row)
            except (UploadError, OSError) as err:
                errors[row] = str(err)
        if waves:
            texts = caption_each(self.captioner, waves, self.rag, self.decoding)
            for row, text in zip(good_rows, texts, strict=True):
                if text is None:
                    errors[row] = f"{names[row]}: the model failed on this clip"
                else:
                    captions[row] = text
        return {
            "index": batch["index"],
            "file_name": np.array(names, dtype=object),
            "caption_predicted": np.array(captions, dtype=object),
            "error": np.array(errors, dtype=object),
        }


def caption_batch(
    serving: ServingConfig,
    source: str | Path,
    out: str | Path,
    *,
    rag: bool = False,
    errors: str | Path | None = None,
    decoding: DecodingOptions | None = None,
    concurrency: int = 1,
    batch_size: int = 8,
    num_cpus: float = 0.5,
) -> BatchResult:
    """Caption every input with a pool of ``concurrency`` model actors; write the CSVs; count outcomes."""

    predictions_csv, errors_csv = output_paths(out, errors)
    inputs = read_inputs(source)
    if not inputs:
        raise ValueError(f"batch input {source}: no audio files found")
    if rag:
        serving = serving.replace(retrieval=True)
    predictions_csv.parent.mkdir(parents=True, exist_ok=True)
    errors_csv.parent.mkdir(parents=True, exist_ok=True)
    progress = predictions_csv.with_suffix(".progress.jsonl")
    done = read_progress(progress, inputs)
    todo = [item for item in inputs if item.file_name not in done]
    if todo:
        print(f"captioning {len(todo)} files ({len(done)} already done, in {progress})", flush=True)
        for row in caption_rows(serving, todo, rag, decoding, concurrency, batch_size, num_cpus):
            done[row["file_name"]] = row
            with progress.open("a") as handle:  # appended as each batch completes: a crash loses none
                handle.write(json.dumps(row) + "\n")
    rows = [done[item.file_name] for item in inputs]
    ok = [r for r in rows if not r["error"]]
    failed = [r for r in rows if r["error"]]
    _write_csv(predictions_csv, ["file_name", "caption_predicted"], ok)
    _write_csv(errors_csv, ["file_name", "error"], failed)
    progress.unlink(missing_ok=True)
    return BatchResult(predictions_csv, errors_csv, len(inputs), len(ok), len(failed))


def read_progress(progress: Path, inputs: list[BatchInput]) -> dict[str, dict[str, Any]]:
    """file_name -> result row of an earlier, interrupted run with the same --out (for these inputs)."""
    if not progress.is_file():
        return {}
    wanted = {item.file_name for item in inputs}
    done = {}
    for line in progress.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # the line being written when the run stopped
            continue
        if row.get("file_name") in wanted:
            done[row["file_name"]] = row
    return done


def caption_rows(
    serving: ServingConfig,
    inputs: list[BatchInput],
    rag: bool,
    decoding: DecodingOptions | None,
    concurrency: int,
    batch_size: int,
    num_cpus: float,
):
    """Result rows ({"file_name", "caption_predicted", "error"}) as the actor pool finishes them."""
    import ray

    dataset = ray.data.from_items([dataclasses.asdict(item) for item in inputs])
    captioned = dataset.map_batches(
        CaptionActor,
        fn_constructor_kwargs={
            "serving": serving.to_dict(),
            "rag": rag,
            "decoding": dataclasses.asdict(decoding or DecodingOptions()),
        },
        batch_size=batch_size,
        batch_format="numpy",
        concurrency=concurrency,
        num_cpus=num_cpus,
    )
    for batch in captioned.iter_batches(batch_size=None, batch_format="numpy"):
        for name, caption, error in zip(batch["file_name"], batch["caption_predicted"], batch["error"]):
            yield {"file_name": str(name), "caption_predicted": str(caption), "error": str(error)}


def _write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row[c] for c in columns])
