"""Faults on purpose, for tests: a Train worker killed at a step, a NaN loss at a step, a worker that
waits at a step until its node is removed under it.

Each is set through an environment variable of the driver, which train() forwards to the Train
workers (distillcaps.ray_runtime.forwarded_env passes DISTILLCAPS_*). Unset, a hook costs one
dictionary lookup per step. A kill or a hold happens once: its marker file says it has happened, so
the worker group that Ray restarts trains on.
"""

from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path

# "rank:epoch:step:marker_file" (epoch and step zero-based, step within the epoch): SIGKILL, once.
KILL_ENV = "DISTILLCAPS_TEST_KILL_WORKER"
# The index (in a group of trainings) that KILL_ENV and HOLD_ENV apply to; default 0.
KILL_TRAINING_ENV = "DISTILLCAPS_TEST_KILL_TRAINING"
# "global_step" (one-based, as in the reports): that step's loss is NaN on every worker.
NAN_ENV = "DISTILLCAPS_TEST_NAN_AT_STEP"
# "rank:epoch:step:marker_file": write this worker's Ray node id into the marker, then wait for the
# test to remove that node (which ends the worker), once; HOLD_SECONDS without that is an error.
HOLD_ENV = "DISTILLCAPS_TEST_HOLD_WORKER"
HOLD_SECONDS = 300.0


def maybe_kill_for_test(rank: int, training: int, epoch: int, step: int) -> None:
    marker = _due(KILL_ENV, rank, training, epoch, step)
    if marker is not None:
        marker.write_text(f"killed rank {rank} at epoch {epoch} step {step}\n")
        os.kill(os.getpid(), signal.SIGKILL)


def maybe_hold_for_test(rank: int, training: int, epoch: int, step: int) -> None:
    marker = _due(HOLD_ENV, rank, training, epoch, step)
    if marker is None:
        return
    import ray

    marker.write_text(ray.get_runtime_context().get_node_id())
    time.sleep(HOLD_SECONDS)
    raise RuntimeError(
        f"{HOLD_ENV}: rank {rank} waited {HOLD_SECONDS} s at epoch {epoch} step {step} "
        "and its node was not removed"
    )


def maybe_nan_for_test(loss: float, global_step: int) -> float:
    """``loss``, or NaN at the global step NAN_ENV names."""
    wanted = os.environ.get(NAN_ENV)
    return math.nan if wanted and int(wanted) == global_step else loss


def _due(name: str, rank: int, training: int, epoch: int, step: int) -> Path | None:
    """The marker file of the fault ``name`` when it is due here and now and has not happened yet."""
    spec = os.environ.get(name)
    if not spec or training != int(os.environ.get(KILL_TRAINING_ENV, "0")):
        return None
    want_rank, want_epoch, want_step, marker = spec.split(":", 3)
    if (rank, epoch, step) != (int(want_rank), int(want_epoch), int(want_step)) or Path(marker).exists():
        return None
    return Path(marker)
