"""The one training path: several trainings that read the same data, one after another in one Ray
Train run. ``train(cfg)`` (distillcaps.training.trainer) is a group of one.

    outcome = train_group([cfg_baseline, cfg_distill], run_names=["baseline", "distill"])
    outcome.results[1].best_checkpoint, outcome.failed, outcome.seconds

Why a group: every TorchTrainer.fit starts a fresh controller, worker group, dataset manager and
split coordinators, each a new process importing Ray, torch and (the workers) transformers + peft.
On 2 cores that costs ~50-65 s per fit, against ~10 s of steps in a quick training; an ablation's
four trainings per seed paid it four times. Here the workers start once and build one model after
the other (``distillcaps.training.loop``); the Ray Datasets are prepared once and iterated per epoch.

``train_members`` is the path every training takes:
1. each member's folder and config.yaml;
2. Ray started or joined (``ensure_ray``), the cluster checked, the data prepared once
   (``distillcaps.training.prepare``);
3. each member's MLflow run opened (a resumed run is reopened) and its config logged, run.json;
4. one fit (``distillcaps.training.fit``), continuing from the newest checkpoint in the storage;
5. each member finished: best and last checkpoints copied out, history.json, the final evaluation,
   the artifacts, its run closed.

Each member gets its own output folder (``<run_dir>/train/<run name>-<time>/``: config.yaml,
run.json, checkpoints/best|last, history.json, eval/), its own MLflow run (params, per-epoch
metrics, the best checkpoint as artifacts) and the same model as when trained alone (same seed,
same data order). Ray's checkpoints live in the storage folder's ``ray/``: the member's own folder
for a group of one, else ``<run_dir>/train/<group name>-<time>/``, where after the fit only each
member's best and last are kept.

Failures: a worker that dies is restarted by Ray (``train.max_failures``) and the group continues the
member that was running from its last checkpoint. If the fit fails for good, the members that
finished keep their results, the running one is reported failed (its MLflow run FAILED), and the
ones not started are returned as such (their MLflow runs deleted, nothing was logged in them), so the
caller can run them in a new group. A failure before the fit (Ray, the data) is raised: no member
has started and no MLflow run was opened.
"""

from __future__ import annotations

import json
import shutil
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from distillcaps.config import Config, ConfigError
from distillcaps.evaluation.evaluate import evaluate
from distillcaps.process_env import QUIET, set_defaults
from distillcaps.ray_runtime import ensure_ray
from distillcaps.tracking import (
    RunLogger,
    create_run,
    end_run,
    log_config,
    reopen_run,
    run_tags,
    tracking_uri,
)
from distillcaps.tracking.runs import mlflow_client
from distillcaps.training.checkpoints import (
    RAY_DIR,
    copy_model_checkpoints,
    finished,
    latest_checkpoint,
    pick_checkpoints,
    prune_checkpoints,
)
from distillcaps.training.fit import fit, keeps_every_checkpoint, loop_training
from distillcaps.training.prepare import (
    PreparedData,
    check_cluster_for_training,
    checked_config,
    prepare_data,
)

# What prepare_data and the worker group's shape read: members must agree on all of it. The rest
# (train.mode, lr, epochs, temperature, seed, the adapter, Q-Former, LoRA ...) may differ.
SHARED_KEYS = (
    "run_dir",
    "data",
    "retrieval",
    "tracking",
    "model.encoder",
    "train.batch_size",
    "train.num_workers",
    "train.use_gpu",
    "train.cpus_per_worker",
    "train.data_stage_cpus",
    "train.object_store_mb",
    "train.max_failures",
    "train.feature_cache",
    "train.random_crop",
    "train.shuffle_buffer",
)
# The base LLM must be the same (prepare_data resolves it once); its LoRA settings may differ.
LLM_BASE_EXCLUDES = ("lora_",)


