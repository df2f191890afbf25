"""When the worker group takes a checkpoint inside an epoch (train.checkpoint_every_steps / _minutes).

Every worker must decide the same: ``ray.train.report`` is a barrier that all workers call the same
number of times. A step cadence agrees by itself; a time cadence is measured on rank 0, whose answer
reaches every worker through one all-reduce of one number per step (only when it is on).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch


@dataclass
class CheckpointCadence:
    every_steps: int = 0  # 0: no step cadence
    every_seconds: float = 0.0  # 0: no time cadence
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    last_saved: float = field(init=False, default=0.0)  # rank 0's clock at the last checkpoint

    def __post_init__(self) -> None:
        self.last_saved = time.monotonic()

    @classmethod
    def from_config(cls, train_cfg, rank: int, world: int, device: torch.device) -> CheckpointCadence:
        return cls(
            train_cfg.checkpoint_every_steps, 60.0 * train_cfg.checkpoint_every_minutes, rank, world, device
        )

    def due(self, global_step: int, step_in_epoch: int, steps_per_epoch: int) -> bool:
        """After optimizer step ``global_step`` (one-based), ``step_in_epoch`` of the epoch's
        ``steps_per_epoch``: is a mid-epoch checkpoint due? Never at the epoch's last step, whose
        epoch-end checkpoint follows anyway."""
        if step_in_epoch >= steps_per_epoch:
            return False
        due = self.every_steps > 0 and global_step % self.every_steps == 0
        if self.every_seconds > 0:
            late = self.rank == 0 and time.monotonic() - self.last_saved >= self.every_seconds
            due = due or self.agreed(late)
        return due

    def agreed(self, late: bool) -> bool:
        """Rank 0's ``late``, on every worker."""
        if self.world == 1:
            return late
        import torch.distributed as dist

        flag = torch.tensor([1.0 if late else 0.0], device=self.device)
        dist.all_reduce(flag)  # only rank 0 adds anything
        return bool(flag.item() > 0)

    def saved(self) -> None:
        """A checkpoint was just taken (mid-epoch or at an epoch end): the time cadence starts over."""
        self.last_saved = time.monotonic()
