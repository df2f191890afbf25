"""train(cfg): Ray Data -> Ray Train (TorchTrainer) -> checkpoints + MLflow, then the final evaluation.

    result = train(load_config("tiny", ["train.epochs=3"]))
    result.run_id, result.output_dir, result.best_checkpoint, result.history

Output folder ``<run_dir>/train/<run name>-<time>/``:
    ray/checkpoint_*/            Ray Train's checkpoints (model + optimizer + scheduler + train state)
    checkpoints/best, last       model checkpoints (DistillCapsModel.load_checkpoint) of the best
                                 epoch (by train.checkpoint_metric, lower is better) and the last one
    config.yaml, run.json        the resolved config; the MLflow run id and tracking URI
    eval/, eval-rag/             final evaluation of the best checkpoint without / with retrieval
    history.json                 per-epoch metrics

Before Ray starts, the driver prepares everything that is computed once and cached: the data
set, the tiny CLAP + tiny LLM (pretrained if missing), the retrieval JSONL and the frozen encoder
features. Workers then only read caches.

``fit`` runs a list of trainings in one TorchTrainer; ``train`` passes one, and
``distillcaps.training.group.train_group`` several that share the data (one worker group start-up).
"""

from __future__ import annotations

import json
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from distillcaps.config import Config, ConfigError
from distillcaps.process_env import QUIET, set_defaults
from distillcaps.ray_runtime import ensure_ray

RAY_DIR = "ray"  # Ray Train's storage folder (checkpoints) inside a run's or a group's folder

CHECKPOINT_METRICS = (
    "val_loss_student",
    "val_loss_teacher",
    "val_loss_dda",
    "val_loss",
    "train_loss",
)


@dataclass
class TrainResult:
    run_id: str
    output_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    history: list[dict] = field(default_factory=list)
    evaluations: dict[str, Any] = field(default_factory=dict)  # "student" / "student_rag" -> EvalResult
    skipped_files: list = field(default_factory=list)  # clips dropped by data.on_bad_audio=skip


@dataclass
class PreparedData:
    datasets: dict[str, Any]  # "train", "val" -> ray.data.Dataset
    grid: tuple[int, int] | None  # encoder grid when features come from the cache
    num_train_rows: int
    skipped: list
    # validation clips' (captions, retrieved captions): the context diagnostic each training logs
    val_contexts: list[tuple[list[str], list[str]]] = field(default_factory=list)


def train(
    cfg: Config,
    *,
    run_name: str | None = None,
    parent_run_id: str | None = None,
    tags: dict[str, Any] | None = None,
    resume_dir: Path | None = None,
    callbacks: list | None = None,
    worker_logs_metrics: bool = True,
) -> TrainResult:
    """Train with Ray Train and log to MLflow; ``resume_dir`` continues a stopped run in its folder.

    ``callbacks`` go to the TorchTrainer's RunConfig (a Tune trial passes TuneReportCallback).
    ``worker_logs_metrics=False``: the Train worker does not log each epoch's metrics into the run;
    the caller does, from the reports (a sweep's driver: distillcaps.experiments.trial_runs).
    """
    set_defaults(QUIET)
    check_checkpoint_metric(cfg)
    cfg = with_absolute_paths(cfg)  # Ray workers need not share the driver's working directory
    run_id = None
    if resume_dir is not None:
        resume_dir = Path(resume_dir).resolve()
        run_id = check_resumable(resume_dir, cfg)
        output_dir = resume_dir
    else:
        name = run_name or f"{cfg.train.mode}-{cfg.preset}"
        output_dir = (Path(cfg.run_dir) / "train" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))

    # Ray first, so that the retrieval and feature stages run on the same instance as training
    ensure_ray(object_store_mb=cfg.train.object_store_mb, attempts=5)
    check_cluster_for_training(cfg)
    prepared = prepare_data(cfg)

    from distillcaps.tracking import log_config, start_run, tracking_uri

    uri = tracking_uri(cfg)
    with start_run(cfg, run_name or output_dir.name, parent_run_id, tags, run_id=run_id) as run:
        run_id = run.info.run_id
        (output_dir / "run.json").write_text(json.dumps({"run_id": run_id, "tracking_uri": uri}, indent=1))
        print(f"MLflow run id: {run_id}", flush=True)
        print(f"output folder: {output_dir}", flush=True)
        if resume_dir is None:
            log_config(run_id, cfg)
        if cfg.data.on_bad_audio == "skip":
            from distillcaps.data.usable import log_skipped

            log_skipped(uri, run_id, prepared.skipped)

        worker_run_id = run_id if worker_logs_metrics else None  # where the worker logs its epochs
        fit(
            cfg, prepared, output_dir, [loop_training(cfg, prepared, worker_run_id)], uri,
            latest_checkpoint(output_dir), callbacks,
        )  # fmt: skip
        found = collect_checkpoints(output_dir / RAY_DIR, output_dir, cfg.train.checkpoint_metric)
        if found is None:
            raise RuntimeError(f"training reported no checkpoint (see {output_dir / RAY_DIR})")
        best, last, history = found
        (output_dir / "history.json").write_text(json.dumps(history, indent=1))
        outcome = TrainResult(run_id, output_dir, best, last, history, skipped_files=prepared.skipped)
        if cfg.train.evaluate_after:
            outcome.evaluations = final_evaluation(cfg, best, output_dir, run_id)
        from distillcaps.tracking import RunLogger

        RunLogger(uri, run_id).log_artifacts(best, "checkpoint")
        RunLogger(uri, run_id).log_artifact(output_dir / "history.json")
    return outcome


