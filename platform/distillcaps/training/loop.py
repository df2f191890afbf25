"""The per-worker training loop that Ray Train runs on every worker (``TorchTrainer(train_loop_per_worker)``).

One worker group trains one model, or several one after another (``distillcaps.training.group``):
starting Ray Train's processes costs ~50-65 s per fit on 2 cores, far more than a quick training's
steps, so the trainings of an ablation that read the same data share one fit.

For each training, each worker builds the model, restores the latest checkpoint if there is one
(after a worker failure Ray hands it over through ``ray.train.get_checkpoint()``, and its state says
which training of the group it belongs to; ``--resume`` passes a folder), wraps the model in DDP
(``ray.train.torch.prepare_model``), and per epoch: trains on its shard of the "train" dataset,
computes the validation losses on its shard of "val", averages everything across workers, and
reports metrics + a checkpoint (written by rank 0) with ``ray.train.report``. Only rank 0 prints
progress and logs to MLflow, into the training's own run (unless the training has no run id: a
sweep's driver logs the reports instead, see distillcaps.experiments.trial_runs).
"""

from __future__ import annotations

import math
import os
import signal
import tempfile
import time
from collections import defaultdict
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

# Fault injection for tests: "rank:epoch:step:marker_file" kills that worker (SIGKILL) once.
KILL_ENV = "DISTILLCAPS_TEST_KILL_WORKER"

# Fault injection for tests: the index (in a group of trainings) that KILL_ENV applies to; default 0.
KILL_TRAINING_ENV = "DISTILLCAPS_TEST_KILL_TRAINING"

LOSS_TERMS = ("auto", "rag", "dda")
# Every report carries the index of its training in the worker group's list (0 when alone).
TRAINING_KEY = "training_index"
# Steps averaged per point of the per-step learning curve logged to MLflow (train_loss_by_step):
# one point per 10 steps keeps it readable next to the epoch metrics.
CURVE_WINDOW = 10


