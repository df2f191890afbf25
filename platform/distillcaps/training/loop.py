"""The per-worker training loop that Ray Train runs on every worker (``TorchTrainer(train_loop_per_worker)``).

One worker group trains one model, or several one after another (``distillcaps.training.group``):
starting Ray Train's processes costs ~50-65 s per fit on 2 cores, far more than a quick training's
steps, so the trainings of an ablation that read the same data share one fit.

For each training, each worker builds the model, restores the latest checkpoint if there is one
(after a worker failure Ray hands it over through ``ray.train.get_checkpoint()``, and its state says
which training of the group it belongs to; ``--resume`` passes a folder; a damaged one is replaced
by the newest whole checkpoint of the run), wraps the model in DDP (``ray.train.torch.prepare_model``),
and per epoch: trains on its shard of the "train" dataset, computes the validation losses on its
shard of "val", averages everything across workers, and reports metrics + a checkpoint (written by
rank 0) with ``ray.train.report``. Only rank 0 prints progress and logs to MLflow, into the
training's own run (unless the training has no run id: a sweep's driver logs the reports instead,
see distillcaps.experiments.trial_runs).

Inside an epoch, ``train.checkpoint_every_steps`` / ``_minutes`` add step checkpoints (reported
without an "epoch" key and ranked last by Ray: never the best). A step checkpoint resumes at its
exact step: the epoch's data order is seeded (Ray Data keeps its order, ``preserve_order`` in
distillcaps.training.fit, and each worker's local shuffle is seeded by epoch and rank), the
resumed worker reads and drops the batches already trained on (Ray Data has no offset to start
at), and the dropout RNG is seeded by the global step, so nothing else needs saving.

Reading order: ``train_loop_per_worker`` (which trainings, from which checkpoint) ->
``WorkerTraining`` (one training: build, restore, epochs of steps, step checkpoints, validation,
reports) -> the helpers it uses (batches, seeds, loss sums, metrics, the NaN stop).

Nothing imported at module level here may import transformers: a worker imports this module before
``train_loop_per_worker`` hides the packages transformers would pull in (``lean_imports``).
"""

from __future__ import annotations

import itertools
import math
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from distillcaps.config import Config, from_dict
from distillcaps.data.batches import ModelBatch, to_model_batch
from distillcaps.losses import TRAINING_MODES
from distillcaps.model.context_diagnostic import diagnose_context
from distillcaps.model.tokenizer import normalize_caption
from distillcaps.tracking.runs import RunLogger
from distillcaps.training.checkpoint_cadence import CheckpointCadence
from distillcaps.training.checkpoints import SCORE_KEY, TRAINING_KEY, UNSCORED, newest_whole_checkpoint
from distillcaps.training.fault_injection import maybe_hold_for_test, maybe_kill_for_test, maybe_nan_for_test
from distillcaps.training.lean_imports import hide_unused_packages
from distillcaps.training.train_state import (
    TrainState,
    checkpoint_damage,
    load_train_checkpoint,
    read_train_state,
    save_train_checkpoint,
)

LOSS_TERMS = ("auto", "rag", "dda")
# Steps averaged per point of the per-step learning curve logged to MLflow (train_loss_by_step):
# one point per 10 steps keeps it readable next to the epoch metrics.
CURVE_WINDOW = 10