def check_checkpoint_metric(cfg: Config) -> None:
    if cfg.train.checkpoint_metric not in CHECKPOINT_METRICS:
        raise ConfigError(
            f"train.checkpoint_metric: {cfg.train.checkpoint_metric!r} is not one of "
            f"{', '.join(CHECKPOINT_METRICS)}"
        )


# ---------------------------------------------------------------------------------------------
# Before Ray Train starts


def prepare_data(cfg: Config) -> PreparedData:
    """Caches first (data set, tiny CLAP/LLM, retrieval, frozen features), then the Ray Datasets."""
    from distillcaps.data import resolve_dataset_dir
    from distillcaps.data.batches import split_rows
    from distillcaps.data.usable import print_skipped, usable_records
    from distillcaps.retrieval import load_retrieved
    from distillcaps.standins import ensure_standins  # lazy: trains with torch on a cache miss
    from distillcaps.training.data_pipeline import audio_dataset, feature_dataset
    from distillcaps.training.feature_cache import FeatureCache, ensure_features

    root = resolve_dataset_dir(cfg)
    splits = {"train": cfg.data.train_subset, "val": cfg.data.val_subset}
    records, skipped = {}, []
    for split, subset in splits.items():
        kept, bad = usable_records(cfg, subset)
        if not kept:
            raise ValueError(f"subset {subset!r} of {root} has no usable clips")
        records[split] = kept
        skipped.extend(bad)
        print_skipped(bad, f"subset {subset!r}")

    # The stand-ins (tiny CLAP, tiny LLM) are trained here, once, in one process: the retrieval, the
    # feature cache and every worker's model only load them.
    ensure_standins(cfg)
    use_features = cfg.train.feature_cache and cfg.model.encoder.frozen
    retrieved = {split: load_retrieved(cfg, subset) for split, subset in splits.items()}
    # Datasets carry the context they were made in: workers print one line per epoch, and Ray
    # Data's progress bars would add a line a second to a run's log (seen in ablation logs).
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    datasets, grid = {}, None
    for split in splits:
        rows = split_rows(records[split], retrieved[split], per="caption")
        if split == "train":
            # rows come in clip order: shuffled once, with the run's seed, so that no clip trains
            # only at the end of the schedule (the workers' local shuffle only mixes 256 neighbours)
            random.Random(cfg.seed).shuffle(rows)
        if use_features:
            folder = ensure_features(cfg, records[split], splits[split])
            grid = FeatureCache.open(folder).grid
            datasets[split] = feature_dataset(rows, folder, cfg)
        else:
            datasets[split] = audio_dataset(rows, cfg, random_crop=cfg.train.random_crop and split == "train")
    num_train_rows = sum(len(r.captions) for r in records["train"])
    val_contexts = [
        (list(r.captions), [hit["caption"] for hit in retrieved["val"][r.fname]]) for r in records["val"]
    ]
    return PreparedData(datasets, grid, num_train_rows, skipped, val_contexts)


def with_absolute_paths(cfg: Config) -> Config:
    from distillcaps.config import from_dict

    raw = cfg.to_dict()
    for section, key in (
        (None, "run_dir"),
        ("data", "dataset_dir"),
        ("data", "data_root"),
        ("data", "cache_dir"),
        ("eval", "metrics_cache"),
        ("eval", "corenlp_dir"),
    ):
        node = raw if section is None else raw[section]
        if node.get(key):
            node[key] = str(Path(node[key]).expanduser().resolve())
    return from_dict(Config, raw)