class LossModule(nn.Module):
    """forward(batch) = model.compute_loss(batch): DDP synchronises gradients only through forward()."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, Any]):
        return self.model.compute_loss(batch)


def steps_per_epoch(num_rows: int, cfg) -> int:
    """Optimizer steps per epoch: Ray splits rows equally (remainder dropped) across workers."""
    workers = max(1, cfg.train.num_workers)
    per_worker_rows = num_rows // workers
    return max(1, math.ceil(per_worker_rows / per_worker_batch(cfg)))


def per_worker_batch(cfg) -> int:
    return max(1, cfg.train.batch_size // max(1, cfg.train.num_workers))


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """config: "trainings" (list of {"cfg", "steps_per_epoch", "run_id"}, trained in order), "grid",
    "tracking_uri", "resume_dir"."""
    from distillcaps.training.lean_imports import hide_unused_packages

    hide_unused_packages()  # before transformers is imported: ~4 s less start-up per worker
    import ray.train

    from distillcaps.training.train_state import read_train_state

    trainings = config["trainings"]
    # Where to start: a restarted worker group (or --resume) continues the training that was running.
    checkpoint = ray.train.get_checkpoint()
    resume_dir = Path(config["resume_dir"]) if config.get("resume_dir") else None
    first = 0
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = read_train_state(Path(folder))
    elif resume_dir is not None:
        state = read_train_state(resume_dir)
    if checkpoint is not None or resume_dir is not None:
        first = state.training
        if state.epoch >= trainings[first]["cfg"]["train"]["epochs"]:  # that one had finished
            first, checkpoint, resume_dir = first + 1, None, None
    for index in range(first, len(trainings)):
        restore = (checkpoint, resume_dir) if index == first else (None, None)
        run_training(index, trainings[index], config, *restore)


def run_training(
    index: int, training: dict[str, Any], config: dict[str, Any], checkpoint, resume_dir: Path | None
) -> None:
    """Train one model of the group to its last epoch, reporting every epoch (tagged with ``index``)."""
    import ray.train
    import ray.train.torch
    from transformers import get_cosine_schedule_with_warmup

    from distillcaps.config import Config, from_dict
    from distillcaps.data.batches import to_model_batch
    from distillcaps.losses import TRAINING_MODES
    from distillcaps.model.distillcaps_model import DistillCapsModel
    from distillcaps.tracking.runs import RunLogger
    from distillcaps.training.train_state import TrainState, load_train_checkpoint, save_train_checkpoint

    started_training = time.perf_counter()
    cfg = from_dict(Config, training["cfg"])
    torch.set_num_threads(worker_threads(cfg))
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()

    torch.manual_seed(cfg.seed)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    model = DistillCapsModel.build(cfg)
    if cfg.train.gradient_checkpointing:
        model.llm.get_base_model().gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False}
        )
    wrapped = ray.train.torch.prepare_model(
        LossModule(model), parallel_strategy_kwargs={"find_unused_parameters": False}
    )
    device = ray.train.torch.get_device()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    total_steps = training["steps_per_epoch"] * cfg.train.epochs
    scheduler = get_cosine_schedule_with_warmup(
        optimizer, math.ceil(cfg.train.warmup_ratio * total_steps), total_steps
    )

    state = TrainState(training=index)
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = load_train_checkpoint(Path(folder), model, optimizer, scheduler)
    elif resume_dir is not None:
        state = load_train_checkpoint(resume_dir, model, optimizer, scheduler)
    if state.epoch and rank == 0:
        print(f"resumed {cfg.train.mode} after epoch {state.epoch} (step {state.global_step})", flush=True)

    torch.manual_seed(cfg.seed * 1000 + rank + 7919 * state.epoch)  # dropout differs per rank/epoch
    run_id = training.get("run_id")
    logger = RunLogger(config["tracking_uri"], run_id) if rank == 0 and run_id else None
    autocast = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        if cfg.train.precision == "bf16"
        else nullcontext()
    )
    if rank == 0 and state.epoch == 0 and cfg.train.context_diagnostic_captions > 0:
        log_context_diagnosis(model, cfg, training.get("val_contexts") or [], logger)
    grid = tuple(config["grid"]) if config["grid"] else None
    batch_size = per_worker_batch(cfg)
    terms = TRAINING_MODES.get(cfg.train.mode)
    train_shard = ray.train.get_dataset_shard("train")
    val_shard = ray.train.get_dataset_shard("val")
    if rank == 0 and len(config["trainings"]) > 1:
        count = len(config["trainings"])
        print(f"training {index + 1}/{count}: {cfg.train.mode}, seed {cfg.seed}", flush=True)

    for epoch in range(state.epoch, cfg.train.epochs):
        model.train()
        sums: dict[str, float] = defaultdict(float)
        curve: list[tuple[int, float]] = []  # (global step, loss): the learning curve within the epoch
        started = time.perf_counter()
        batches = train_shard.iter_batches(
            batch_size=batch_size,
            batch_format="numpy",
            local_shuffle_buffer_size=cfg.train.shuffle_buffer or None,
            local_shuffle_seed=cfg.seed * 1000 + epoch * 10 + rank,
        )
        if cfg.train.preload_epoch:
            # Ray Data's scheduling loop runs in this process and, while the steps hold the
            # pipeline back, polls without waiting: reading the epoch first lets it finish
            batches = list(batches)
        for step, batch in enumerate(batches):
            inputs = to_model_batch(batch, grid)
            with autocast:
                out = wrapped(inputs)
            loss = float(out.loss.detach())
            check_finite_loss(loss, state.global_step + 1, epoch, inputs["fname"])
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            if cfg.train.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(trainable, cfg.train.grad_clip)
            optimizer.step()
            scheduler.step()
            state.global_step += 1
            rows = len(inputs["captions"])
            sums["rows"] += rows
            sums["loss"] += loss * rows
            curve.append((state.global_step, loss))
            for term in LOSS_TERMS:
                value = getattr(out, term)
                if value is not None:
                    sums[term] += float(value) * rows
                    sums[f"{term}_rows"] += rows
            maybe_kill_for_test(rank, index, epoch, step)
        train_seconds = time.perf_counter() - started

        val = validate(model, val_shard, batch_size, grid, autocast)
        totals = all_reduce_sums({**{f"train_{k}": v for k, v in sums.items()}, **val}, world, device)
        metrics = epoch_metrics(totals, terms, cfg)
        metrics.update(
            epoch=epoch + 1,
            global_step=state.global_step,
            lr=scheduler.get_last_lr()[0],
            train_seconds=round(train_seconds, 3),
            rows_per_second=totals["train_rows"] / max(train_seconds, 1e-9),
            # this worker's time on the training so far (model build included; after a restart,
            # since the restart): in a group, what the training cost beyond the shared start-up
            worker_seconds=round(time.perf_counter() - started_training, 3),
        )
        score = metrics.get(cfg.train.checkpoint_metric)
        if score is not None and (state.best_metric is None or score < state.best_metric):
            state.best_metric, state.best_epoch = score, epoch + 1
        metrics["best_epoch"] = state.best_epoch
        state.epoch = epoch + 1
        state.history.append(dict(metrics))

        with tempfile.TemporaryDirectory() as folder:
            report_checkpoint = None
            if rank == 0:
                save_train_checkpoint(Path(folder), model, optimizer, scheduler, state)
                report_checkpoint = ray.train.Checkpoint.from_directory(folder)
            ray.train.report({**metrics, TRAINING_KEY: index}, checkpoint=report_checkpoint)
        if rank == 0:
            print(progress_line(metrics, cfg.train.epochs), flush=True)
            if logger is not None:
                logger.log_metrics(metrics, step=epoch + 1)
                logger.log_series("train_loss_by_step", smoothed(curve, CURVE_WINDOW))


def smoothed(curve: list[tuple[int, float]], window: int) -> list[tuple[int, float]]:
    """The mean loss of each `window` consecutive steps, at the window's last step."""
    return [
        (
            curve[min(i + window, len(curve)) - 1][0],
            sum(v for _, v in curve[i : i + window]) / len(curve[i : i + window]),
        )
        for i in range(0, len(curve), window)
    ]