class LossModule(nn.Module):
    """forward(batch) = model.compute_loss(batch): DDP synchronises gradients only through forward()."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: ModelBatch):
        return self.model.compute_loss(batch)


def steps_per_epoch(num_rows: int, cfg) -> int:
    """Optimizer steps per epoch: Ray splits rows equally (remainder dropped) across workers."""
    workers = max(1, cfg.train.num_workers)
    per_worker_rows = num_rows // workers
    return max(1, math.ceil(per_worker_rows / per_worker_batch(cfg)))


def per_worker_batch(cfg) -> int:
    return max(1, cfg.train.batch_size // max(1, cfg.train.num_workers))


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """config: "trainings" (list of {"cfg", "steps_per_epoch", "run_id", "val_contexts"}, trained in
    order), "grid", "tracking_uri", "resume_dir", "ray_dir" (the run's Ray storage folder, for
    falling back past a damaged checkpoint)."""
    hide_unused_packages()  # before transformers is imported: ~4 s less start-up per worker
    import ray.train

    trainings = config["trainings"]
    # Where to start: a restarted worker group (or --resume) continues the training that was running.
    resume_dir = Path(config["resume_dir"]) if config.get("resume_dir") else None
    ray_dir = Path(config["ray_dir"]) if config.get("ray_dir") else None
    with restore_folder(ray.train.get_checkpoint(), resume_dir, ray_dir) as folder:
        first = 0
        if folder is not None:
            state = read_train_state(folder)
            first = state.training
            if state.epoch >= trainings[first]["cfg"]["train"]["epochs"]:  # that one had finished
                first, folder = first + 1, None
        for index in range(first, len(trainings)):
            WorkerTraining(index, trainings[index], config, folder if index == first else None).run()


@contextmanager
def restore_folder(checkpoint, resume_dir: Path | None, ray_dir: Path | None) -> Iterator[Path | None]:
    """The checkpoint folder to continue from, or None (a fresh start): the newest whole one of Ray's
    (a restarted worker group, or a fit in a run folder that has Ray's state), ``resume_dir``
    (--resume) and the run's Ray folder ``ray_dir``. A damaged one is skipped. The Ray folder counts
    because a checkpoint is in storage before Ray's controller has collected its report (it polls
    every 2 s): a worker killed in between would otherwise be restarted from the one before."""
    with checkpoint.as_directory() if checkpoint is not None else nullcontext(None) as handed:
        whole = []
        for found in (handed, resume_dir):
            damage = checkpoint_damage(Path(found)) if found is not None else ""
            if damage:
                print(f"skipping the damaged checkpoint {found}: {damage}", flush=True)
            elif found is not None:
                whole.append(Path(found))
        if ray_dir is not None and ray_dir.is_dir():
            whole.extend(filter(None, [newest_whole_checkpoint(ray_dir)]))
        chosen = max(whole, key=checkpoint_position) if whole else None  # on a tie the first: Ray's
        yield agreed_with_rank_0(chosen, whole)


def checkpoint_position(folder: Path) -> tuple[int, int]:
    """(training index, global step): how far into the group a checkpoint is."""
    state = read_train_state(folder)
    return state.training, state.global_step


def agreed_with_rank_0(chosen: Path | None, whole: list[Path]) -> Path | None:
    """Rank 0's choice of checkpoint, on every worker: a worker that cannot see the Ray folder (its
    node does not share it) would otherwise start from another step, and the workers' reports and
    all-reduces would no longer pair up. Each worker takes its own copy of the same checkpoint."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return chosen
    wanted = [checkpoint_position(chosen) if chosen is not None else None]
    dist.broadcast_object_list(wanted, src=0)
    if wanted[0] is None:
        return None
    match = next((folder for folder in whole if checkpoint_position(folder) == tuple(wanted[0])), None)
    if match is None:
        training, step = wanted[0]
        raise RuntimeError(
            f"rank 0 continues training {training} from its checkpoint at global step {step}, which "
            f"rank {dist.get_rank()} does not find (it has: {', '.join(map(str, whole)) or 'none'}); "
            "the run's storage (RunConfig.storage_path) must be shared by every node"
        )
    return match


# ---------------------------------------------------------------------------------------------
# One training on one worker


@dataclass
class EpochTally:
    """One worker's running training-loss sums of an epoch and rank 0's learning curve.

    sums: "rows", "loss" (loss x rows), per term "<term>" (term x rows) and "<term>_rows"."""

    sums: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    curve: list[tuple[int, float]] = field(default_factory=list)  # (global step, loss)
    seconds: float = 0.0  # the epoch's training time on this worker (set at its end)

    @classmethod
    def resumed(cls, state: TrainState, rank: int) -> EpochTally:
        """The tally an epoch starts from: empty, or in the epoch a step checkpoint resumes, the
        sums of all workers so far, carried on by rank 0 (the others start from zero)."""
        tally = cls()
        if state.step_in_epoch and rank == 0:
            tally.sums.update(state.epoch_sums)
            tally.curve = [(int(s), float(v)) for s, v in state.epoch_curve]
        return tally

    def add(self, out, loss: float, rows: int, global_step: int) -> None:
        """One optimizer step's LossOutput ``out`` (its total ``loss`` as a float) over ``rows`` rows."""
        self.sums["rows"] += rows
        self.sums["loss"] += loss * rows
        self.curve.append((global_step, loss))
        for term in LOSS_TERMS:
            value = getattr(out, term)
            if value is not None:
                self.sums[term] += float(value) * rows
                self.sums[f"{term}_rows"] += rows

    def prefixed(self) -> dict[str, float]:
        return {f"train_{k}": v for k, v in self.sums.items()}


