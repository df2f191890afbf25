"""Which of Ray Train's checkpoint folders a training resumes from, keeps and copies out.

A run's (or a group's) Ray storage holds ``<storage>/ray/checkpoint_*/`` folders, each a training
checkpoint (``distillcaps.training.train_state``) tagged with the index of its training in the
group (0 when trained alone). A damaged folder (a copy into storage cut off by a crash) is skipped
with a warning everywhere here, so resuming takes the newest whole checkpoint.

    found = training_checkpoints(ray_dir, index)          # [(folder, TrainState)] of one training
    best_dir, last_dir, last_state = pick_checkpoints(ray_dir, "val_loss_student", index)
    best, last = copy_model_checkpoints(best_dir, last_dir, output_dir)   # checkpoints/{best,last}
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from distillcaps.training.train_state import (
    MODEL_DIR,
    STATE_FILE,
    TrainState,
    checkpoint_damage,
    read_train_state,
)

RAY_DIR = "ray"  # Ray Train's storage folder (checkpoints) inside a run's or a group's folder
# Every report carries the index of its training in the worker group's list (0 when alone).
TRAINING_KEY = "training_index"
# What Ray ranks checkpoints by (lower is better): the epoch's train.checkpoint_metric, and UNSCORED
# for a step checkpoint (not validated) or an epoch without that metric, so that neither is "best".
SCORE_KEY = "checkpoint_score"
# Not +inf: Ray's checkpoint-manager snapshot writes inf as null, and after a --resume the restored
# null breaks its ranking ("unsupported operand type(s) for *: 'float' and 'NoneType'").
UNSCORED = sys.float_info.max


def training_checkpoints(ray_dir: Path, index: int | None = 0) -> list[tuple[Path, TrainState]]:
    """(folder, TrainState) of every whole checkpoint in ray_dir of training ``index`` (None: of any)."""
    found = []
    for folder in sorted(ray_dir.glob("checkpoint_*")):
        if not (folder / STATE_FILE).is_file():
            continue
        damage = checkpoint_damage(folder)
        if damage:
            print(f"skipping the damaged checkpoint {folder}: {damage}", flush=True)
            continue
        state = read_train_state(folder)
        if index is None or state.training == index:
            found.append((folder, state))
    return found


def latest_checkpoint(storage_dir: Path) -> Path | None:
    """The newest checkpoint of a run folder's training (what ``--resume`` continues from when Ray
    has no state of its own)."""
    found = training_checkpoints(storage_dir / RAY_DIR)
    return max(found, key=lambda item: (item[1].epoch, item[1].global_step))[0] if found else None


def newest_whole_checkpoint(ray_dir: Path) -> Path | None:
    """The newest whole checkpoint in ray_dir, of whichever training of a group came last."""
    found = training_checkpoints(ray_dir, None)
    return max(found, key=lambda item: (item[1].training, item[1].global_step))[0] if found else None


def finished(ray_dir: Path, index: int, epochs: int) -> bool:
    """Training ``index`` reported the checkpoint of its last epoch (``epochs``)."""
    return any(state.epoch >= epochs for _, state in training_checkpoints(ray_dir, index))


def pick_checkpoints(ray_dir: Path, metric: str, index: int = 0) -> tuple[Path, Path, TrainState] | None:
    """(best folder by the lowest ``metric`` among epoch ends, last folder (an epoch end or a step
    checkpoint), last TrainState) of training ``index`` in ray_dir, or None when it reported none.

    Read from the folders rather than from Ray's Result, so that a group whose fit failed part-way
    still yields the trainings it finished."""
    found = training_checkpoints(ray_dir, index)
    if not found:
        return None
    last_dir, last_state = max(found, key=lambda item: (item[1].epoch, item[1].global_step))
    scored = [  # epoch ends only: a step checkpoint's history ends with the epoch before it
        (state.history[-1][metric], folder.name, folder)
        for folder, state in found
        if state.step_in_epoch == 0 and state.history and state.history[-1].get(metric) is not None
    ]
    best_dir = min(scored)[2] if scored else last_dir
    return best_dir, last_dir, last_state


def copy_model_checkpoints(best_dir: Path, last_dir: Path, output_dir: Path) -> tuple[Path, Path]:
    """The model part of two Ray checkpoints -> output_dir/checkpoints/{best,last}."""
    out = {}
    for name, source in (("best", best_dir), ("last", last_dir)):
        target = output_dir / "checkpoints" / name
        # the new copy is whole before the old one goes: a crash leaves one or the other, never half
        fresh, old = target.with_name(f".{name}-new"), target.with_name(f".{name}-old")
        for leftover in (fresh, old):
            shutil.rmtree(leftover, ignore_errors=True)
        shutil.copytree(source / MODEL_DIR, fresh)
        if target.exists():
            target.rename(old)
        fresh.rename(target)
        shutil.rmtree(old, ignore_errors=True)
        out[name] = target
    return out["best"], out["last"]


def prune_checkpoints(ray_dir: Path, keep: set[Path]) -> None:
    """Delete the Ray checkpoints that are no finished training's best or last (a group's fit keeps
    them all). A training that did not finish keeps all of its own, for a look at where it stopped."""
    for index in {read_train_state(folder).training for folder in keep}:  # the finished trainings
        for folder, _ in training_checkpoints(ray_dir, index):
            if folder not in keep:
                shutil.rmtree(folder, ignore_errors=True)