def log_context_diagnosis(model, cfg, val_contexts: list, logger) -> None:
    """Before the first step: does the LM read the captions in its prompt? (the premise of the
    teacher; distillcaps.model.context_diagnostic). Printed, and logged at step 0 of the run."""
    from distillcaps.model.context_diagnostic import diagnose_context
    from distillcaps.model.tokenizer import normalize_caption

    clips = [[normalize_caption(c) for c in captions] for captions, _ in val_contexts]
    if sum(len(c) >= 2 for c in clips) < 2:
        return  # too few validation clips with two captions for an `own` context
    retrieved = [list(hits) for _, hits in val_contexts]
    diagnosis = diagnose_context(
        model.llm, model.prompts.tokens, clips, retrieved,
        top_k=cfg.retrieval.top_k, max_captions=cfg.train.context_diagnostic_captions,
    )  # fmt: skip
    ce = diagnosis.context_ce
    print(
        "LM context diagnostic (validation caption CE, nats/token): "
        + ", ".join(f"{k} {v:.3f}" for k, v in ce.items() if v is not None)
        + f", induction {diagnosis.induction_ce:.3f}"
        + (f"; NOT MET: {', '.join(diagnosis.unmet())}" if diagnosis.unmet() else ""),
        flush=True,
    )
    if logger is not None:
        metrics = {f"context_ce_{k}": v for k, v in ce.items() if v is not None}
        logger.log_metrics({**metrics, "induction_ce": diagnosis.induction_ce}, step=0)


def worker_threads(cfg) -> int:
    """Torch intra-op threads: the worker's whole CPUs, at least 1. Not rounded up: on 2 cores a
    1.75-CPU worker with 2 threads ran a default-size distill epoch in 109 s against 57 s with 1
    (two runs each), although 2 threads step 1.33x faster outside Ray (benchmarks/train_step.py)."""
    return max(1, int(cfg.train.cpus_per_worker))


@torch.no_grad()
def validate(model, shard, batch_size: int, grid, autocast) -> dict[str, float]:
    """Validation loss sums over this worker's shard, every term (the student branch's is "auto")."""
    from distillcaps.data.batches import to_model_batch

    model.eval()
    sums: dict[str, float] = defaultdict(float)
    for batch in shard.iter_batches(batch_size=batch_size, batch_format="numpy"):
        inputs = to_model_batch(batch, grid)
        with autocast:
            out = model.compute_loss(inputs, mode="distill")
        rows = len(inputs["captions"])
        sums["val_rows"] += rows
        for term in LOSS_TERMS:
            value = getattr(out, term)
            if value is not None:
                sums[f"val_{term}"] += float(value) * rows
                sums[f"val_{term}_rows"] += rows
    model.train()
    return sums