def check_cluster_for_training(cfg: Config) -> None:
    """On the Ray instance this process is connected to (``distillcaps.ray_runtime.ensure_ray``):
    the tracking store reaches every host, and the data-statistics actor runs."""
    import ray

    from distillcaps.tracking import tracking_uri

    hosts = {node["NodeManagerAddress"] for node in ray.nodes() if node.get("Alive")}
    check_store_reaches_every_host(tracking_uri(cfg), hosts)
    start_data_stats_actor()


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "0.0.0.0")


def check_store_reaches_every_host(uri: str, hosts: set[str]) -> None:
    """On a cluster of several machines, Train workers elsewhere log to the same MLflow store only if
    it is a server at an address they reach: not this machine's loopback, not a local SQLite file
    (each machine would write its own copy, or fail)."""
    if len(hosts) <= 1:
        return
    host = urlparse(uri).hostname or ""
    if uri.startswith(("sqlite:", "file:")) or "://" not in uri or host in LOOPBACK_HOSTS:
        raise ConfigError(
            f"the MLflow tracking store {uri} is local to this machine, but the Ray cluster has "
            f"{len(hosts)} machines ({', '.join(sorted(hosts))}): set MLFLOW_TRACKING_URI (or "
            "tracking.tracking_uri) to a server every node reaches, e.g. http://<head address>:5000 "
            "(cluster.yaml starts one on the head)"
        )


def start_data_stats_actor() -> None:
    """Create Ray Data's stats actor from here, outside any placement group, unless it exists.

    The first dataset pass creates it (a detached, named actor), but from a Train worker it lands
    in the worker's placement group, so it dies with every fit and the next fit starts it again:
    a process and ~4.5 s of imports per sweep trial. Made here, it lives as long as the Ray instance.
    Inside a placement group (a Tune trial's process) this does nothing: the driver made it.
    """
    import ray.util

    if ray.util.get_current_placement_group() is not None:
        return
    try:  # Ray Data's own getter (not public API); without it, Ray Data creates the actor as before
        from ray.data._internal.stats import get_or_create_stats_actor
    except ImportError:
        return
    get_or_create_stats_actor()


def check_resumable(run_dir: Path, cfg: Config) -> str:
    """The MLflow run id of a run folder that can be resumed with cfg, or a clear error."""
    from distillcaps.config import from_dict
    from distillcaps.model.checkpoint import changed_model_keys

    if not (run_dir / "run.json").is_file() or not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{run_dir} is not a training output folder (no run.json / config.yaml)")
    saved = from_dict(Config, yaml.safe_load((run_dir / "config.yaml").read_text()))
    changed = changed_model_keys(saved, cfg)
    if changed:
        raise ConfigError(
            f"cannot resume {run_dir}: its checkpoints were trained with a different model config "
            f"({', '.join(changed)})"
        )
    return json.loads((run_dir / "run.json").read_text())["run_id"]


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest Ray checkpoint in a run folder (used by --resume when Ray has no state of its own)."""
    found = training_checkpoints(output_dir / RAY_DIR)
    return max(found, key=lambda item: (item[1].epoch, item[1].global_step))[0] if found else None


# ---------------------------------------------------------------------------------------------
# Ray Train


def loop_training(cfg: Config, prepared: PreparedData, run_id: str | None) -> dict[str, Any]:
    """One entry of the worker loop's "trainings" list (see distillcaps.training.loop)."""
    from distillcaps.training.loop import steps_per_epoch

    return {
        "cfg": cfg.to_dict(),
        "steps_per_epoch": steps_per_epoch(prepared.num_train_rows, cfg),
        "run_id": run_id,
        "val_contexts": prepared.val_contexts,
    }


