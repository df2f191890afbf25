"""Ray Tune sweep over KL temperature, top-k, LoRA rank and learning rate; the winner is registered.

Train V2 idiom (Ray 2.60): each Tune trial runs a function that builds and fits a ``TorchTrainer``
through ``distillcaps.training.train`` with ``TuneReportCallback``, which forwards every epoch's
``ray.train.report`` to Tune, so ASHA can stop weak trials early. ``Tuner(trainer)`` is not used
(it fails in Train V2). ``ray.tune.RunConfig`` (the sweep) and ``ray.train.RunConfig`` (inside
``train``) are different classes.

Resources: a trial's function holds ``--trial-cpus`` (0.25: it mostly waits on its TorchTrainer);
its Train worker asks for ``train.cpus_per_worker`` (0.5 in the default config, sweep.yaml) and its
Ray Data stages for ``train.data_stage_cpus`` (0.25), so a trial needs 1 CPU and two run at once on
2 cores. By default as many trials run at once as the Ray cluster's CPUs (and GPUs, with
``train.use_gpu=true``) hold;
``--max-concurrent`` asks for a number, refused up front on a local instance where it cannot fit
(trials that took every CPU left none for their data stages, and their Train workers waited for
their datasets until stopped). The search algorithm itself bounds the trials at once: Tune ignores
``TuneConfig.max_concurrent_trials`` for a ready-made ``BasicVariantGenerator`` (it only warns).

MLflow: the sweep is the parent run; each trial's training run is a child (tagged trial_id and its
hyper-parameters), whose epochs the sweep's driver logs from Tune's results (``trial_runs``). The
best trial's student checkpoint is logged as artifacts of its run and registered as
``distillcaps-student`` with alias ``champion`` (see docs/serving.md).
"""

from __future__ import annotations

import argparse
import json
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from distillcaps.config import Config
from distillcaps.experiments.cli_args import (
    config_source,
    data_notes,
    output_dir,
    parse_seeds,
    positive_int,
)
from distillcaps.experiments.outputs import finish_experiment
from distillcaps.experiments.parallel import check_parallel_trainings, trainings_that_fit
from distillcaps.experiments.results import ExperimentResults, RowResult, RunFailure
from distillcaps.experiments.runner import ConfigSource, one_line
from distillcaps.experiments.tracking import KIND_TAG, ExperimentTracker
from distillcaps.ray_runtime import ensure_ray
from distillcaps.registry import Registry
from distillcaps.tracking.registry import register_run_artifacts
from distillcaps.training import trainer

SCRIPT = "sweep"
MODEL_NAME = "distillcaps-student"
ALIAS = "champion"
CHECKPOINT_ARTIFACT = "checkpoint"  # where training logs the best checkpoint (serving reads it there)

SEARCH_SPACES: Registry[Callable[[], dict[str, Any]]] = Registry("sweep search space")
SEARCH_ALGORITHMS: Registry[Callable[..., Any]] = Registry("sweep search algorithm")


@SEARCH_SPACES.register("default")
def default_space() -> dict[str, Any]:
    """Dotted config key -> Tune domain. The paper fixes T=1, k=3, r=8, lr=5e-6 (7B LLM)."""
    from ray import tune

    return {
        "train.temperature": tune.choice([0.5, 1.0, 2.0, 4.0]),
        "retrieval.top_k": tune.choice([1, 3, 5]),
        "model.llm.lora_r": tune.choice([4, 8, 16]),
        "train.lr": tune.loguniform(2e-4, 3e-3),
    }


@SEARCH_ALGORITHMS.register("random")
def random_search(seed: int, max_concurrent: int) -> Any:
    from ray.tune.search.basic_variant import BasicVariantGenerator

    return BasicVariantGenerator(random_state=seed, max_concurrent=max_concurrent)


