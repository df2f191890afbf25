"""The feature cache's two engines: a Ray Data stage and this process give the same features (on a
CED stand-in in the released checkpoint format), and "auto" sends only GPU passes to Ray."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from distillcaps.config import load_config
from distillcaps.data.records import ClipRecord
from distillcaps.training import feature_cache


@pytest.fixture
def ced_config(tmp_path):
    from distillcaps.model.encoders import CEDEncoder

    torch.manual_seed(0)
    torch.save(CEDEncoder(dim=64, depth=1, num_heads=1, num_classes=5).state_dict(), tmp_path / "ced.pt")
    return load_config(
        "paper",
        [
            f"model.encoder.checkpoint={tmp_path / 'ced.pt'}",
            "model.encoder.dim=64",
            "data.max_seconds=2.0",
            f"data.cache_dir={tmp_path / 'cache'}",
            "train.use_gpu=false",
            "eval.batch_size=2",  # two batches for three clips: rows must land in their own slots
        ],
    )


@pytest.fixture
def records(tmp_path):
    rng = np.random.default_rng(0)
    out = []
    for i, seconds in enumerate((0.7, 1.5, 2.5)):
        path = tmp_path / f"clip{i}.wav"
        sf.write(path, (0.1 * rng.standard_normal(int(16_000 * seconds))).astype(np.float32), 16_000)
        out.append(ClipRecord(path.name, path, [f"caption {i}"], "jsonl", "dev", i))
    return out


def rows_of(records):
    return [{"clip": i, "fname": r.fname, "path": str(r.path)} for i, r in enumerate(records)]


def test_ray_stage_and_this_process_give_the_same_features(ced_config, records):
    import ray

    from distillcaps.ray_runtime import ensure_ray

    started = ensure_ray(num_cpus=2, object_store_mb=256)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        by_ray = feature_cache.encode_with_ray(ced_config, rows_of(records))
    finally:
        if started:
            ray.shutdown()
    here = feature_cache.encode_locally(ced_config, rows_of(records))
    tokens, mask, grid = by_ray
    assert tokens.shape[0] == 3 and grid == here[2]
    np.testing.assert_array_equal(mask, here[1])
    assert mask[0].sum() < mask[2].sum()  # a shorter clip masks more of its tokens
    np.testing.assert_allclose(tokens, here[0], atol=1e-5)


@pytest.mark.parametrize(
    ("engine", "use_gpu", "expected"),
    [
        ("auto", False, "encode_locally"),  # on CPU this process was the faster
        ("auto", True, "encode_with_ray"),  # meant for a GPU: Ray places the stage on one
        ("ray", False, "encode_with_ray"),
        ("local", True, "encode_locally"),
    ],
)
def test_ensure_features_picks_the_engine(ced_config, records, monkeypatch, engine, use_gpu, expected):
    calls = []

    def fake(name):
        def encode(cfg, rows):
            calls.append(name)
            return np.zeros((len(rows), 2, 4), np.float32), np.ones((len(rows), 2), bool), (1, 2)

        return encode

    for name in ("encode_with_ray", "encode_locally"):
        monkeypatch.setattr(feature_cache, name, fake(name))
    ced_config.train.encode_features_with = engine
    ced_config.train.use_gpu = use_gpu
    folder = feature_cache.ensure_features(ced_config, records, "dev")
    assert calls == [expected]
    assert feature_cache.FeatureCache.open(folder).fnames == [r.fname for r in records]
