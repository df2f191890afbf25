"""train_group(cfgs): several trainings that read the same data, one after another in one Ray Train run.

    outcome = train_group([cfg_baseline, cfg_distill], run_names=["baseline", "distill"])
    outcome.results[1].best_checkpoint, outcome.failed_index, outcome.seconds

Why: every TorchTrainer.fit starts a fresh controller, worker group, dataset manager and split
coordinators, each a new process importing Ray, torch and (the workers) transformers + peft. On 2
cores that costs ~50-65 s per fit, against ~10 s of steps in a quick training; an ablation's four
trainings per seed paid it four times. Here the workers start once and build one model after the
other (``distillcaps.training.loop``); the Ray Datasets are prepared once and iterated per epoch.

Each member still gets what ``train()`` gives a training: its own output folder
(``<run_dir>/train/<run name>-<time>/``: config.yaml, run.json, checkpoints/best|last,
history.json, eval/), its own MLflow run (params, per-epoch metrics, the best checkpoint as
artifacts) and the same model as when trained alone (same seed, same data order). Ray's checkpoints
of all members live in ``<run_dir>/train/<group name>-<time>/ray/``; after the fit only each
member's best and last are kept there.

Failures: a worker that dies is restarted by Ray (``train.max_failures``) and the group continues the
member that was running from its last checkpoint. If the fit fails for good, the members that
finished keep their results, the running one is reported failed (its MLflow run FAILED), and the
ones not started are returned as such (their MLflow runs deleted, nothing was logged in them), so the
caller can run them in a new group.
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
from distillcaps.ray_runtime import ensure_ray
from distillcaps.training.trainer import RAY_DIR

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
class GroupOutcome:
    results: list[Any]  # per member: its TrainResult, or None when it did not finish
    failed: dict[int, str] = field(default_factory=dict)  # member index -> why (one line)
    not_started: list[int] = field(default_factory=list)  # members the group never reached
    seconds: float = 0.0  # the whole group, shared start-up included
    # per member: its own time (in a worker group: from its model build to its last report, i.e.
    # without the shared start-up), None when it did not finish
    member_seconds: list[float | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.member_seconds = self.member_seconds or [None] * len(self.results)

    folder: Path | None = None  # <run_dir>/train/<group name>-<time>/ (Ray's checkpoints)


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
    from distillcaps.data.usable import log_skipped
    from distillcaps.tracking import create_run, end_run, log_config, tracking_uri
    from distillcaps.training.trainer import (
        check_checkpoint_metric,
        check_cluster_for_training,
        fit,
        loop_training,
        prepare_data,
        with_absolute_paths,
    )

    tags = list(tags) if tags is not None else [{} for _ in cfgs]
    if not cfgs or len(run_names) != len(cfgs) or len(tags) != len(cfgs):
        raise ValueError(
            f"train_group: {len(cfgs)} configs, {len(run_names)} run names and {len(tags)} tag sets "
            "(one of each per member)"
        )
    cfgs = [with_absolute_paths(cfg) for cfg in cfgs]
    for cfg in cfgs:
        check_checkpoint_metric(cfg)
    check_members(cfgs)

    started = time.perf_counter()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    train_root = Path(cfgs[0].run_dir).resolve() / "train"
    outcome = GroupOutcome(results=[None] * len(cfgs), folder=train_root / f"{group_name}-{stamp}")
    outcome.folder.mkdir(parents=True, exist_ok=True)
    uri = tracking_uri(cfgs[0])
    members = []
    for cfg, name, member_tags in zip(cfgs, run_names, tags):
        out = train_root / f"{name}-{stamp}"
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        run_id = create_run(cfg, name, parent_run_id, member_tags)
        log_config(run_id, cfg)
        (out / "run.json").write_text(
            json.dumps({"run_id": run_id, "tracking_uri": uri, "group": str(outcome.folder)}, indent=1)
        )
        print(f"MLflow run id: {run_id} ({name}; output folder: {out})", flush=True)
        members.append((out, run_id))

    skipped: list = []
    fit_error = None
    try:
        ensure_ray(object_store_mb=cfgs[0].train.object_store_mb, attempts=5)
        check_cluster_for_training(cfgs[0])
        prepared = prepare_data(cfgs[0])
        skipped = prepared.skipped
        if cfgs[0].data.on_bad_audio == "skip":
            for _, run_id in members:
                log_skipped(uri, run_id, skipped)
        trainings = [loop_training(cfg, prepared, run_id) for cfg, (_, run_id) in zip(cfgs, members)]
        fit(cfgs[0], prepared, outcome.folder, trainings, uri)
    except Exception as err:  # what finished is still collected below
        traceback.print_exc()
        fit_error = one_line(err)
    except BaseException:  # Ctrl-C / SIGTERM: no member's run stays RUNNING in MLflow
        for _, run_id in members:
            end_run(uri, run_id, "KILLED")
        raise

    ray_dir = outcome.folder / RAY_DIR
    running = None  # the member the fit failed in; the ones after it never started
    if fit_error is not None:
        running = next((i for i, cfg in enumerate(cfgs) if not finished(ray_dir, cfg, i)), None)
    keep: set[Path] = set()
    for index, (cfg, (out, run_id)) in enumerate(zip(cfgs, members)):
        if running is not None and index > running:
            outcome.not_started.append(index)
            discard_run(uri, run_id, out)
            continue
        try:
            result, kept = finish_member(cfg, index, out, run_id, outcome.folder, uri, skipped)
        except Exception as err:
            traceback.print_exc()
            result, kept = None, set()
            outcome.failed[index] = one_line(err)
        keep |= kept
        if result is None and index not in outcome.failed:
            outcome.failed[index] = fit_error or "the group's fit ended before this training finished"
        end_run(uri, run_id, "FAILED" if result is None else "FINISHED")
        outcome.results[index] = result
        if result is not None and result.history:
            outcome.member_seconds[index] = result.history[-1].get("worker_seconds")
    prune_checkpoints(ray_dir, keep)
    outcome.seconds = time.perf_counter() - started
    return outcome


def finish_member(cfg: Config, index: int, out: Path, run_id: str, folder: Path, uri: str, skipped: list):
    """-> (TrainResult, Ray checkpoint folders to keep), or (None, set()) when it did not finish."""
    from distillcaps.tracking import RunLogger
    from distillcaps.training.trainer import (
        TrainResult,
        copy_model_checkpoints,
        final_evaluation,
        pick_checkpoints,
    )

    picked = pick_checkpoints(folder / RAY_DIR, cfg.train.checkpoint_metric, index)
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


def discard_run(uri: str, run_id: str, out: Path) -> None:
    """A member the group never reached: its MLflow run (params only) and folder go."""
    from distillcaps.tracking.runs import mlflow_client

    mlflow_client(uri).delete_run(run_id)
    shutil.rmtree(out, ignore_errors=True)


def prune_checkpoints(ray_dir: Path, keep: set[Path]) -> None:
    """Delete the group's Ray checkpoints that are no member's best or last (Ray kept them all).
    A member that did not finish keeps all of its own, for a look at where it stopped."""
    from distillcaps.training.train_state import read_train_state
    from distillcaps.training.trainer import training_checkpoints

    for index in {read_train_state(folder).training for folder in keep}:  # the finished members
        for folder, _ in training_checkpoints(ray_dir, index):
            if folder not in keep:
                shutil.rmtree(folder, ignore_errors=True)


def finished(ray_dir: Path, cfg: Config, index: int) -> bool:
    """Member ``index`` reported the checkpoint of its last epoch."""
    from distillcaps.training.trainer import training_checkpoints

    return any(state.epoch >= cfg.train.epochs for _, state in training_checkpoints(ray_dir, index))


def one_line(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".strip()
    return text.splitlines()[0][:500]