def all_reduce_sums(sums: dict[str, float], world: int, device: torch.device) -> dict[str, float]:
    keys = sorted(
        set(sums)
        | {f"{p}_{t}" for p in ("train", "val") for t in LOSS_TERMS}
        | {f"{p}_{t}_rows" for p in ("train", "val") for t in LOSS_TERMS}
        | {"train_rows", "val_rows", "train_loss"}
    )
    values = torch.tensor([float(sums.get(k, 0.0)) for k in keys], dtype=torch.float64, device=device)
    if world > 1:
        import torch.distributed as dist

        dist.all_reduce(values)
    return dict(zip(keys, values.tolist()))


def epoch_metrics(totals: dict[str, float], terms, cfg) -> dict[str, float | None]:
    def mean(prefix: str, term: str) -> float | None:
        rows = totals.get(f"{prefix}_{term}_rows", 0.0)
        return totals[f"{prefix}_{term}"] / rows if rows else None

    metrics: dict[str, float | None] = {
        "train_loss": totals["train_loss"] / max(totals["train_rows"], 1.0),
        "train_loss_auto": mean("train", "auto"),
        "train_loss_rag": mean("train", "rag"),
        "train_loss_dda": mean("train", "dda"),
        "val_loss_student": mean("val", "auto"),
        "val_loss_teacher": mean("val", "rag"),
        "val_loss_dda": mean("val", "dda"),
    }
    # The configured objective on validation data, from the same terms.
    parts = []
    if terms.student_ce:
        parts.append(cfg.train.w_auto * (metrics["val_loss_student"] or 0.0))
    if terms.teacher_ce:
        parts.append(cfg.train.w_rag * (metrics["val_loss_teacher"] or 0.0))
    if terms.distill:
        parts.append(cfg.train.w_dda * (metrics["val_loss_dda"] or 0.0))
    metrics["val_loss"] = sum(parts) if parts else None
    return metrics


def progress_line(m: dict[str, Any], epochs: int) -> str:
    def fmt(key: str) -> str:
        value = m.get(key)
        return "-" if value is None else f"{value:.4f}"

    return (
        f"epoch {m['epoch']}/{epochs} step {m['global_step']} | train loss {fmt('train_loss')} "
        f"(auto {fmt('train_loss_auto')} rag {fmt('train_loss_rag')} dda {fmt('train_loss_dda')}) | "
        f"val student {fmt('val_loss_student')} teacher {fmt('val_loss_teacher')} | lr {m['lr']:.2e} | "
        f"{m['rows_per_second']:.1f} rows/s, {m['train_seconds']:.1f} s"
    )


class NonFiniteLoss(FloatingPointError):
    """A step's loss is NaN or infinite: stepping on would write NaNs into every trained weight."""


def check_finite_loss(loss: float, global_step: int, epoch: int, fnames: list[str]) -> None:
    """Stop the training before the optimizer step of a NaN/Inf loss, naming the step and its clips.
    The weights of the last epoch-end checkpoint (epoch ``epoch``, zero-based) are still good."""
    if math.isfinite(loss):
        return
    shown = ", ".join(fnames[:8]) + (f" and {len(fnames) - 8} more" if len(fnames) > 8 else "")
    last = (
        f"the one saved after epoch {epoch}" if epoch > 0 else "none yet (the first is saved after epoch 1)"
    )
    raise NonFiniteLoss(
        f"the loss is {loss} at optimizer step {global_step} (epoch {epoch + 1}), before the weights "
        f"were updated; the batch's clips: {shown}. Last good checkpoint: {last}"
    )


def maybe_kill_for_test(rank: int, training: int, epoch: int, step: int) -> None:
    spec = os.environ.get(KILL_ENV)
    if not spec or training != int(os.environ.get(KILL_TRAINING_ENV, "0")):
        return
    want_rank, want_epoch, want_step, marker = spec.split(":", 3)
    if (rank, epoch, step) == (int(want_rank), int(want_epoch), int(want_step)) and not Path(marker).exists():
        Path(marker).write_text(f"killed rank {rank} at epoch {epoch} step {step}\n")
        os.kill(os.getpid(), signal.SIGKILL)