@dataclass
class TrainResult:
    """What one finished training gives (``train`` returns it; a group, one per member)."""

    run_id: str
    output_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    history: list[dict] = field(default_factory=list)
    evaluations: dict[str, Any] = field(default_factory=dict)  # "student" / "student_rag" -> EvalResult
    skipped_files: list = field(default_factory=list)  # clips dropped by data.on_bad_audio=skip


@dataclass
class Member:
    """One training of a group: its config, MLflow run name and tags, output folder and run."""

    cfg: Config
    run_name: str
    output_dir: Path
    tags: Mapping[str, Any] = field(default_factory=dict)
    run_id: str | None = None  # given: a resumed run (reopened, its params kept); else opened here
    closed: bool = False  # its run has ended (FINISHED, FAILED, KILLED) or was deleted


@dataclass
class GroupOutcome:
    results: list[TrainResult | None]  # per member: its TrainResult, or None when it did not finish
    failed: dict[int, str] = field(default_factory=dict)  # member index -> why (one line)
    not_started: list[int] = field(default_factory=list)  # members the group never reached
    seconds: float = 0.0  # the whole group, shared start-up included
    # per member: its own time (in a worker group: from its model build to its last report, i.e.
    # without the shared start-up), None when it did not finish
    member_seconds: list[float | None] = field(default_factory=list)
    folder: Path | None = None  # where Ray's checkpoints are (in its ray/)
    errors: dict[int, BaseException] = field(default_factory=dict)  # member index -> what failed it

    def __post_init__(self) -> None:
        self.member_seconds = self.member_seconds or [None] * len(self.results)


def group_key(cfg: Config) -> str:
    """Equal for configs that can share one group (same data, caches and worker-group shape)."""
    raw = cfg.to_dict()
    shared: dict[str, Any] = {}
    for dotted in SHARED_KEYS:
        node: Any = raw
        for part in dotted.split("."):
            node = node[part]
        shared[dotted] = node
    llm = raw["model"]["llm"]
    shared["model.llm"] = {k: v for k, v in llm.items() if not k.startswith(LLM_BASE_EXCLUDES)}
    return json.dumps(shared, sort_keys=True, default=str)


def check_members(cfgs: Sequence[Config]) -> None:
    """A clear error naming the settings that members of one group do not share."""
    keys = [json.loads(group_key(cfg)) for cfg in cfgs]
    differing = sorted(k for k in keys[0] if any(other[k] != keys[0][k] for other in keys[1:]))
    if differing:
        raise ConfigError(
            f"train_group: the members differ in {', '.join(differing)}; a group shares its data and "
            "worker group, so train these separately"
        )


def train_group(
    cfgs: Sequence[Config],
    *,
    run_names: Sequence[str],
    parent_run_id: str | None = None,
    tags: Sequence[Mapping[str, Any]] | None = None,
    group_name: str = "group",
) -> GroupOutcome:
    """Train every config in ``cfgs`` in order in one Ray Train run (see the module docstring)."""
    tags = list(tags) if tags is not None else [{} for _ in cfgs]
    if not cfgs or len(run_names) != len(cfgs) or len(tags) != len(cfgs):
        raise ValueError(
            f"train_group: {len(cfgs)} configs, {len(run_names)} run names and {len(tags)} tag sets "
            "(one of each per member)"
        )
    cfgs = [checked_config(cfg) for cfg in cfgs]
    check_members(cfgs)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    train_root = Path(cfgs[0].run_dir).resolve() / "train"
    members = [
        Member(cfg, name, train_root / f"{name}-{stamp}", member_tags)
        for cfg, name, member_tags in zip(cfgs, run_names, tags)
    ]
    outcome = train_members(members, train_root / f"{group_name}-{stamp}", parent_run_id=parent_run_id)
    for error in outcome.errors.values():  # the caller gets one line per member; the log the rest
        traceback.print_exception(error)
    return outcome


