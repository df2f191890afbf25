"""When a step checkpoint is due inside an epoch (train.checkpoint_every_steps / _minutes)."""

from __future__ import annotations

from distillcaps.config import load_config
from distillcaps.training import checkpoint_cadence
from distillcaps.training.checkpoint_cadence import CheckpointCadence


def test_every_n_global_steps_but_never_at_an_epochs_last_step():
    cadence = CheckpointCadence(every_steps=3)
    # epochs of 10 steps: global steps 3, 6, 9 | 12, 15, 18 (30 is epoch 3's last: its end saves)
    due = [g for g in range(1, 31) if cadence.due(g, (g - 1) % 10 + 1, 10)]
    assert due == [3, 6, 9, 12, 15, 18, 21, 24, 27]


def test_off_by_default():
    cadence = CheckpointCadence.from_config(load_config("tiny").train, rank=0, world=1, device=None)
    assert not any(cadence.due(g, g, 1000) for g in range(1, 200))


def test_every_m_minutes_of_rank_0s_clock_restarting_at_each_checkpoint(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(checkpoint_cadence.time, "monotonic", lambda: now[0])
    cadence = CheckpointCadence(every_seconds=60.0)
    assert not cadence.due(1, 1, 10)
    now[0] = 160.0
    assert cadence.due(2, 2, 10)
    cadence.saved()
    now[0] = 219.0
    assert not cadence.due(3, 3, 10)
    now[0] = 220.0
    assert cadence.due(4, 4, 10)
    assert not CheckpointCadence(every_seconds=60.0, rank=1).due(4, 4, 10)  # only rank 0's clock counts
