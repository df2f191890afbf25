"""data.on_bad_audio=skip end to end: a tiny ``distillcaps train`` and ``distillcaps evaluate`` on
data with a deleted WAV and a truncated FLAC in the training and the evaluation subsets complete,
name both files in their output and count them in the MLflow run.

Every stage that reads audio (tiny CLAP, retrieval lists, frozen features, Ray Data, evaluation)
would fail on either file, so completing at all shows each of them got the filtered clips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
from test_train_ray import SLOW_TIMEOUT_S, SMALL

from distillcaps.config import load_config
from distillcaps.data import read_records, resolve_dataset_dir


def damaged_copy(synth: Path, out: Path) -> dict[str, list[Path]]:
    """A JSONL data set over the synthetic clips in which, in dev and in eval, one WAV is deleted and
    one clip is a FLAC cut short. -> subset -> the two bad files."""
    out.mkdir()
    bad = {}
    for subset in ("dev", "val", "eval"):
        lines = []
        for i, r in enumerate(read_records(synth, "clotho", subset)):
            audio = r.path
            if subset != "val" and i == 1:  # deleted
                audio = out / f"{subset}-deleted.wav"
                audio.write_bytes(r.path.read_bytes())
                audio.unlink()
            if subset != "val" and i == 2:  # a FLAC whose last third is gone; its header still says all
                audio = out / f"{subset}-cut.flac"
                data, rate = sf.read(r.path)
                sf.write(audio, data, rate, format="FLAC")
                audio.write_bytes(audio.read_bytes()[: audio.stat().st_size * 2 // 3])
            if audio != r.path:
                bad.setdefault(subset, []).append(audio)
            lines.append(json.dumps({"audio": str(audio), "captions": r.captions, "fname": r.fname}))
        (out / f"{subset}.jsonl").write_text("\n".join(lines) + "\n")
    return bad


@pytest.mark.timeout(SLOW_TIMEOUT_S)
def test_skip_mode_trains_and_evaluates_naming_a_deleted_wav_and_a_truncated_flac(tmp_path, capsys):
    import ray
    from mlflow import MlflowClient

    from distillcaps.cli import main

    synth = resolve_dataset_dir(load_config("tiny", [f"data.data_root={tmp_path / 'synth'}", *SMALL]))
    bad = damaged_copy(synth, tmp_path / "data")
    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    data = [f"data.dataset_dir={tmp_path / 'data'}", "data.dataset_format=jsonl", "data.on_bad_audio=skip"]
    overrides = [
        *SMALL,
        *data,
        f"run_dir={tmp_path / 'runs'}",
        f"tracking.tracking_uri={db}",
        "train.num_workers=1",
        "train.cpus_per_worker=1",
        "train.epochs=1",
    ]
    try:
        assert main(["train", "--config", "tiny", *overrides]) == 0
    finally:
        ray.shutdown()
    printed = capsys.readouterr().out
    for path in bad["dev"] + bad["eval"]:  # training's subsets, then its final evaluation's
        assert str(path) in printed, path
    assert "skipped 2 clips with bad audio in subset 'dev'" in printed
    assert "skipped 2 clips with bad audio in subset 'eval'" in printed
    run_id = next(line.split()[-1] for line in printed.splitlines() if line.startswith("MLflow run id:"))
    best = Path(
        next(line.split()[-1] for line in printed.splitlines() if line.startswith("best checkpoint:"))
    )

    client = MlflowClient(db)
    params = client.get_run(run_id).data.params
    assert params["data.skipped_files"] == "2" and params["data.skipped_files.eval"] == "2"
    listed = json.loads(
        Path(client.download_artifacts(run_id, "skipped_files.json", str(tmp_path))).read_text()
    )
    assert sorted(item["path"] for item in listed) == sorted(str(p) for p in bad["dev"])
    reasons = sorted(item["reason"].split(" (")[0] for item in listed)
    assert reasons[0] == "file not found" and reasons[1].startswith("truncated")

    # the CLI's evaluation of the best checkpoint on the same data
    output = tmp_path / "eval" / "metrics.json"
    output.parent.mkdir()
    assert main(["evaluate", str(best), *data, "--split", "eval", "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert all(str(path) in printed for path in bad["eval"])
    metrics = json.loads(output.read_text())
    assert metrics["num_clips"] == len(read_records(synth, "clotho", "eval")) - 2
    assert sorted(s["path"] for s in metrics["skipped_bad_audio"]) == sorted(str(p) for p in bad["eval"])