def train_members(
    members: Sequence[Member],
    storage_dir: Path,
    *,
    parent_run_id: str | None = None,
    callbacks: list | None = None,
    worker_logs_metrics: bool = True,
) -> GroupOutcome:
    """Train ``members`` (configs checked, sharing their data) in one fit whose checkpoints go to
    ``storage_dir``/ray; it continues from the newest checkpoint there (a resumed run's folder).

    ``callbacks`` go to the TorchTrainer's RunConfig (a Tune trial passes TuneReportCallback).
    ``worker_logs_metrics=False``: the Train worker does not log each epoch's metrics into the run;
    the caller does, from the reports (a sweep's driver: distillcaps.experiments.trial_runs)."""
    set_defaults(QUIET)
    started = time.perf_counter()
    cfg = members[0].cfg  # the data, scaling and tracking settings every member shares
    for member in members:
        member.output_dir.mkdir(parents=True, exist_ok=True)
        (member.output_dir / "config.yaml").write_text(yaml.safe_dump(member.cfg.to_dict(), sort_keys=False))
    storage_dir.mkdir(parents=True, exist_ok=True)
    # Ray first, so that the retrieval and feature stages run on the same instance as training
    ensure_ray(object_store_mb=cfg.train.object_store_mb, attempts=5)
    check_cluster_for_training(cfg)
    prepared = prepare_data(cfg)

    uri = tracking_uri(cfg)
    outcome = GroupOutcome(results=[None] * len(members), folder=storage_dir)
    try:
        for member in members:
            open_run(member, uri, parent_run_id, storage_dir, prepared.skipped)
        trainings = [
            loop_training(m.cfg, prepared, m.run_id if worker_logs_metrics else None) for m in members
        ]
        try:
            fit(cfg, prepared, storage_dir, trainings, uri, latest_checkpoint(storage_dir), callbacks)
            fit_error = None
        except Exception as err:  # what finished is still collected below
            fit_error = err
        finish_members(members, outcome, prepared, uri, fit_error)
    except BaseException as err:  # no member's run stays RUNNING in MLflow
        for member in members:  # Ctrl-C / SIGTERM: KILLED
            close_run(member, uri, "FAILED" if isinstance(err, Exception) else "KILLED")
        raise
    outcome.seconds = time.perf_counter() - started
    return outcome


def open_run(member: Member, uri: str, parent_run_id: str | None, storage_dir: Path, skipped: list) -> None:
    """The member's MLflow run: a new one with its config as params, or its resumed run reopened;
    its id in run.json (with the group's folder when Ray's checkpoints are elsewhere)."""
    cfg = member.cfg
    if member.run_id is None:
        member.run_id = create_run(cfg, member.run_name, parent_run_id, member.tags)
        log_config(member.run_id, cfg)
    else:
        reopen_run(uri, member.run_id, {**run_tags(cfg), **member.tags})
    record = {"run_id": member.run_id, "tracking_uri": uri}
    if storage_dir != member.output_dir:
        record["group"] = str(storage_dir)
    (member.output_dir / "run.json").write_text(json.dumps(record, indent=1))
    print(f"MLflow run id: {member.run_id}", flush=True)
    print(f"output folder: {member.output_dir}", flush=True)
    if cfg.data.on_bad_audio == "skip":
        from distillcaps.data.usable import log_skipped  # lazy: imports soundfile

        log_skipped(uri, member.run_id, skipped)