def fit(
    cfg: Config,
    prepared: PreparedData,
    storage_dir: Path,
    trainings: list[dict[str, Any]],
    uri: str,
    resume: Path | None = None,
    callbacks: list | None = None,
):
    """One TorchTrainer run that trains ``trainings`` one after another; checkpoints in storage_dir/ray.

    cfg gives the run's scaling and failure settings (a group's members share them)."""
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from distillcaps.ray_runtime import forwarded_env
    from distillcaps.training.loop import SCORE_KEY, train_loop_per_worker

    if len(trainings) == 1:  # keep the best checkpoint by the metric; Ray always keeps the latest too
        # SCORE_KEY: the epoch's checkpoint_metric, loop.UNSCORED for a step checkpoint (never the best), so
        # that a step checkpoint stays only while it is the latest, until the next one is complete
        checkpoints = CheckpointConfig(
            num_to_keep=1, checkpoint_score_attribute=SCORE_KEY, checkpoint_score_order="min"
        )
    else:  # Ray would rank one model's checkpoints against another's: keep all, prune after the fit
        checkpoints = CheckpointConfig(num_to_keep=None)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "trainings": trainings,
            "grid": list(prepared.grid) if prepared.grid else None,
            "tracking_uri": uri,
            "resume_dir": str(resume) if resume else None,
            "ray_dir": str(storage_dir / RAY_DIR),
        },
        scaling_config=ScalingConfig(
            num_workers=cfg.train.num_workers,
            use_gpu=cfg.train.use_gpu,
            resources_per_worker={"CPU": cfg.train.cpus_per_worker},
        ),
        run_config=RunConfig(
            name=RAY_DIR,
            storage_path=str(storage_dir),
            failure_config=FailureConfig(max_failures=cfg.train.max_failures),
            checkpoint_config=checkpoints,
            worker_runtime_env={"env_vars": forwarded_env()},
            callbacks=callbacks,
        ),
        datasets=prepared.datasets,
        dataset_config=DataConfig(
            datasets_to_split=datasets_to_split(cfg.train.num_workers),
            execution_options={"train": ordered_ingest_options()},
        ),
    )
    return trainer.fit()


def ordered_ingest_options():
    """Ray Data's ingest options with ``preserve_order``: the training rows reach each worker in the
    same order in every run (and its split across workers is the same), which a resume at a step
    needs to skip exactly the batches already trained on (the data stages run one task at a time,
    distillcaps.training.data_pipeline.map_stage, so little concurrency is given up)."""
    from ray.train import DataConfig

    options = DataConfig.default_ingest_options()
    options.preserve_order = True
    return options


def datasets_to_split(num_workers: int) -> str | list[str]:
    """Split every dataset across several workers; none for one. A split dataset gets a split
    coordinator, one more actor process per dataset (~6 CPU-seconds each to start on 2 cores),
    which for a single worker splits nothing: its pass then runs in the worker itself."""
    return "all" if num_workers > 1 else []


def training_checkpoints(ray_dir: Path, index: int | None = 0) -> list[tuple[Path, Any]]:
    """(folder, TrainState) of every whole Ray checkpoint in ray_dir of training ``index`` (None: of
    any training).

    A damaged one (a copy into storage cut off by a crash: unreadable state, truncated weights) is
    skipped with a warning, so resuming takes the newest whole checkpoint."""
    from distillcaps.training.train_state import STATE_FILE, checkpoint_damage, read_train_state

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


def newest_whole_checkpoint(ray_dir: Path) -> Path | None:
    """The newest whole checkpoint in ray_dir, of whichever training of a group came last."""
    found = training_checkpoints(ray_dir, None)
    return max(found, key=lambda item: (item[1].training, item[1].global_step))[0] if found else None


def pick_checkpoints(ray_dir: Path, metric: str, index: int = 0) -> tuple[Path, Path, Any] | None:
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


def collect_checkpoints(
    ray_dir: Path, output_dir: Path, metric: str, index: int = 0
) -> tuple[Path, Path, list[dict]] | None:
    """Copy training ``index``'s best and last model checkpoints to output_dir/checkpoints/{best,last};
    -> (best, last, per-epoch history), or None when it reported no checkpoint."""
    picked = pick_checkpoints(ray_dir, metric, index)
    if picked is None:
        return None
    best_dir, last_dir, last_state = picked
    return (*copy_model_checkpoints(best_dir, last_dir, output_dir), last_state.history)


def copy_model_checkpoints(best_dir: Path, last_dir: Path, output_dir: Path) -> tuple[Path, Path]:
    """The model part of two Ray checkpoints -> output_dir/checkpoints/{best,last}."""
    from distillcaps.training.train_state import MODEL_DIR

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


def final_evaluation(cfg: Config, checkpoint: Path, output_dir: Path, run_id: str) -> dict[str, Any]:
    from distillcaps.evaluation.evaluate import evaluate

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
