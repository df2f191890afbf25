"""The two training datasets through a real local Ray: every row, every epoch, stages run as tasks."""

from __future__ import annotations

import numpy as np
import pytest
import ray
import soundfile as sf

from distillcaps.config import load_config
from distillcaps.data.batches import DecodeAudio, split_rows
from distillcaps.data.records import ClipRecord
from distillcaps.ray_runtime import ensure_ray
from distillcaps.training.data_pipeline import audio_dataset, feature_dataset, stage_instance
from distillcaps.training.feature_cache import write_cache


@pytest.fixture(scope="module")
def local_ray():
    started = ensure_ray(num_cpus=2)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    if started:
        ray.shutdown()


@pytest.fixture
def rows(tmp_path):
    rate = 8_000
    records = []
    for i, seconds in enumerate((0.5, 1.5, 3.0)):
        path = tmp_path / f"clip{i}.wav"
        sf.write(path, np.full(int(seconds * rate), 0.01 * (i + 1), dtype=np.float32), rate)
        records.append(ClipRecord(path.name, path, [f"caption {i} a", f"caption {i} b"], "jsonl", "dev", i))
    retrieved = {r.fname: [{"caption": f"retrieved for {r.fname}"}] for r in records}
    return split_rows(records, retrieved, per="caption")  # 6 rows


def epochs(ds, n=2, batch_size=4):
    """Rows delivered by each of n passes, as Train workers iterate their shard once per epoch."""
    return [
        [row for batch in ds.iter_batches(batch_size=batch_size) for row in unbatch(batch)] for _ in range(n)
    ]


def unbatch(batch):
    return [{k: batch[k][i] for k in batch} for i in range(len(batch["caption"]))]


def test_audio_dataset_delivers_every_row_decoded_in_each_epoch(local_ray, rows):
    cfg = load_config("tiny", ["data.sample_rate=8000", "data.max_seconds=2.0"])
    for delivered in epochs(audio_dataset(rows, cfg, random_crop=True)):
        assert sorted(r["caption"] for r in delivered) == sorted(r["caption"] for r in rows)
        for r in delivered:
            assert r["audio"].shape == (16_000,) and r["audio"].dtype == np.float32
            assert r["audio_lengths"] == {0: 4_000, 1: 12_000, 2: 16_000}[int(r["clip"])]  # 3 s cropped to 2
            assert np.allclose(r["audio"][: r["audio_lengths"]], 0.01 * (int(r["clip"]) + 1), atol=1e-3)
            assert list(r["retrieved"]) == [f"retrieved for {r['fname']}"]


def test_feature_dataset_attaches_each_rows_cached_features(local_ray, rows, tmp_path):
    tokens = np.arange(3 * 2 * 4, dtype=np.float32).reshape(3, 2, 4)  # (clips, N, D)
    mask = np.array([[1, 0], [1, 1], [1, 1]], dtype=bool)
    write_cache(tmp_path / "feat", tokens, mask, (1, 2), {"fnames": ["clip0.wav", "clip1.wav", "clip2.wav"]})
    cfg = load_config("tiny")
    for delivered in epochs(feature_dataset(rows, tmp_path / "feat", cfg)):
        assert len(delivered) == len(rows)
        for r in delivered:
            np.testing.assert_array_equal(r["encoder_tokens"], tokens[int(r["clip"])])
            np.testing.assert_array_equal(r["encoder_mask"], mask[int(r["clip"])])


def test_a_stage_is_made_once_per_process_and_init():
    init = '{"num_samples": 100, "random_crop": false, "sample_rate": 8000, "seed": 0}'
    first = stage_instance(DecodeAudio, init)
    assert stage_instance(DecodeAudio, init) is first
    assert stage_instance(DecodeAudio, init.replace('"seed": 0', '"seed": 1')) is not first
