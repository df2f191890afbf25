"""Batch captioning through Ray Data: a folder with one corrupt file, a manifest, safe output paths."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from serving_helpers import encode, tone

from distillcaps.cli import main
from distillcaps.serving.batch import output_paths, read_inputs
from distillcaps.serving.captioner import Captioner
from distillcaps.serving.model_store import resolve_model
from distillcaps.serving.upload import AudioLimits, decode_audio


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def audio_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "clips"
    (folder / "sub").mkdir(parents=True)
    (folder / "a_low.wav").write_bytes(encode(tone(100.0)))
    (folder / "b_high.flac").write_bytes(encode(tone(3000.0, 22_050, 1.0, 2), 22_050, "FLAC"))
    (folder / "sub" / "c_middle.ogg").write_bytes(encode(tone(440.0), fmt="OGG"))
    corrupt = encode(tone())
    (folder / "d_corrupt.wav").write_bytes(corrupt[: len(corrupt) // 3])
    (folder / "notes.txt").write_text("not an input")
    return folder


def test_caption_batch_folder_with_a_corrupt_file(local_ray, tiny_checkpoints, audio_folder, tmp_path):
    out = tmp_path / "out" / "predictions.csv"
    argv = ["caption-batch", str(tiny_checkpoints["v1"]), str(audio_folder), "--out", str(out)]
    argv += ["--batch-size", "2", "--concurrency", "1"]

    assert main(argv) == 0

    predictions = read_csv(out)
    errors = read_csv(out.parent / "predictions_errors.csv")
    captioner = Captioner.from_uri(str(tiny_checkpoints["v1"]))
    limits = AudioLimits()
    files = ["a_low.wav", "b_high.flac", "sub/c_middle.ogg"]
    assert [row["file_name"] for row in predictions] == files
    for row in predictions:
        wave = decode_audio((audio_folder / row["file_name"]).read_bytes(), limits).waveform
        assert row["caption_predicted"] == captioner.caption([wave])[0]
    assert [row["file_name"] for row in errors] == ["d_corrupt.wav"]
    assert "truncated" in errors[0]["error"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["predictions.csv", "predictions_errors.csv"]


def test_manifest_inputs_resolve_relative_to_the_manifest(tmp_path):
    (tmp_path / "x.wav").write_bytes(encode(tone()))
    manifest = tmp_path / "list.jsonl"
    manifest.write_text(
        json.dumps({"path": "x.wav"}) + "\n\n" + json.dumps({"path": "/abs/y.wav", "file_name": "y"})
    )

    inputs = read_inputs(manifest)

    assert [(i.file_name, i.path) for i in inputs] == [
        ("x.wav", str(tmp_path / "x.wav")),
        ("y", "/abs/y.wav"),
    ]
    (tmp_path / "bad.jsonl").write_text('{"file": "x.wav"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: expected a JSON object with a 'path'"):
        read_inputs(tmp_path / "bad.jsonl")


def test_output_paths_never_escape_the_out_folder(tmp_path):
    predictions, errors = output_paths(tmp_path / "p.csv")
    assert errors == (tmp_path / "p_errors.csv").resolve()
    assert output_paths(tmp_path / "p.csv", "errs/e.csv")[1] == (tmp_path / "errs" / "e.csv").resolve()
    for escaping in ("../e.csv", "/tmp/e.csv", "p.csv"):
        with pytest.raises(ValueError, match="inside --out's folder"):
            output_paths(tmp_path / "p.csv", escaping)
    with pytest.raises(ValueError, match="must name a .csv file"):
        output_paths(tmp_path / "predictions")


def test_local_checkpoint_dirs_resolve_with_content_versions(tmp_path):
    from standin_backend import write_standin_checkpoint

    one = resolve_model(str(write_standin_checkpoint(tmp_path / "one", "v1")))
    two = resolve_model(str(write_standin_checkpoint(tmp_path / "two", "v2")))

    assert one.name == "one" and one.path == tmp_path / "one"
    assert one.version.startswith("local-") and one.version != two.version
    with pytest.raises(FileNotFoundError, match="not a checkpoint directory"):
        resolve_model(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        resolve_model(str(tmp_path / "empty"))


def test_a_rerun_skips_finished_files_and_errors_go_to_a_new_subfolder(
    local_ray, tiny_checkpoints, audio_folder, tmp_path
):
    out = tmp_path / "out" / "predictions.csv"
    out.parent.mkdir()
    # an interrupted earlier run had finished one file
    earlier = {"file_name": "a_low.wav", "caption_predicted": "from the earlier run", "error": ""}
    (out.parent / "predictions.progress.jsonl").write_text(json.dumps(earlier) + "\n" + '{"file_na')
    argv = ["caption-batch", str(tiny_checkpoints["v1"]), str(audio_folder), "--out", str(out)]

    assert main([*argv, "--errors", "errs/e.csv", "--batch-size", "2"]) == 0

    predictions = {row["file_name"]: row["caption_predicted"] for row in read_csv(out)}
    assert predictions["a_low.wav"] == "from the earlier run"  # not captioned again
    assert set(predictions) == {"a_low.wav", "b_high.flac", "sub/c_middle.ogg"}
    assert [row["file_name"] for row in read_csv(out.parent / "errs" / "e.csv")] == ["d_corrupt.wav"]
    assert not (out.parent / "predictions.progress.jsonl").exists()


def test_a_batch_of_only_bad_files_completes_and_lists_them_all(local_ray, tiny_checkpoints, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "short.wav").write_bytes(encode(tone(seconds=94 / 16_000)))
    (folder / "text.wav").write_text("not audio")
    (folder / "nine.wav").write_bytes(encode(tone(channels=9)))
    out = tmp_path / "p.csv"

    assert main(["caption-batch", str(tiny_checkpoints["v1"]), str(folder), "--out", str(out)]) == 0

    assert read_csv(out) == []
    errors = {row["file_name"]: row["error"] for row in read_csv(tmp_path / "p_errors.csv")}
    assert set(errors) == {"nine.wav", "short.wav", "text.wav"}
    assert "minimum is 0.1 s" in errors["short.wav"] and "9 channels" in errors["nine.wav"]


def test_duplicate_manifest_names_are_refused(tmp_path):
    (tmp_path / "x.wav").write_bytes(encode(tone()))
    manifest = tmp_path / "list.jsonl"
    manifest.write_text(json.dumps({"path": "x.wav"}) + "\n" + json.dumps({"path": "x.wav"}) + "\n")
    with pytest.raises(ValueError, match=r"1 file_name\(s\) appear more than once \('x.wav'\)"):
        read_inputs(manifest)