@SEARCH_ALGORITHMS.register("optuna")
def optuna_search(seed: int, max_concurrent: int) -> Any:
    try:
        from ray.tune.search.optuna import OptunaSearch
    except ImportError as err:  # optuna is not a dependency of the project
        raise ValueError(f"--search-alg optuna needs the optuna package ({err})") from None
    from ray.tune.search import ConcurrencyLimiter

    # metric and mode come from the TuneConfig (set once, not twice)
    return ConcurrencyLimiter(OptunaSearch(seed=seed), max_concurrent=max_concurrent)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--num-samples", type=int, default=None, help="trials (default 12; --quick 4)")
    parser.add_argument(
        "--max-concurrent",
        type=positive_int,
        default=None,
        help="trials at once (default: as many as the Ray cluster's CPUs and GPUs hold; 2 on 2 cores)",
    )
    parser.add_argument(
        "--trial-cpus",
        type=float,
        default=0.25,
        help="CPUs a trial's own process holds (it mostly waits on its TorchTrainer); its Train worker "
        "and data stages ask for train.cpus_per_worker and train.data_stage_cpus on top",
    )
    parser.add_argument("--search-alg", default="random", choices=SEARCH_ALGORITHMS.names())
    parser.add_argument("--space", default="default", choices=SEARCH_SPACES.names())
    parser.add_argument("--grace-period", type=int, default=1, help="ASHA: epochs before a trial can stop")
    parser.add_argument("--no-register", action="store_true", help="do not register the best checkpoint")
    parser.set_defaults(config="sweep")  # distillcaps/configs/sweep.yaml: trials long enough for ASHA


def absolute_overrides(cfg: Config) -> list[str]:
    """Trials run in Ray actors whose working directory is not ours: pin every relative path."""
    uri = ExperimentTracker.uri_of(cfg)
    out = [
        f"run_dir={json.dumps(str(Path(cfg.run_dir).resolve()))}",
        f"tracking.tracking_uri={json.dumps(uri)}",
    ]
    out.append(f"data.data_root={json.dumps(str(Path(cfg.data.data_root).resolve()))}")
    if cfg.data.dataset_dir:
        out.append(f"data.dataset_dir={json.dumps(str(Path(cfg.data.dataset_dir).resolve()))}")
    if cfg.data.cache_dir:
        out.append(f"data.cache_dir={json.dumps(str(Path(cfg.data.cache_dir).resolve()))}")
    return out


def trial_overrides(params: dict[str, Any]) -> list[str]:
    return [f"{key}={json.dumps(value)}" for key, value in sorted(params.items())]


def make_trainable(
    source: ConfigSource, parent_run_id: str, seed: int, metric: str
) -> Callable[[dict], None]:
    """The Tune trainable: one call = one trial = one TorchTrainer fit whose reports reach Tune."""

    def trial(params: dict[str, Any]) -> None:
        from ray import tune

        trial_id = tune.get_context().get_trial_id()
        cfg = source.load(*trial_overrides(params), f"seed={seed}")
        result = train_reporting_to_tune(
            cfg,
            run_name=f"{SCRIPT}/trial_{trial_id}",
            parent_run_id=parent_run_id,
            tags={
                KIND_TAG: "trial",
                "script": SCRIPT,
                "trial_id": trial_id,
                "seed": str(seed),
                **{f"hp.{k}": str(v) for k, v in params.items()},
            },
        )
        best = min((h[metric] for h in result.history if h.get(metric) is not None), default=None)
        # One last report carrying where the trial's best student is; ASHA sees the same metric.
        tune.report(
            {
                metric: best if best is not None else float("inf"),
                "mlflow_run_id": result.run_id,
                "best_checkpoint": str(result.best_checkpoint),
            }
        )

    return trial


def train_reporting_to_tune(cfg: Config, *, run_name: str, parent_run_id: str, tags: dict[str, str]) -> Any:
    """``distillcaps.training.train`` with ``TuneReportCallback`` attached to its TorchTrainer, so
    every epoch's report reaches Tune (ASHA stops trials on it). The sweep's driver logs those
    reports into the trial's run (``TrialRunLogger``), not the Train worker."""
    from ray.tune.integration.ray_train import TuneReportCallback

    return trainer.train(
        cfg,
        run_name=run_name,
        parent_run_id=parent_run_id,
        tags=tags,
        callbacks=[TuneReportCallback()],
        worker_logs_metrics=False,
    )


