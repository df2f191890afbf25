"""Run an ExperimentPlan over seeds: train each needed model once, evaluate every row on it.

A seed's trainings that read the same data (``distillcaps.training.group.group_key``) train one after
another in one Ray Train worker group (``train_group``), which starts once instead of once per
training; its rows are evaluated when the group is done.

MLflow layout: the parent run (one per invocation) holds the summary and the three outputs; each
training is a child run (made by ``train_group`` with ``parent_run_id``) and each row × seed is a
child run holding that evaluation's metrics, tagged script/row/seed/training.
A failure is recorded and the rest still runs; the caller exits non-zero when any run failed.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distillcaps.config import Config, load_config
from distillcaps.evaluation.diversity import DIVERSITY_METRICS, diversity_report
from distillcaps.evaluation.evaluate import evaluate, read_predictions_csv
from distillcaps.experiments.outputs import finish_experiment
from distillcaps.experiments.plan import ExperimentPlan, RowSpec, TrainingSpec
from distillcaps.experiments.results import ExperimentResults, RowResult, RunFailure
from distillcaps.experiments.tracking import KIND_TAG, ExperimentTracker
from distillcaps.training.group import GroupOutcome, group_key, train_group
from distillcaps.training.trainer import train

TrainFn = Callable[..., Any]  # as distillcaps.training.trainer.train(cfg, *, run_name, parent_run_id, tags)
# as distillcaps.training.group.train_group(cfgs, *, run_names, parent_run_id, tags, group_name)
TrainGroupFn = Callable[..., Any]
EvaluateFn = Callable[..., Any]  # distillcaps.evaluation.evaluate(checkpoint, cfg, *, subset, rag, ...)


# The rows evaluate each checkpoint themselves (only the settings they need, each in its own run).
TRAIN_OVERRIDES = ("train.evaluate_after=false",)

default_train: TrainFn = train
default_train_group: TrainGroupFn = train_group


def sequential_group(train_fn: TrainFn) -> TrainGroupFn:
    """A TrainGroupFn that trains the members one by one through ``train_fn`` (each its own fit):
    how a custom ``train_fn`` (a test's stand-in) runs a plan."""

    def train_members(
        cfgs: Sequence[Config], *, run_names: Sequence[str], tags: Sequence[dict], **kwargs: Any
    ) -> Any:
        kwargs.pop("group_name", None)
        outcome = GroupOutcome(results=[None] * len(cfgs))
        started = time.perf_counter()
        for index, (cfg, name, member_tags) in enumerate(zip(cfgs, run_names, tags)):
            member_start = time.perf_counter()
            try:
                outcome.results[index] = train_fn(cfg, run_name=name, tags=member_tags, **kwargs)
            except Exception as err:  # a failed run is recorded; the others still run
                traceback.print_exc(file=sys.stderr)
                outcome.failed[index] = one_line(err)
            outcome.member_seconds[index] = time.perf_counter() - member_start
        outcome.seconds = time.perf_counter() - started
        return outcome

    return train_members


def default_evaluate(
    checkpoint: Path, cfg: Config, *, training_cfg: Config | None = None, **kwargs: Any
) -> Any:
    """Interface 8's evaluate; in-domain, so the training config adds nothing. The row run gets
    evaluate()'s artifacts; its figures are logged by ``_evaluate_one`` under one key each."""
    return evaluate(checkpoint, cfg, log_metrics=False, **kwargs)


@dataclass
class ConfigSource:
    """The invocation's config: a preset/YAML plus dotted overrides; variants add more overrides."""

    path: str | None = "tiny"
    overrides: list[str] = field(default_factory=list)

    def load(self, *extra: str) -> Config:
        return load_config(self.path, [*self.overrides, *extra])


@dataclass
class ExperimentRun:
    """What every job of one invocation shares: the plan, its config, where results go and how."""

    plan: ExperimentPlan
    source: ConfigSource
    output_dir: Path
    tracker: ExperimentTracker
    parent_id: str  # the invocation's MLflow parent run
    results: ExperimentResults
    rows: dict[str, RowResult]  # by row name; the same objects as results.rows
    train_group_fn: TrainGroupFn
    evaluate_fn: EvaluateFn
    log: Callable[[str], None]


def one_line(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".strip()
    return text.splitlines()[0][:500] if text else type(err).__name__


def run_plan(
    plan: ExperimentPlan,
    source: ConfigSource,
    seeds: Sequence[int],
    output_dir: Path,
    *,
    paper_lookup: Callable[[RowSpec], dict[str, dict[str, float | None]]] | None = None,
    notes: Sequence[str] = (),
    train_fn: TrainFn = default_train,
    evaluate_fn: EvaluateFn = default_evaluate,
    log: Callable[[str], None] = print,
    parallel: int = 1,
    train_group_fn: TrainGroupFn | None = None,
) -> ExperimentResults:
    """``parallel`` > 1 runs that many (seed, group of trainings) jobs at once, each followed by its
    rows' evaluations, after the first job has run alone to build the caches every job shares.

    Trainings go through ``train_group_fn``; by default one worker group per seed and data
    (``train_group``), or, when a custom ``train_fn`` is given, that function once per training."""
    if train_group_fn is None:
        train_group_fn = default_train_group if train_fn is default_train else sequential_group(train_fn)
    log = serialized(log)  # jobs in threads would otherwise interleave their lines
    tracker, parent_id, results, rows = open_experiment(plan, source, seeds, notes, paper_lookup)
    log(f"[{plan.script}] MLflow parent run {parent_id} ({tracker.uri}); output {output_dir}")
    run = ExperimentRun(
        plan, source, output_dir, tracker, parent_id, results, rows, train_group_fn, evaluate_fn, log
    )
    jobs = [(run, seed, group) for seed in seeds for group in training_groups(plan, source, seed)]
    try:
        run_jobs(jobs, train_and_evaluate, parallel)
    except BaseException as err:  # Ctrl-C / SIGTERM: the partial results still say what happened
        results.failures.append(RunFailure("interrupted", plan.script, -1, one_line(err) or "interrupted"))
        raise
    finally:
        finish_experiment(results, output_dir, tracker, parent_id, log=log)
    return results


def open_experiment(
    plan: ExperimentPlan,
    source: ConfigSource,
    seeds: Sequence[int],
    notes: Sequence[str],
    paper_lookup: Callable[[RowSpec], dict[str, dict[str, float | None]]] | None,
) -> tuple[ExperimentTracker, str, ExperimentResults, dict[str, RowResult]]:
    """The invocation's MLflow parent run (the config as params) and its empty results, one row each.
    -> (tracker, parent run id, results, rows by name)."""
    base_cfg = source.load()
    tracker = ExperimentTracker(base_cfg)
    parent_id = tracker.start_parent(
        plan.script,
        run_name=f"{plan.script} {time.strftime('%Y-%m-%d %H:%M:%S')}",
        tags={"seeds": seeds_tag(seeds)},
    )
    tracker.log_params(parent_id, {"config": source.path, "overrides": " ".join(source.overrides)})
    tracker.log_params(parent_id, {k: v for k, v in base_cfg.flat().items()})
    results = ExperimentResults(
        script=plan.script,
        title=plan.title,
        seeds=list(seeds),
        metrics=list(base_cfg.eval.metrics),
        notes=list(notes),
        parent_run_id=parent_id,
    )
    rows = {r.name: RowResult(r.name, dict(r.columns), r.training, r.rag) for r in plan.rows}
    for spec in plan.rows:
        rows[spec.name].paper = paper_lookup(spec) if paper_lookup else {}
    results.rows = list(rows.values())
    return tracker, parent_id, results, rows


def train_and_evaluate(run: ExperimentRun, seed: int, group: list[TrainingSpec]) -> None:
    """One job: train a group of one seed, then evaluate every row of each training that finished."""
    checkpoints = _train_group(run, group, seed)
    for training in group:
        checkpoint = checkpoints.get(training.key)
        for spec in run.plan.rows_of(training.key):
            if checkpoint is None:
                reason = f"skipped: training {training.key!r} failed"
                run.results.failures.append(RunFailure("evaluate", spec.name, seed, reason))
                continue
            _evaluate_one(run, spec, training, seed, checkpoint)


def serialized(log: Callable[[str], None]) -> Callable[[str], None]:
    lock = threading.Lock()

    def locked(line: str) -> None:
        with lock:
            log(line)

    return locked


def run_jobs(jobs: list, job_fn: Callable[..., None], parallel: int) -> None:
    """Run ``job_fn(*job)`` for every job, ``parallel`` at a time (threads: each job mostly waits on
    Ray). The first runs alone, so data, the pretrained stand-ins, retrieval and feature caches are
    built once rather than by every job at once. On Ctrl-C the jobs not yet started are dropped and
    the partial results written; the running ones finish before the process exits."""
    if parallel < 1:
        raise ValueError(f"parallel trainings: {parallel} (expected 1 or more)")
    if parallel == 1 or len(jobs) < 2:
        for job in jobs:
            job_fn(*job)
        return
    job_fn(*jobs[0])
    pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="experiment-job")
    try:
        for future in [pool.submit(job_fn, *job) for job in jobs[1:]]:
            future.result()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)  # the partial results are written now
        raise
    pool.shutdown(wait=True)


