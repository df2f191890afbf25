"""docs/howto/add-a-dataset-reader.md: its reader, run as written, reads what the page says."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from howto_pages import registry_copy

import distillcaps.data.readers  # noqa: F401  (registers the shipped readers in the original registry)
from distillcaps.config import load_config
from distillcaps.data import records as records_module
from distillcaps.data.batches import DecodeAudio, num_samples, split_rows
from distillcaps.data.records import DatasetFormatError, read_records


def test_the_captions_csv_reader_of_the_page_groups_rows_by_file(run_page, monkeypatch, tmp_path):
    monkeypatch.setattr(records_module, "DATASET_READERS", registry_copy(records_module.DATASET_READERS))
    run_page("add-a-dataset-reader.md")
    (tmp_path / "dev").mkdir()
    for name in ("a.wav", "b.wav"):  # 32 kHz on disk: the dataset resamples to 16 kHz
        sf.write(tmp_path / "dev" / name, np.full(32_000, 0.1, dtype="float32"), 32_000)
    (tmp_path / "dev.csv").write_text(
        "file_name,caption\na.wav,A dog barks.\nb.wav,Rain falls.\na.wav,A dog is barking.\n"
    )
    records = read_records(tmp_path, "captions_csv", "dev")
    assert [(r.fname, r.captions, r.index) for r in records] == [
        ("a.wav", ["A dog barks.", "A dog is barking."], 0),
        ("b.wav", ["Rain falls."], 1),
    ]
    assert records[0].path == tmp_path / "dev" / "a.wav" and records[0].dataset == "captions_csv"

    overrides = [f"data.dataset_dir={tmp_path}", "data.dataset_format=captions_csv", "data.max_seconds=1.0"]
    cfg = load_config("tiny", overrides)  # the registered name is a valid config value as it is
    train = read_records(tmp_path, cfg.data.dataset_format, cfg.data.train_subset)
    rows = split_rows(train, {r.fname: [] for r in train}, per="caption")
    assert len(rows) == 3 and rows[0]["caption"] == "A dog barks."  # one training row per caption
    batch = DecodeAudio(cfg.data.sample_rate, num_samples(cfg), random_crop=False)(
        {"path": np.array([rows[0]["path"]])}
    )
    assert batch["audio"].shape == (1, 16_000)  # 16 kHz, resampled from the 32 kHz file

    (tmp_path / "dev.csv").write_text("file,caption\na.wav,x\n")
    with pytest.raises(DatasetFormatError, match="missing column\\(s\\) file_name"):
        read_records(tmp_path, "captions_csv", "dev")