def run_sweep(args: argparse.Namespace) -> int:
    source = config_source(args)
    cfg = source.load()
    seed = parse_seeds(args.seeds, args.quick)[0]
    num_samples = args.num_samples or (4 if args.quick else 12)
    metric = cfg.train.checkpoint_metric
    out = output_dir(args, SCRIPT, cfg)
    # Trials are compared on their validation loss: the final evaluation would only cost time.
    trial_defaults = ["train.evaluate_after=false"]
    source = ConfigSource(source.path, [*source.overrides, *trial_defaults, *absolute_overrides(cfg)])
    cfg = source.load()
    space = SEARCH_SPACES.get(args.space)()
    tracker, parent_id, results = open_sweep(args, cfg, space, seed, num_samples)
    try:
        import ray

        # With the dashboard: without its State API, Train's PlacementGroupCleaner never learns that
        # the TrainController of an ASHA-stopped trial died (Tune kills the trial's process), so the
        # trial's placement group keeps its CPUs until the sweep ends and later trials' data stages
        # wait for a CPU forever (tests/experiments/test_sweep_stopped_trials.py).
        ensure_ray(object_store_mb=cfg.train.object_store_mb, attempts=5, include_dashboard=True)
        # once, here: trials run at once, and the tiny LLM's build takes no lock
        from distillcaps.standins import ensure_standins  # lazy: torch, and it trains on a miss

        ensure_standins(cfg)
        at_once = trials_at_once(args, cfg, num_samples, ray.cluster_resources())
        tracker.log_params(parent_id, {"max_concurrent": at_once, "trial_cpus": args.trial_cpus})
        results.notes.append(f"{at_once} trial(s) at a time.")
        print(f"[{SCRIPT}] {num_samples} trials, {at_once} at a time", flush=True)
        tuner = build_tuner(args, source, cfg, space, parent_id, seed, at_once, num_samples, out, tracker)
        grid = tuner.fit()
        collect_trials(grid, results, metric)
        best = best_finished_trial(grid, metric)
        summarize_best(best, results, metric, tracker, parent_id, cfg, register=not args.no_register)
    except Exception as err:
        traceback.print_exc()
        results.failures.append(RunFailure("sweep", SCRIPT, seed, one_line(err)))
    finish_experiment(results, out, tracker, parent_id)
    return 0 if results.ok else 1


def open_sweep(
    args: argparse.Namespace, cfg: Config, space: dict[str, Any], seed: int, num_samples: int
) -> tuple[ExperimentTracker, str, ExperimentResults]:
    """The sweep's MLflow parent run (its settings and search space as params) and its empty
    results. -> (tracker, parent run id, results)"""
    metric = cfg.train.checkpoint_metric
    tracker = ExperimentTracker(cfg)
    parent_id = tracker.start_parent(SCRIPT, run_name=f"{SCRIPT} {time.strftime('%Y-%m-%d %H:%M:%S')}")
    tracker.log_params(
        parent_id, {"num_samples": num_samples, "search_alg": args.search_alg, "metric": metric}
    )
    tracker.log_params(parent_id, {f"space.{k}": repr(v) for k, v in space.items()})
    results = ExperimentResults(
        script=SCRIPT,
        title=f"Ray Tune sweep: {', '.join(space)} (ASHA on {metric})",
        seeds=[seed],
        metrics=[metric],
        notes=[
            *data_notes(cfg),
            f"{num_samples} trials, search '{args.search_alg}', ASHA, lower {metric} is better.",
        ],
        parent_run_id=parent_id,
        scale=1.0,
        unit=metric,
    )
    return tracker, parent_id, results