def seeds_tag(seeds: Sequence[int]) -> str:
    return ",".join(str(s) for s in seeds)


def training_groups(plan: ExperimentPlan, source: ConfigSource, seed: int) -> list[list[TrainingSpec]]:
    """The plan's trainings for one seed, grouped (in plan order) by the data they read."""
    groups: dict[str, list[TrainingSpec]] = {}
    for training in plan.trainings:
        try:
            key = group_key(source.load(*training.overrides, *TRAIN_OVERRIDES, f"seed={seed}"))
        except Exception:  # a config that does not load fails alone, in its own group, with its error
            key = f"unloadable:{training.key}"
        groups.setdefault(key, []).append(training)
    return list(groups.values())


def _train_group(run: ExperimentRun, group: list[TrainingSpec], seed: int) -> dict[str, Path]:
    """Train a group; members the group never reached (an earlier one failed) go to a new group.
    -> {training key: best checkpoint} of the trainings that finished; failures recorded."""
    done: dict[str, Path] = {}
    pending = list(group)
    while pending:
        members, cfgs = _loaded_configs(run, pending, seed)
        outcome = _fit_group(run, members, cfgs, seed) if members else None
        if outcome is None:
            break
        done.update(_record_group(run, members, outcome, seed))
        pending = [members[i] for i in outcome.not_started]
    return done


