"""Small stand-ins shared by the retrieval tests: clip records and a deterministic fake CLAP."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from distillcaps.retrieval.clap.base import ClapEncoder


@dataclass
class Record:  # the fields of distillcaps.data.ClipRecord that retrieval reads
    fname: str
    captions: list[str]
    dataset: str = "clotho"
    path: Path | None = None  # None: /data/<fname> (the guard keys clips by their file)
    subset: str = "dev"
    index: int = 0
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.path is None:
            self.path = Path("/data") / self.fname


class FakeClap(ClapEncoder):
    """Text -> a fixed random unit vector per caption; no audio (tests feed vectors directly)."""

    name = "fake-clap"

    def __init__(self, version: str = "a", dim: int = 16) -> None:
        self.version, self.dim = version, dim

    @property
    def identity(self) -> str:
        return f"{self.name}:{hashlib.sha256(self.version.encode()).hexdigest()}"

    def embed_audio(self, waveforms, lengths=None):
        raise NotImplementedError

    def embed_text(self, captions):
        rows = []
        for c in captions:
            seed = int(hashlib.sha256(c.encode()).hexdigest()[:8], 16)
            rows.append(np.random.default_rng(seed).standard_normal(self.dim))
        return torch.nn.functional.normalize(torch.tensor(np.stack(rows), dtype=torch.float32), dim=-1)


@pytest.fixture
def records():
    return [
        Record("a.wav", ["a dog barks", "A dog barks.", "a dog is barking loudly"]),
        Record("b.wav", ["rain falls on a roof", "a dog barks"]),
        Record("c.wav", ["a car passes by", "traffic hums in the distance"]),
        Record("d.wav", ["birds sing in the morning", "a bird chirps"]),
        Record("e.wav", ["wind blows through trees", "leaves rustle in the wind"]),
    ]


@pytest.fixture
def fake_clap():
    """The FakeClap class (call it with a version string to get a different identity)."""
    return FakeClap