def build_tuner(
    args: argparse.Namespace,
    source: ConfigSource,
    cfg: Config,
    space: dict[str, Any],
    parent_id: str,
    seed: int,
    at_once: int,
    num_samples: int,
    out: Path,
    tracker: ExperimentTracker,
):
    """Tune's ASHA over ``space`` on the validation metric (lower is better), one process per trial."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from distillcaps.experiments.trial_runs import TrialRunLogger  # lazy: imports ray.tune

    metric = cfg.train.checkpoint_metric
    return tune.Tuner(
        tune.with_resources(make_trainable(source, parent_id, seed, metric), {"cpu": args.trial_cpus}),
        param_space=space,
        tune_config=tune.TuneConfig(
            metric=metric,
            mode="min",
            scheduler=ASHAScheduler(max_t=max(cfg.train.epochs + 1, 2), grace_period=args.grace_period),
            search_alg=SEARCH_ALGORITHMS.get(args.search_alg)(seed=seed, max_concurrent=at_once),
            num_samples=num_samples,
            # Not True, although it would save a trial's imports: ASHA stops a trial while its
            # TorchTrainer is still fitting, Tune gives that thread 2 s to end before it reuses
            # the process, the fit cannot end so soon, and the next trial then fails ("Could not
            # re-use actor"). A new process per trial also ends the stopped trial's fit with it.
            reuse_actors=False,
        ),
        run_config=tune.RunConfig(
            name=f"{SCRIPT}-{parent_id[:8]}",
            storage_path=str(out / "ray"),
            callbacks=[TrialRunLogger(tracker, parent_id)],
        ),
    )


def trials_at_once(args: argparse.Namespace, cfg: Config, num_samples: int, cluster: dict[str, float]) -> int:
    """--max-concurrent, checked against a local instance; by default as many as ``cluster`` holds.

    A trial holds ``--trial-cpus`` for its own process plus its training's resources. A joined
    cluster (``$RAY_ADDRESS``) may be autoscaling: an explicit number is not checked there."""
    if args.max_concurrent is None:
        return min(num_samples, trainings_that_fit(cfg, cluster, extra_cpus=args.trial_cpus))
    if not os.environ.get("RAY_ADDRESS"):
        check_parallel_trainings(
            cfg,
            args.max_concurrent,
            cluster,
            flag="--max-concurrent",
            extra_cpus=args.trial_cpus,
            extra_flag="--trial-cpus",
        )
    return args.max_concurrent


def collect_trials(grid: Any, results: ExperimentResults, metric: str) -> None:
    for trial in grid:
        trial_id = (
            trial.metrics.get("trial_id", Path(trial.path).name) if trial.metrics else Path(trial.path).name
        )
        params = trial.config or {}
        row = RowResult(f"trial_{trial_id}", {k: _fmt(v) for k, v in sorted(params.items())})
        frame = trial.metrics_dataframe
        values = [] if frame is None or metric not in frame else [v for v in frame[metric].tolist() if v == v]
        if values:
            row.per_seed[results.seeds[0]] = {metric: float(min(values))}
        if trial.metrics and trial.metrics.get("mlflow_run_id"):
            row.run_ids[results.seeds[0]] = trial.metrics["mlflow_run_id"]
        results.rows.append(row)
        if trial.error:
            results.failures.append(RunFailure("trial", row.name, results.seeds[0], one_line(trial.error)))
    results.extra["trials"] = len(results.rows)


def best_finished_trial(grid: Any, metric: str) -> Any:
    """Lowest metric among trials that finished (an ASHA-stopped trial reported no checkpoint)."""
    finished = [r for r in grid if r.metrics and r.metrics.get("best_checkpoint") and r.error is None]
    if not finished:
        raise RuntimeError("no trial finished; nothing to register")
    return min(finished, key=lambda r: float(r.metrics.get(metric, float("inf"))))


def summarize_best(
    best: Any,
    results: ExperimentResults,
    metric: str,
    tracker: ExperimentTracker,
    parent_id: str,
    cfg: Config,
    *,
    register: bool,
) -> None:
    checkpoint = (best.metrics or {}).get("best_checkpoint")
    run_id = (best.metrics or {}).get("mlflow_run_id")
    results.extra["best_config"] = json.dumps(best.config, sort_keys=True)
    results.extra["best_" + metric] = float(best.metrics.get(metric, float("nan")))
    tracker.log_params(parent_id, {f"best.{k}": v for k, v in best.config.items()})
    if not checkpoint or not run_id:
        raise RuntimeError("the best trial did not finish (no checkpoint reported); nothing to register")
    results.extra["best_run_id"] = run_id
    results.extra["best_checkpoint"] = checkpoint
    if register:
        version = register_champion(run_id, cfg)
        results.extra["registered"] = f"models:/{MODEL_NAME}@{ALIAS} (version {version})"
        tracker.client.set_tag(parent_id, "registered_version", version)
        tracker.client.set_tag(run_id, "champion", "true")


def register_champion(run_id: str, cfg: Config) -> str:
    """Register the run's ``checkpoint/`` artifacts (logged by training) and point the alias at them.

    The artifacts are a DistillCaps checkpoint folder (config.json + safetensors + tokenizer), the
    layout ``distillcaps.serving.model_store`` downloads for ``models:/distillcaps-student@champion``.
    """
    uri = ExperimentTracker.uri_of(cfg)
    if not MlflowClient(uri).list_artifacts(run_id, CHECKPOINT_ARTIFACT):
        raise RuntimeError(f"run {run_id} has no {CHECKPOINT_ARTIFACT}/ artifacts to register")
    return register_run_artifacts(uri, run_id, CHECKPOINT_ARTIFACT, MODEL_NAME, ALIAS)


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