def _training_config(run: ExperimentRun, training: TrainingSpec, seed: int) -> Config:
    return run.source.load(*training.overrides, *TRAIN_OVERRIDES, f"seed={seed}")


def _loaded_configs(
    run: ExperimentRun, trainings: list[TrainingSpec], seed: int
) -> tuple[list[TrainingSpec], list[Config]]:
    """The trainings whose config loads, with their configs; the others are recorded as failed."""
    members, cfgs = [], []
    for training in trainings:
        try:
            cfgs.append(_training_config(run, training, seed))
            members.append(training)
        except Exception as err:
            _record_training_failure(run.results, training, seed, err, 0.0)
    return members, cfgs


def _fit_group(
    run: ExperimentRun, members: list[TrainingSpec], cfgs: list[Config], seed: int
) -> GroupOutcome | None:
    """One call of the group function; None when the group as a whole failed (every member recorded)."""
    script = run.plan.script
    run.log(f"[{script}] train {', '.join(t.key for t in members)} seed {seed} (one worker group) ...")
    start = time.perf_counter()
    try:
        return run.train_group_fn(
            cfgs,
            run_names=[f"{script}/{t.key}/seed{seed}" for t in members],
            parent_run_id=run.parent_id,
            tags=[
                {"script": script, "training": t.key, "seed": str(seed), KIND_TAG: "training"}
                for t in members
            ],
            group_name=f"{script}/seed{seed}-group",
        )
    except Exception as err:  # the group as a whole was refused: every member failed with it
        traceback.print_exc(file=sys.stderr)
        for training in members:
            _record_training_failure(run.results, training, seed, err, time.perf_counter() - start)
        return None


def _record_group(
    run: ExperimentRun, members: list[TrainingSpec], outcome: GroupOutcome, seed: int
) -> dict[str, Path]:
    """Each member's entry in results.json's "trainings" -> {training key: best checkpoint} of the
    members that finished (those not started are recorded by the group that trains them)."""
    script, results = run.plan.script, run.results
    keys = ", ".join(t.key for t in members)
    group = {"group": keys, "group_seconds": round(outcome.seconds, 2)}
    done: dict[str, Path] = {}
    for index, training in enumerate(members):
        seconds = outcome.member_seconds[index]
        result = outcome.results[index]
        if result is not None:
            done[training.key] = Path(result.best_checkpoint)
            final = result.history[-1] if result.history else {}  # the last epoch's report
            losses = {k: final.get(k) for k in ("val_loss_student", "val_loss_teacher")}
            _record_training(
                results, training, seed, seconds, status="ok", run_id=result.run_id,
                checkpoint=portable_path(Path(result.best_checkpoint)), **losses, **group,
            )  # fmt: skip
            run.log(f"[{script}] train {training.key} seed {seed}: run {result.run_id}")
        elif index in outcome.failed:
            results.failures.append(RunFailure("train", training.key, seed, outcome.failed[index]))
            _record_training(
                results, training, seed, seconds, status="failed", error=outcome.failed[index], **group
            )
    run.log(f"[{script}] group {keys} seed {seed}: {outcome.seconds:.1f}s")
    return done


def _record_training_failure(
    results: ExperimentResults, training: TrainingSpec, seed: int, err: BaseException, seconds: float
) -> None:
    results.failures.append(RunFailure("train", training.key, seed, one_line(err)))
    _record_training(results, training, seed, seconds, status="failed", error=one_line(err))


def _record_training(
    results: ExperimentResults, training: TrainingSpec, seed: int, seconds: float | None, **fields: Any
) -> None:
    """One entry of results.json's "trainings"."""
    seconds = None if seconds is None else round(seconds, 2)
    record = {"key": training.key, "seed": seed, "overrides": list(training.overrides), "seconds": seconds}
    results.trainings.append({**record, **fields})