class WorkerTraining:
    """One model of the group trained to its last epoch on this worker, from ``restore`` (a
    checkpoint folder, or None), reporting every epoch and step checkpoint tagged with ``index``."""

    def __init__(
        self, index: int, training: dict[str, Any], config: dict[str, Any], restore: Path | None
    ) -> None:
        import ray.train

        self.started = time.perf_counter()
        self.index = index
        self.training = training
        self.count = len(config["trainings"])
        self.cfg = cfg = from_dict(Config, training["cfg"])
        torch.set_num_threads(worker_threads(cfg))
        context = ray.train.get_context()
        self.rank, self.world = context.get_world_rank(), context.get_world_size()
        self.steps = training["steps_per_epoch"]  # optimizer steps per epoch on every worker
        self.model, self.wrapped, self.device = build_model(cfg)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer, self.scheduler = build_optimizer(self.trainable, cfg, self.steps * cfg.train.epochs)
        self.state = self.restored(restore)
        self.last_good = checkpoint_label(self.state, restore)  # what a NaN stop names
        run_id = training.get("run_id")
        self.logger = RunLogger(config["tracking_uri"], run_id) if self.rank == 0 and run_id else None
        self.autocast = (
            torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
            if cfg.train.precision == "bf16"
            else nullcontext()
        )
        self.grid = (
            tuple(config["grid"]) if config["grid"] else None
        )  # (bands, time patches) of cached features
        self.batch_size = per_worker_batch(cfg)
        self.terms = TRAINING_MODES.get(cfg.train.mode)

    def restored(self, restore: Path | None) -> TrainState:
        """The TrainState to go on from: a fresh one, or ``restore``'s, whose weights, optimizer and
        scheduler state are loaded into this training's."""
        if restore is None:
            return TrainState(training=self.index)
        state = load_train_checkpoint(restore, self.model, self.optimizer, self.scheduler)
        state.resumed_at.append(state.global_step)
        if self.rank == 0:
            print(
                f"resumed {self.cfg.train.mode} at epoch {state.epoch + 1} step {state.step_in_epoch} "
                f"(global step {state.global_step}) from {restore}",
                flush=True,
            )
        return state

    def run(self) -> None:
        import ray.train

        cfg = self.cfg
        if self.rank == 0 and self.state.global_step == 0 and cfg.train.context_diagnostic_captions > 0:
            log_context_diagnosis(self.model, cfg, self.training.get("val_contexts") or [], self.logger)
        train_shard = ray.train.get_dataset_shard("train")
        val_shard = ray.train.get_dataset_shard("val")
        # made after the diagnostic: a time cadence counts training time only
        cadence = CheckpointCadence.from_config(cfg.train, self.rank, self.world, self.device)
        if self.rank == 0 and self.count > 1:
            print(f"training {self.index + 1}/{self.count}: {cfg.train.mode}, seed {cfg.seed}", flush=True)
        for epoch in range(self.state.epoch, cfg.train.epochs):
            tally = self.train_epoch(epoch, train_shard, cadence)
            self.end_epoch(epoch, tally, val_shard, cadence)

    def train_epoch(self, epoch: int, shard, cadence: CheckpointCadence) -> EpochTally:
        """The epoch's optimizer steps on this worker's shard, from the step a checkpoint resumes at,
        with the step checkpoints the cadence asks for."""
        self.model.train()
        skip = self.state.step_in_epoch  # > 0 only in the epoch a step checkpoint resumes
        tally = EpochTally.resumed(self.state, self.rank)
        started = time.perf_counter()
        batches = epoch_batches(shard, self.cfg, epoch, self.rank, self.batch_size)
        for step, batch in enumerate(itertools.islice(batches, skip, None), start=skip):
            out, loss, rows = self.optimizer_step(batch, epoch)
            tally.add(out, loss, rows, self.state.global_step)
            maybe_kill_for_test(self.rank, self.index, epoch, step)
            maybe_hold_for_test(self.rank, self.index, epoch, step)
            if cadence.due(self.state.global_step, step + 1, self.steps):
                tally = self.step_checkpoint(step + 1, tally, cadence)
        self.state.step_in_epoch, self.state.epoch_sums, self.state.epoch_curve = 0, {}, []
        tally.seconds = time.perf_counter() - started
        return tally

    def optimizer_step(self, batch: dict[str, Any], epoch: int) -> tuple[Any, float, int]:
        """One step on Ray Data's numpy batch of B rows -> (LossOutput, its loss as a float, B).
        Stops with NonFiniteLoss before the weights change when the loss is NaN or infinite."""
        state = self.state
        # dropout by global step: a resumed run draws what the uninterrupted one drew
        torch.manual_seed(step_seed(self.cfg.seed, self.rank, state.global_step))
        inputs = to_model_batch(batch, self.grid)
        with self.autocast:
            out = self.wrapped(inputs)
        loss = maybe_nan_for_test(float(out.loss.detach()), state.global_step + 1)
        check_finite_loss(loss, state.global_step + 1, epoch, inputs.fname, self.last_good)
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        if self.cfg.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.trainable, self.cfg.train.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        state.global_step += 1
        return out, loss, len(inputs.captions)

    def step_checkpoint(
        self, step_in_epoch: int, tally: EpochTally, cadence: CheckpointCadence
    ) -> EpochTally:
        """A checkpoint inside the epoch, holding every worker's sums so far; -> the tally to go on
        with (rank 0 carries those sums, the other workers start again from zero)."""
        state = self.state
        state.step_in_epoch = step_in_epoch
        reduced = all_reduce_sums(tally.prefixed(), self.world, self.device)
        state.epoch_sums = {k[6:]: v for k, v in reduced.items() if k.startswith("train_")}
        state.epoch_curve = [[s, v] for s, v in tally.curve]
        metrics = {"global_step": state.global_step, "step_in_epoch": step_in_epoch, SCORE_KEY: UNSCORED}
        self.last_good = self.report(metrics, cadence)
        return EpochTally(defaultdict(float, state.epoch_sums if self.rank == 0 else {}), tally.curve)

    def end_epoch(self, epoch: int, tally: EpochTally, val_shard, cadence: CheckpointCadence) -> None:
        """Validate, average over the workers, keep the best, report the epoch's checkpoint, log."""
        state = self.state
        val = validate(self.model, val_shard, self.batch_size, self.grid, self.autocast)
        totals = all_reduce_sums({**tally.prefixed(), **val}, self.world, self.device)
        metrics = epoch_metrics(totals, self.terms, self.cfg)
        metrics.update(
            epoch=epoch + 1,
            global_step=state.global_step,
            lr=self.scheduler.get_last_lr()[0],
            train_seconds=round(tally.seconds, 3),
            rows_per_second=totals["train_rows"] / max(tally.seconds, 1e-9),
            # this worker's time on the training so far (model build included; after a restart,
            # since the restart): in a group, what the training cost beyond the shared start-up
            worker_seconds=round(time.perf_counter() - self.started, 3),
        )
        score = metrics.get(self.cfg.train.checkpoint_metric)
        if score is not None and (state.best_metric is None or score < state.best_metric):
            state.best_metric, state.best_epoch = score, epoch + 1
        metrics["best_epoch"] = state.best_epoch
        state.epoch = epoch + 1
        state.history.append(dict(metrics))
        self.last_good = self.report(
            {**metrics, SCORE_KEY: score if score is not None else UNSCORED}, cadence
        )
        if self.rank == 0:
            print(progress_line(metrics, self.cfg.train.epochs), flush=True)
            if self.logger is not None:
                self.logger.log_metrics(metrics, step=epoch + 1)
                self.logger.log_series("train_loss_by_step", smoothed(tally.curve, CURVE_WINDOW))

    def report(self, metrics: dict[str, Any], cadence: CheckpointCadence) -> str:
        """ray.train.report with a checkpoint of now (written by rank 0) -> its label."""
        import ray.train

        with tempfile.TemporaryDirectory() as folder:
            checkpoint = None
            if self.rank == 0:
                save_train_checkpoint(Path(folder), self.model, self.optimizer, self.scheduler, self.state)
                checkpoint = ray.train.Checkpoint.from_directory(folder)
            ray.train.report({**metrics, TRAINING_KEY: self.index}, checkpoint=checkpoint)
        cadence.saved()
        persisted = ray.train.get_checkpoint() if self.rank == 0 else None  # rank 0's is the one in storage
        return checkpoint_label(self.state, persisted.path if persisted is not None else None)


