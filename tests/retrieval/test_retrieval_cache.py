"""The precomputed retrieval cache: keyed by everything its content depends on, built whole under a
lock, and honest about clips it has no line for. A cheap stand-in CLAP (registered as "test-clap")
embeds a few seconds of tiny wavs, so every test here runs in seconds."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from distillcaps.config import load_config
from distillcaps.data.audio import BadAudioError
from distillcaps.retrieval.clap.base import CLAP_ENCODERS, ClapEncoder
from distillcaps.retrieval.precompute import MANIFEST, MissingRetrievalError, ensure_retrieval, load_retrieved


class CountingClap(ClapEncoder):
    """Audio -> a few waveform statistics, text -> a fixed random vector; counts its calls."""

    name = "test-clap"
    calls = {"audio": 0, "text": 0}
    text_delay_s = 0.0  # widens the window in which two builders overlap
    lock = threading.Lock()

    def __init__(self, version: str) -> None:
        self.version = version or "v1"

    @property
    def identity(self) -> str:
        return f"{self.name}:{hashlib.sha256(self.version.encode()).hexdigest()}"

    def embed_audio(self, waveforms, lengths=None):
        with self.lock:
            self.calls["audio"] += 1
        w = waveforms.float()  # (B, S)
        stats = [
            w.mean(1),
            w.std(1),
            w.abs().amax(1),
            (lengths.float() if lengths is not None else w[:, 0]) / 1e4,
        ]
        feats = torch.stack([*stats, *[torch.sin(k * w[:, :100].sum(1)) for k in range(1, 13)]], dim=1)
        return torch.nn.functional.normalize(feats, dim=-1)  # (B, 16)

    def embed_text(self, captions):
        with self.lock:
            self.calls["text"] += 1
        time.sleep(self.text_delay_s)
        rows = [
            np.random.default_rng(int(hashlib.sha256(c.encode()).hexdigest()[:8], 16)).standard_normal(16)
            for c in captions
        ]
        return torch.nn.functional.normalize(torch.tensor(np.stack(rows), dtype=torch.float32), dim=-1)


if "test-clap" not in CLAP_ENCODERS:
    CLAP_ENCODERS.register("test-clap")(lambda cfg: CountingClap(cfg.retrieval.clap_checkpoint))

SUBSETS = {"dev": ["d0", "d1", "d2", "d3", "d4"], "val": ["v0", "v1"], "eval": ["e0", "e1"]}


def write_clip(path: Path, seconds: float, freq: float) -> None:
    t = np.arange(int(seconds * 16_000)) / 16_000
    sf.write(path, 0.3 * np.sin(2 * np.pi * freq * t), 16_000, subtype="PCM_16")


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    for subset, names in SUBSETS.items():
        lines = []
        for i, name in enumerate(names):
            write_clip(root / f"{name}.wav", 0.5 + 0.1 * i, 200 + 50 * i)
            captions = [f"{name} sound number {i}", f"another {name} caption"]
            lines.append(json.dumps({"audio": f"{name}.wav", "captions": captions, "fname": f"{name}.wav"}))
        (root / f"{subset}.jsonl").write_text("\n".join(lines) + "\n")
    return root


def config(root: Path, cache: Path, *overrides: str):
    return load_config(
        "tiny",
        [
            f"data.dataset_dir={root}",
            "data.dataset_format=jsonl",
            f"data.cache_dir={cache}",
            "data.train_subset=dev",
            "data.val_subset=val",
            "data.eval_subset=eval",
            "data.max_seconds=1.0",
            "retrieval.clap=test-clap",
            "retrieval.datastore_subset=dev",
            "retrieval.embed_with=local",
            "retrieval.index=torch",
            "retrieval.top_k=1",
            "retrieval.store_k=2",
            "retrieval.search_k=4",
            *overrides,
        ],
    )


@pytest.fixture(autouse=True)
def fresh_counts():
    CountingClap.calls.update(audio=0, text=0)
    CountingClap.text_delay_s = 0.0


def test_lists_are_reused_until_an_audio_file_the_crop_k_or_the_clap_changes(dataset, tmp_path):
    cache = tmp_path / "cache"
    cfg = config(dataset, cache)
    first = ensure_retrieval(cfg)
    built = dict(CountingClap.calls)
    assert built["audio"] > 0 and built["text"] > 0
    stamp = (first / "dev.jsonl").stat().st_mtime_ns
    assert ensure_retrieval(cfg) == first and CountingClap.calls == built  # a hit: nothing embedded
    assert (first / "dev.jsonl").stat().st_mtime_ns == stamp

    # a query file's mtime: new lists; the datastore (captions only) is reused, the old lists stay
    wav = dataset / "v1.wav"
    stat = wav.stat()
    os.utime(wav, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    touched = ensure_retrieval(cfg)
    assert touched != first and (first / MANIFEST).is_file()
    assert CountingClap.calls["text"] == built["text"] and CountingClap.calls["audio"] > built["audio"]

    # its size, with the mtime put back: new lists again, and they hold the new audio's neighbours
    before = load_retrieved(cfg, "val")["v1.wav"]
    mtime = wav.stat().st_mtime_ns
    write_clip(wav, 0.9, 4000)
    os.utime(wav, ns=(mtime, mtime))
    resized = ensure_retrieval(cfg)
    assert resized not in (first, touched)
    assert load_retrieved(cfg, "val")["v1.wav"] != before

    # the query crop, store_k and the CLAP checkpoint each give their own folder
    folders = {resized}
    for override in ("data.max_seconds=0.3", "retrieval.store_k=3", "retrieval.clap_checkpoint=v2"):
        folders.add(ensure_retrieval(config(dataset, cache, override)))
    assert len(folders) == 4
    assert len({f.parent for f in folders}) == 2  # another CLAP: another folder altogether


def test_two_concurrent_builders_make_one_intact_cache(dataset, tmp_path):
    cfg = config(dataset, tmp_path / "cache")
    CountingClap.text_delay_s = 0.5  # the first builder is still embedding when the second arrives
    start = threading.Barrier(2)
    results, errors = [], []

    def build():
        start.wait()
        try:
            results.append(ensure_retrieval(cfg))
        except Exception as err:  # reported below; a thread's exception would vanish
            errors.append(err)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(results) == 2 and results[0] == results[1]
    alone = config(dataset, tmp_path / "cache-alone")
    calls_for_two = dict(CountingClap.calls)
    CountingClap.calls.update(audio=0, text=0)
    CountingClap.text_delay_s = 0.0
    ensure_retrieval(alone)
    assert calls_for_two == CountingClap.calls  # the second builder embedded nothing: it waited
    folder = results[0]
    assert sorted(p.name for p in folder.iterdir()) == ["dev.jsonl", "eval.jsonl", MANIFEST, "val.jsonl"]
    for subset, names in SUBSETS.items():
        rows = [json.loads(line) for line in (folder / f"{subset}.jsonl").read_text().splitlines()]
        assert [r["fname"] for r in rows] == [f"{n}.wav" for n in names]
        assert all(len(r["retrieved"]) == 2 for r in rows)
    leftovers = [p.name for p in folder.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # no temporary folder left behind


def test_skip_mode_leaves_bad_clips_out_and_a_lookup_of_one_names_it(dataset, tmp_path):
    (dataset / "d1.wav").unlink()
    cut = dataset / "v0.flac"
    t = np.arange(16_000) / 16_000
    sf.write(cut, 0.3 * np.sin(2 * np.pi * 300 * t), 16_000, format="FLAC")
    cut.write_bytes(cut.read_bytes()[:3000])
    lines = (dataset / "val.jsonl").read_text().replace('"audio": "v0.wav"', '"audio": "v0.flac"')
    (dataset / "val.jsonl").write_text(lines)
    cache = tmp_path / "cache"

    with pytest.raises(BadAudioError, match=r"d1.wav: file not found"):
        ensure_retrieval(config(dataset, cache))
    cfg = config(dataset, cache, "data.on_bad_audio=skip")
    folder = ensure_retrieval(cfg)
    skipped = json.loads((folder / MANIFEST).read_text())["skipped"]
    assert [s["fname"] for s in skipped["dev"]] == ["d1.wav"] and [s["fname"] for s in skipped["val"]] == [
        "v0.wav"
    ]
    assert "truncated" in skipped["val"][0]["reason"]
    dev = load_retrieved(cfg, "dev")
    assert sorted(dev) == ["d0.wav", "d2.wav", "d3.wav", "d4.wav"]
    with pytest.raises(MissingRetrievalError, match=r"dev.jsonl: no retrieved captions for clip 'd1.wav'"):
        dev["d1.wav"]
    # d1's captions stay in the datastore (its text is fine); the guard keeps them from d1 only
    sources = {item["source_fname"] for hits in dev.values() for item in hits}
    assert sources <= {f"{n}.wav" for n in SUBSETS["dev"]}
    # the same lists under on_bad_audio=error: the skipped file is an error, not a silent gap
    with pytest.raises(BadAudioError, match=r"d1.wav: file not found"):
        ensure_retrieval(config(dataset, cache))