def _evaluate_one(
    run: ExperimentRun, spec: RowSpec, training: TrainingSpec, seed: int, checkpoint: Path
) -> None:
    """Evaluate one row for one seed into its own MLflow child run; a failure is recorded, not raised."""
    plan, results, tracker, log = run.plan, run.results, run.tracker, run.log
    row = run.rows[spec.name]
    tags = row_run_tags(plan.script, spec, training, seed, results)
    run_id = tracker.start_child(run.parent_id, run_name=f"{plan.script}/{spec.name}/seed{seed}", tags=tags)
    row.run_ids[seed] = run_id
    start = time.perf_counter()
    ok = False
    try:
        cfg = run.source.load(*training.overrides, *spec.eval_overrides, f"seed={seed}")
        training_cfg = run.source.load(*training.overrides, f"seed={seed}")
        out = run.output_dir / "runs" / _slug(spec.name) / f"seed{seed}"
        result = run.evaluate_fn(
            checkpoint,
            cfg,
            subset=cfg.data.eval_subset,
            rag=spec.rag,
            output_dir=out,
            run_id=run_id,
            training_cfg=training_cfg,
        )
        metrics = {k: float(v) for k, v in result.metrics.items() if v is not None}
        row.per_seed[seed] = metrics
        row.unavailable.update(dict(result.unavailable))
        diversity = _diversity_of(result)
        if diversity:
            row.diversity[seed] = {**diversity, "num_clips": result.num_clips}
            tracker.log_metrics(run_id, {k: diversity[k] for k in DIVERSITY_METRICS})
        tracker.log_metrics(run_id, metrics)
        tracker.log_metrics(run_id, {"seconds": time.perf_counter() - start, "num_clips": result.num_clips})
        _record_baselines(results, getattr(result, "baselines", None) or {}, seed, spec)
        ok = True
        log(f"[{plan.script}] {spec.name} seed {seed}: " + _short(metrics))
        if diversity.get("collapsed"):
            log(
                f"[{plan.script}] {spec.name} seed {seed}: collapsed, {diversity['distinct_captions']} "
                f"distinct captions, {diversity['top_caption']!r} on {diversity['top_caption_share']:.0%}"
            )
    except Exception as err:
        traceback.print_exc(file=sys.stderr)
        results.failures.append(RunFailure("evaluate", spec.name, seed, one_line(err)))
    finally:
        tracker.end(run_id, ok)


def row_run_tags(
    script: str, spec: RowSpec, training: TrainingSpec, seed: int, results: ExperimentResults
) -> dict[str, Any]:
    """A row run's tags: what it is (retrieval at test is ``rag_test``), and the training it scores."""
    training_run = next(
        (t.get("run_id", "") for t in results.trainings if t["key"] == training.key and t["seed"] == seed), ""
    )
    return {
        KIND_TAG: "row",
        "script": script,
        "row": spec.name,
        "seed": seed,
        "training": training.key,
        "training_run_id": training_run,
        "rag_test": spec.rag,
        **{f"column.{k}": v for k, v in spec.columns.items()},
    }


def _diversity_of(result: Any) -> dict[str, Any]:
    """evaluate()'s diversity figures; an evaluator without them (the cross-domain datastore one)
    is judged from its predictions CSV, so every model row is checked for collapse."""
    if getattr(result, "diversity", None):
        return dict(result.diversity)
    csv_path = getattr(result, "predictions_csv", None)
    if csv_path and Path(csv_path).is_file():
        return diversity_report(read_predictions_csv(Path(csv_path)))
    return {}


def _record_baselines(results: ExperimentResults, baselines: dict, seed: int, spec: RowSpec) -> None:
    """Keep evaluate()'s data-only baselines (most frequent caption, top-1 retrieved) once per seed."""
    store = results.extra.setdefault("baselines", {})
    for name, value in baselines.items():
        metrics = getattr(value, "metrics", value)
        if isinstance(metrics, dict):
            store.setdefault(name, {}).setdefault(
                str(seed), {k: v for k, v in metrics.items() if v is not None}
            )


def _short(metrics: dict[str, float]) -> str:
    keys = [k for k in ("cider_d", "spider", "bleu_4", "meteor") if k in metrics]
    return ", ".join(f"{k}={metrics[k]:.3f}" for k in keys) or "(no metrics)"


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def portable_path(path: Path) -> str:
    """``path`` relative to the working directory when it lies under it (the default runs/ root
    does), so results.json names checkpoints the same on every machine; otherwise as given."""
    cwd = Path.cwd()
    return str(path.relative_to(cwd)) if path.is_absolute() and path.is_relative_to(cwd) else str(path)