def build_model(cfg: Config):
    """-> (DistillCapsModel, the same wrapped for DDP as a LossModule, the worker's device).
    Seeded first, so that every rank starts from the same weights (DDP also broadcasts rank 0's)."""
    import ray.train.torch

    # imported here, after train_loop_per_worker's hide_unused_packages
    from distillcaps.model.distillcaps_model import DistillCapsModel  # lazy: imports transformers

    torch.manual_seed(cfg.seed)
    model = DistillCapsModel.build(cfg)
    if cfg.train.gradient_checkpointing:
        model.llm.get_base_model().gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False}
        )
    wrapped = ray.train.torch.prepare_model(
        LossModule(model), parallel_strategy_kwargs={"find_unused_parameters": False}
    )
    return model, wrapped, ray.train.torch.get_device()


def build_optimizer(trainable: list[nn.Parameter], cfg: Config, total_steps: int):
    """-> (AdamW over the trainable parameters, cosine schedule with linear warm-up over total_steps)."""
    from transformers import get_cosine_schedule_with_warmup

    optimizer = torch.optim.AdamW(trainable, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(
        optimizer, math.ceil(cfg.train.warmup_ratio * total_steps), total_steps
    )
    return optimizer, scheduler


# ---------------------------------------------------------------------------------------------
# Helpers of the loop


def epoch_batches(shard, cfg, epoch: int, rank: int, batch_size: int):
    """This worker's batches of one epoch, in an order that a rerun and a restarted worker see again:
    the shard's rows come in Ray Data's kept order and the local shuffle is seeded by epoch and rank."""
    batches = shard.iter_batches(
        batch_size=batch_size,
        batch_format="numpy",
        local_shuffle_buffer_size=cfg.train.shuffle_buffer or None,
        local_shuffle_seed=cfg.seed * 1000 + epoch * 10 + rank,
    )
    if cfg.train.preload_epoch:
        # Ray Data's scheduling loop runs in this process and, while the steps hold the
        # pipeline back, polls without waiting: reading the epoch first lets it finish
        batches = list(batches)
    return batches


def step_seed(seed: int, rank: int, global_step: int) -> int:
    """The torch seed of one optimizer step (dropout): differs per rank and step, needs no saved state."""
    return seed * 1_000_003 + rank * 7919 + global_step


def checkpoint_label(state, where) -> str:
    """How a NaN stop names the last good checkpoint: its step, and its folder where known."""
    if state.global_step == 0:
        return "none yet (the first is saved after the first epoch or step checkpoint)"
    place = f" ({where})" if where else ""
    if state.step_in_epoch:
        return (
            f"the step checkpoint at global step {state.global_step} (epoch {state.epoch + 1}, "
            f"step {state.step_in_epoch}){place}"
        )
    return f"the one at the end of epoch {state.epoch} (global step {state.global_step}){place}"


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
    model.eval()
    sums: dict[str, float] = defaultdict(float)
    for batch in shard.iter_batches(batch_size=batch_size, batch_format="numpy"):
        inputs = to_model_batch(batch, grid)
        with autocast:
            out = model.compute_loss(inputs, mode="distill")
        rows = len(inputs.captions)
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


def check_finite_loss(loss: float, global_step: int, epoch: int, fnames: list[str], last_good: str) -> None:
    """Stop the training before the optimizer step of a NaN/Inf loss, naming the global step, its
    batch's clips and ``last_good``, the last checkpoint taken (its weights are still good)."""
    if math.isfinite(loss):
        return
    shown = ", ".join(fnames[:8]) + (f" and {len(fnames) - 8} more" if len(fnames) > 8 else "")
    raise NonFiniteLoss(
        f"the loss is {loss} at global step {global_step} (epoch {epoch + 1}), before the weights "
        f"were updated; the batch's clips: {shown}. Last good checkpoint: {last_good}"
    )
