import threading

import numpy as np
import pytest

from distillcaps.cli import main
from distillcaps.config import load_config
from distillcaps.data.batches import DecodeAudio, num_samples, split_rows
from distillcaps.data.paths import COMPLETE_MARKER, cache_dir_for, resolve_dataset_dir
from distillcaps.data.records import read_records
from distillcaps.data.usable import usable_records

TINY_SYNTH = ["data.synth.num_train=3", "data.synth.num_val=1", "data.synth.num_eval=1"]


def test_resolve_generates_once_and_caches(tmp_path):
    cfg = load_config(None, [f"data.data_root={tmp_path}", *TINY_SYNTH])
    root = resolve_dataset_dir(cfg)
    assert root.parent == tmp_path and root.name.startswith("synth-outdoor-")
    marker = root / COMPLETE_MARKER
    stamp = marker.stat().st_mtime_ns
    assert resolve_dataset_dir(cfg) == root and marker.stat().st_mtime_ns == stamp  # not regenerated
    assert len(read_records(root, "clotho", cfg.data.train_subset)) == 3
    indoor = resolve_dataset_dir(
        load_config(None, [f"data.data_root={tmp_path}", *TINY_SYNTH, "data.synth.domain=indoor"])
    )
    reseeded = resolve_dataset_dir(
        load_config(None, [f"data.data_root={tmp_path}", *TINY_SYNTH, "seed=1", "data.synth.seed=1"])
    )
    assert indoor.name.startswith("synth-indoor-") and len({root, indoor, reseeded}) == 3
    assert cache_dir_for(cfg) == root / ".distillcaps" and (root / ".distillcaps").is_dir()
    assert (
        cache_dir_for(load_config(None, [f"data.data_root={tmp_path}", f"data.cache_dir={tmp_path}/c"]))
        == tmp_path / "c"
    )


def test_the_configured_subsets_give_rows_per_caption_and_per_clip_cropped_to_max_seconds(tmp_path):
    cfg = load_config(None, [f"data.data_root={tmp_path}", *TINY_SYNTH, "data.max_seconds=2.0"])
    train, _ = usable_records(cfg, cfg.data.train_subset)
    val, _ = usable_records(cfg, cfg.data.val_subset)
    train_rows = split_rows(train, {r.fname: [] for r in train}, per="caption")
    val_rows = split_rows(val, {r.fname: [] for r in val}, per="clip")
    assert len(train_rows) == 15 and len(val_rows) == 1 and len(val_rows[0]["references"]) == 5
    batch = DecodeAudio(cfg.data.sample_rate, num_samples(cfg), random_crop=False)(
        {"path": np.array([row["path"] for row in train_rows[:2]])}
    )
    assert batch["audio"].shape == (2, 32_000) and batch["audio_lengths"].tolist() == [32_000, 32_000]


def test_concurrent_generation_is_safe(tmp_path):
    cfg = load_config(None, [f"data.data_root={tmp_path}", *TINY_SYNTH])
    results, errors = [], []

    def worker():
        try:
            results.append(resolve_dataset_dir(cfg))
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1
    assert [p.name for p in tmp_path.iterdir()] == [results[0].name]  # no staging folders left behind
    assert len(read_records(results[0], "clotho", "val")) == 1


def test_unwritable_cache_dir_names_the_setting(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="set data.cache_dir to a writable folder"):
        cache_dir_for(
            load_config(None, [f"data.dataset_dir={tmp_path}", f"data.cache_dir={tmp_path}/file/sub"])
        )


def test_user_dataset_dir_is_returned_or_named_when_missing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path.parent)
    relative = resolve_dataset_dir(load_config(None, [f"data.dataset_dir={tmp_path.name}"]))
    assert relative == tmp_path and relative.is_absolute()  # Ray workers may have another cwd
    assert resolve_dataset_dir(load_config(None, [f"data.dataset_dir={tmp_path}"])) == tmp_path
    with pytest.raises(FileNotFoundError, match="data.dataset_dir does not exist: .*nope"):
        resolve_dataset_dir(load_config(None, [f"data.dataset_dir={tmp_path}/nope"]))


def test_cli_data_synth_and_info(tmp_path, capsys):
    out = tmp_path / "set"
    argv = ["data", "synth", str(out), "--seed", "2", "--num-train", "3", "--num-val", "1", "--num-eval", "2"]
    assert main([*argv, "--domain", "indoor"]) == 0
    assert "wrote 6 clips (indoor, seed 2)" in capsys.readouterr().out
    assert [len(read_records(out, "clotho", s)) for s in ("dev", "val", "eval")] == [3, 1, 2]
    assert all(r.fname.startswith("indoor_") for r in read_records(out, "clotho", "dev"))
    assert main(["data", "info", "--check-audio", f"data.dataset_dir={out}"]) == 0
    printed = capsys.readouterr().out
    assert "'dev': 3 clips, 15 captions, 0 bad audio files" in printed
    assert "'eval': 2 clips, 10 captions" in printed
    (out / "development" / "indoor_dev_00001.wav").write_bytes(b"")
    assert main(["data", "info", "--check-audio", f"data.dataset_dir={out}"]) == 1
    assert "indoor_dev_00001.wav: empty file" in capsys.readouterr().out


def test_cli_bad_arguments_are_named(tmp_path, capsys):
    assert main(["data", "synth", str(tmp_path / "x"), "--domain", "moon"]) == 2
    assert "unknown synthetic domain 'moon'" in capsys.readouterr().err
    assert main(["data", "synth", str(tmp_path / "x"), "--num-val", "-1"]) == 2
    assert "--num-val must be >= 0" in capsys.readouterr().err
