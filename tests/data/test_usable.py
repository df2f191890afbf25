"""distillcaps.data.usable: the clips a run uses. A truncated FLAC is found by the up-front check
(its header still claims every frame), duplicate clip names are refused naming both files, and
skip mode names every dropped file."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf

from distillcaps.config import load_config
from distillcaps.data.audio import BadAudioError, check_audio, load_audio
from distillcaps.data.records import DatasetFormatError, read_records
from distillcaps.data.usable import files_identity, print_skipped, usable_records


def write_flac(path, seconds=1.0, sr=16_000):
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, 0.3 * np.sin(2 * np.pi * 330 * t), sr, format="FLAC")
    return path


def truncate(path, keep=0.6):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def test_a_truncated_flac_is_caught_by_the_check_though_its_header_claims_every_frame(tmp_path):
    whole = write_flac(tmp_path / "whole.flac")
    cut = truncate(write_flac(tmp_path / "cut.flac"))
    assert sf.info(cut).frames == sf.info(whole).frames  # the header alone would pass it
    check_audio(whole)
    with pytest.raises(BadAudioError, match=r"cut.flac: truncated"):
        check_audio(cut)
    with pytest.raises(BadAudioError, match="cut.flac"):  # decoding it fails too, later and dearer
        load_audio(cut)


def write_manifest(root, subset, entries):
    lines = [
        json.dumps({"audio": audio, "captions": [f"{audio} sounds"], **extra}) for audio, extra in entries
    ]
    (root / f"{subset}.jsonl").write_text("\n".join(lines) + "\n")


def test_duplicate_clip_names_in_a_subset_name_both_files(tmp_path, tone):
    for folder in ("a", "b"):
        tone(tmp_path / folder / "x.wav")
    write_manifest(tmp_path, "dev", [("a/x.wav", {"fname": "x.wav"}), ("b/x.wav", {"fname": "x.wav"})])
    with pytest.raises(DatasetFormatError, match=r"'x.wav' is used twice, by .*a/x.wav .*and .*b/x.wav"):
        read_records(tmp_path, "jsonl", "dev")
    write_manifest(tmp_path, "dev", [("a/x.wav", {}), ("b/x.wav", {})])  # names default to the paths
    assert [r.fname for r in read_records(tmp_path, "jsonl", "dev")] == ["a/x.wav", "b/x.wav"]


def test_skip_mode_drops_and_names_a_deleted_wav_and_a_truncated_flac(tmp_path, tone, capsys):
    tone(tmp_path / "good.wav")
    truncate(write_flac(tmp_path / "cut.flac"))
    write_manifest(tmp_path, "dev", [("good.wav", {}), ("gone.wav", {}), ("cut.flac", {})])
    base = [f"data.dataset_dir={tmp_path}", "data.dataset_format=jsonl"]

    with pytest.raises(BadAudioError, match=r"gone.wav: file not found .*data.on_bad_audio=skip"):
        usable_records(load_config("tiny", base), "dev")
    kept, skipped = usable_records(load_config("tiny", [*base, "data.on_bad_audio=skip"]), "dev")
    assert [r.fname for r in kept] == ["good.wav"]
    assert [(s.fname, s.reason.split(":")[0]) for s in skipped] == [
        ("gone.wav", "file not found"),
        ("cut.flac", "truncated or corrupt"),
    ]
    print_skipped(skipped, "subset 'dev'")
    printed = capsys.readouterr().out
    assert "skipped 2 clips with bad audio in subset 'dev'" in printed
    assert f"{tmp_path / 'gone.wav'}: file not found" in printed and str(tmp_path / "cut.flac") in printed


def test_files_identity_follows_size_and_mtime(tmp_path, tone):
    records = read_records(*_one_clip(tmp_path, tone), "dev")
    first = files_identity(records)
    assert first == files_identity(records)
    stat = (tmp_path / "a.wav").stat()
    os.utime(tmp_path / "a.wav", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    touched = files_identity(records)
    assert touched != first and touched[0][3] == first[0][3]  # same size, new mtime
    (tmp_path / "a.wav").unlink()
    assert files_identity(records)[0][3:5] == [None, None]


def _one_clip(tmp_path, tone):
    tone(tmp_path / "a.wav")
    write_manifest(tmp_path, "dev", [("a.wav", {})])
    return tmp_path, "jsonl"