def finish_members(
    members: Sequence[Member],
    outcome: GroupOutcome,
    prepared: PreparedData,
    uri: str,
    fit_error: Exception | None,
) -> None:
    """Each member's results into ``outcome`` and its run closed; after a failed fit (``fit_error``)
    the member it failed in is failed and the ones after it are not started (runs and folders gone)."""
    ray_dir = outcome.folder / RAY_DIR
    running = None  # the member the fit failed in; the ones after it never started
    if fit_error is not None:
        running = next(
            (i for i, m in enumerate(members) if not finished(ray_dir, i, m.cfg.train.epochs)), None
        )
    keep: set[Path] = set()
    for index, member in enumerate(members):
        if running is not None and index > running:
            outcome.not_started.append(index)
            discard_run(member, uri)
            continue
        try:
            result, kept = finish_member(member, index, ray_dir, uri, prepared.skipped)
        except Exception as err:
            result, kept = None, set()
            outcome.errors[index] = err
        keep |= kept
        if result is None:
            if index not in outcome.errors and fit_error is not None:
                outcome.errors[index] = fit_error
            error = outcome.errors.get(index)
            outcome.failed[index] = (
                one_line(error) if error else "the group's fit ended before this training finished"
            )
        close_run(member, uri, "FAILED" if result is None else "FINISHED")
        outcome.results[index] = result
        if result is not None and result.history:
            outcome.member_seconds[index] = result.history[-1].get("worker_seconds")
    if keeps_every_checkpoint(len(members)):
        prune_checkpoints(ray_dir, keep)


def finish_member(
    member: Member, index: int, ray_dir: Path, uri: str, skipped: list
) -> tuple[TrainResult | None, set[Path]]:
    """-> (TrainResult, Ray checkpoint folders to keep), or (None, set()) when it did not finish."""
    cfg, out, run_id = member.cfg, member.output_dir, member.run_id
    picked = pick_checkpoints(ray_dir, cfg.train.checkpoint_metric, index)
    if picked is None or picked[2].epoch < cfg.train.epochs:
        return None, set()
    best_dir, last_dir, last_state = picked
    best, last = copy_model_checkpoints(best_dir, last_dir, out)
    history = last_state.history
    (out / "history.json").write_text(json.dumps(history, indent=1))
    result = TrainResult(run_id, out, best, last, history, skipped_files=skipped)
    if cfg.train.evaluate_after:
        result.evaluations = final_evaluation(cfg, best, out, run_id)
    RunLogger(uri, run_id).log_artifacts(best, "checkpoint")
    RunLogger(uri, run_id).log_artifact(out / "history.json")
    return result, {best_dir, last_dir}


def final_evaluation(cfg: Config, checkpoint: Path, output_dir: Path, run_id: str) -> dict[str, Any]:
    """The best checkpoint on data.eval_subset without and with retrieval, into eval/ and eval-rag/
    and the training's run. -> {"student": EvalResult, "student_rag": EvalResult}"""
    results = {}
    for name, rag in (("student", False), ("student_rag", True)):
        folder = output_dir / ("eval-rag" if rag else "eval")
        results[name] = evaluate(
            checkpoint, cfg, subset=cfg.data.eval_subset, rag=rag, output_dir=folder, run_id=run_id
        )
        print(summary_line(name, results[name]), flush=True)
    return results


def summary_line(name: str, result) -> str:
    cider = result.metrics.get("cider_d")
    base = {k: v.metrics.get("cider_d") for k, v in result.baselines.items()}
    text = ", ".join(f"{k} {v:.3f}" if v is not None else f"{k} -" for k, v in base.items())
    cider_text = f"{cider:.3f}" if cider is not None else "unavailable"
    return f"{name}: CIDEr-D {cider_text} on {result.num_clips} clips (baselines: {text})"


def close_run(member: Member, uri: str, status: str) -> None:
    """End the member's run (FINISHED, FAILED or KILLED) unless it is closed or was never opened."""
    if member.run_id is not None and not member.closed:
        end_run(uri, member.run_id, status)
        member.closed = True


def discard_run(member: Member, uri: str) -> None:
    """A member the group never reached: its MLflow run (params only) and folder go."""
    mlflow_client(uri).delete_run(member.run_id)
    member.closed = True
    shutil.rmtree(member.output_dir, ignore_errors=True)


def one_line(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".strip()
    return text.splitlines()[0][:500]
