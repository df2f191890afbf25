"""A training checkpoint: the model checkpoint plus what resuming needs, without pickle.

<dir>/model/                      DistillCapsModel.save_checkpoint (safetensors + config + tokenizer)
<dir>/optimizer.safetensors       AdamW per-parameter state tensors ("<param index>.<name>")
<dir>/train_state.json            training index (in a group), epoch, step within the epoch, global
                                  step, best metric so far, optimizer param groups, scheduler state,
                                  per-epoch history, the running epoch's loss sums (mid-epoch)
<dir>/complete.json               written last: every other file's size. A checkpoint without it, or
                                  whose files differ from it, is not whole (a save or a copy into
                                  Ray's storage cut off by a crash) and resuming skips it

A checkpoint taken mid-epoch (``step_in_epoch`` > 0, train.checkpoint_every_steps/_minutes) resumes
at that exact step: the data order of an epoch is seeded (distillcaps.training.loop) and the run
skips the epoch's first ``step_in_epoch`` batches.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MODEL_DIR = "model"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "train_state.json"
COMPLETE_FILE = "complete.json"


@dataclass
class TrainState:
    training: int = 0  # index of the training in its worker group's list (0 when trained alone)
    epoch: int = 0  # epochs completed
    step_in_epoch: int = 0  # optimizer steps taken in epoch ``epoch`` (zero-based); 0 at an epoch end
    global_step: int = 0  # optimizer steps taken
    best_metric: float | None = None
    best_epoch: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    # mid-epoch: the running epoch's loss sums over all workers so far, and rank 0's (step, loss)
    # curve, so that the epoch's metrics after a resume cover the whole epoch
    epoch_sums: dict[str, float] = field(default_factory=dict)
    epoch_curve: list[list[float]] = field(default_factory=list)
    resumed_at: list[int] = field(default_factory=list)  # global steps the training resumed at


def save_train_checkpoint(directory: Path, model, optimizer, scheduler, state: TrainState) -> Path:
    import torch
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    model.save_checkpoint(directory / MODEL_DIR)
    opt = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in opt["state"].items():
        for name, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{name}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{index}.{name}"] = value
    save_file(tensors, str(directory / OPTIMIZER_FILE))
    payload = {
        **asdict(state),
        "optimizer_param_groups": opt["param_groups"],
        "optimizer_scalars": scalars,
        "scheduler": {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"},
    }
    (directory / STATE_FILE).write_text(json.dumps(payload, indent=1))
    mark_complete(directory)
    return directory


def mark_complete(directory: Path) -> None:
    """Write COMPLETE_FILE, last: the size of every file the checkpoint holds."""
    sizes = {
        str(path.relative_to(directory)): path.stat().st_size
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != COMPLETE_FILE
    }
    (directory / COMPLETE_FILE).write_text(json.dumps({"files": sizes}, indent=1))


def load_train_checkpoint(directory: Path, model, optimizer, scheduler) -> TrainState:
    """Restore trained weights, optimizer and scheduler from ``directory``; return the TrainState."""
    from safetensors.torch import load_file

    from distillcaps.model.checkpoint import WEIGHTS_NAME  # lazy: imports torch

    payload = json.loads((directory / STATE_FILE).read_text())
    model.load_trainable_state_dict(
        load_file(str(directory / MODEL_DIR / WEIGHTS_NAME)), source=str(directory / MODEL_DIR)
    )
    state: dict[int, dict[str, Any]] = {}
    for key, value in load_file(str(directory / OPTIMIZER_FILE)).items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    for key, value in payload["optimizer_scalars"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": payload["optimizer_param_groups"]})
    scheduler_state = scheduler.state_dict()
    scheduler_state.update(payload["scheduler"])
    scheduler.load_state_dict(scheduler_state)
    return read_train_state(directory)


def checkpoint_damage(directory: Path) -> str:
    """What is wrong with a checkpoint folder ("" when it is whole): it must hold COMPLETE_FILE and
    every file that lists at its size, its state must parse and every safetensors file in it must
    cover what its header declares (a truncated copy does not)."""
    from safetensors import safe_open

    try:
        listed = json.loads((directory / COMPLETE_FILE).read_text())["files"]
    except (OSError, ValueError, KeyError) as err:
        return f"{COMPLETE_FILE} (written when the checkpoint is whole): {err}"
    for name, size in listed.items():
        path = directory / name
        if not path.is_file():
            return f"{name}: missing, listed in {COMPLETE_FILE}"
        if path.stat().st_size != size:
            return f"{name}: {path.stat().st_size} bytes, {size} when the checkpoint was completed"
    try:
        json.loads((directory / STATE_FILE).read_text())
    except (OSError, ValueError) as err:
        return f"{STATE_FILE}: {err}"
    weights = sorted(directory.rglob("*.safetensors"))
    if not any(w.parent.name == MODEL_DIR for w in weights):
        return f"no weights in {MODEL_DIR}/"
    for path in weights:
        try:
            with safe_open(str(path), "pt") as handle:
                handle.keys()
        except Exception as err:  # safetensors raises its own error type for a short file
            return f"{path.relative_to(directory)}: {err}"
    return ""


def read_train_state(directory: Path) -> TrainState:
    """The TrainState of a checkpoint folder, without loading any weights."""
    payload = json.loads((directory / STATE_FILE).read_text())
    names = {f for f in TrainState.__dataclass_fields__}
    return TrainState(**{k: v for k, v in payload.items() if k in names})
