"""MLflow runs for DistillCaps: where the store is, how a run is opened, and what every run records.

    with start_run(cfg, "distill-tiny") as run:          # parent_run_id=... makes it a child run
        log_config(run.info.run_id, cfg)                 # the resolved config, flattened, as params
        RunLogger(tracking_uri(cfg), run.info.run_id).log_metrics({"train_loss": 1.2}, step=0)

The default store is SQLite at an absolute path under the run folder (MLflow 3 refuses a plain
file store unless told otherwise); ``tracking.tracking_uri`` or ``$MLFLOW_TRACKING_URI`` (e.g. a
server on a cluster's head node) override it. Telemetry is switched off before MLflow is imported.

``RunLogger`` talks to one run through ``MlflowClient`` without touching MLflow's global "active run",
so a Ray Train worker (rank 0 only) can log into the run its driver opened.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distillcaps.process_env import QUIET, set_defaults

if TYPE_CHECKING:
    import mlflow

    from distillcaps.config import Config

# MLflow's limits (mlflow.utils.validation): values longer than this are refused, not truncated.
MAX_PARAM_VALUE_CHARS = 6000
MAX_KEY_CHARS = 250
PARAMS_PER_BATCH = 100
METRICS_PER_BATCH = 1000
PARENT_RUN_TAG = "mlflow.parentRunId"  # what MLflow's UI nests child runs by


def disable_telemetry() -> None:
    set_defaults(QUIET)


def tracking_uri(cfg: Config) -> str:
    """cfg.tracking.tracking_uri, else $MLFLOW_TRACKING_URI, else sqlite:///<abs run_dir>/mlflow.db."""
    return store_uri(cfg.tracking.tracking_uri, cfg.run_dir)


def store_uri(explicit: str, run_dir: str | Path) -> str:
    """The one rule for where runs go: ``explicit``, else $MLFLOW_TRACKING_URI, else a SQLite store
    in ``run_dir`` (created)."""
    if explicit:
        return explicit
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    run_dir = Path(run_dir).expanduser().resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{run_dir / 'mlflow.db'}"


# MLflow 3's UI opens an experiment without a kind on its GenAI "Overview" (traces, token usage);
# marked as model development it opens on the runs, where the comparison of a table's rows is.
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


def experiment_id(cfg: Config) -> str:
    """The id of cfg.tracking.experiment in the configured store, created on first use."""
    return experiment_in(tracking_uri(cfg), cfg.tracking.experiment)


def experiment_in(uri: str, name: str) -> str:
    """The id of experiment ``name`` in the store at ``uri``, created (tagged EXPERIMENT_TAGS, artifacts
    beside a SQLite store) on first use."""
    client = mlflow_client(uri)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    artifacts = None
    if uri.startswith("sqlite:///"):
        # Artifacts beside the database, not in ./mlruns of whatever folder the command ran from.
        artifacts = (Path(uri[len("sqlite:///") :]).parent / "mlartifacts").as_uri()
    try:
        return client.create_experiment(name, artifact_location=artifacts, tags=EXPERIMENT_TAGS)
    except Exception:  # another process created it between the two calls
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def mlflow_client(uri: str):
    disable_telemetry()
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


@contextlib.contextmanager
def start_run(
    cfg: Config,
    run_name: str | None = None,
    parent_run_id: str | None = None,
    tags: Mapping[str, Any] | None = None,
    run_id: str | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """Open (or, with run_id, reopen) a run in cfg's store and experiment; a child run when parent_run_id.

    Tags always include the run's mode, dataset, preset, seed and git commit (see ``run_tags``).
    The run ends FINISHED, FAILED on an exception, or KILLED on KeyboardInterrupt.
    """
    disable_telemetry()
    import mlflow

    exported = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(tracking_uri(cfg))
    # MLflow 3 also exports the URI as $MLFLOW_TRACKING_URI, which tracking_uri() honours: the next
    # run of another config in this process (another run_dir) would follow it into this store.
    if exported is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = exported
    exp = experiment_id(cfg)
    all_tags = {**run_tags(cfg), **{k: str(v) for k, v in (tags or {}).items()}}
    with mlflow.start_run(
        run_id=run_id,
        experiment_id=None if run_id else exp,
        run_name=None if run_id else run_name,
        nested=parent_run_id is not None,
        parent_run_id=parent_run_id,
        tags=all_tags,
    ) as run:
        try:
            yield run
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM through distillcaps.cli: stopped, not failed
            mlflow.end_run("KILLED")
            raise


def create_run(
    cfg: Config, run_name: str, parent_run_id: str | None = None, tags: Mapping[str, Any] | None = None
) -> str:
    """A new run (status RUNNING) with start_run's tags, made through MlflowClient: several can be open
    at once (a group of trainings opens one per member). Close it with ``end_run``.

    MLflow's own context tags (user, source) are added as ``mlflow.start_run`` adds them."""
    from mlflow.tracking.context.registry import resolve_tags

    all_tags = resolve_tags({**run_tags(cfg), **{k: str(v) for k, v in (tags or {}).items()}})
    if parent_run_id:
        all_tags[PARENT_RUN_TAG] = parent_run_id
    run = mlflow_client(tracking_uri(cfg)).create_run(experiment_id(cfg), run_name=run_name, tags=all_tags)
    return run.info.run_id


def reopen_run(uri: str, run_id: str, tags: Mapping[str, Any]) -> None:
    """A finished or stopped run made RUNNING again (a resumed training), its tags refreshed."""
    mlflow_client(uri).update_run(run_id, status="RUNNING")
    RunLogger(uri, run_id).set_tags(tags)


def end_run(uri: str, run_id: str, status: str = "FINISHED") -> None:
    """Close a run made by create_run: FINISHED, FAILED or KILLED."""
    mlflow_client(uri).set_terminated(run_id, status)


def run_tags(cfg: Config) -> dict[str, str]:
    return {
        "mode": cfg.train.mode,
        "dataset": dataset_name(cfg),
        "preset": cfg.preset,
        "seed": str(cfg.seed),
        "git_commit": git_commit(),
    }


def dataset_name(cfg: Config) -> str:
    if cfg.data.dataset_dir:
        return f"{cfg.data.dataset_format}:{Path(cfg.data.dataset_dir).name}"
    return f"synthetic-{cfg.data.synth.domain}"


def git_commit() -> str:
    """HEAD of the checkout this package runs from (+ "-dirty" with uncommitted changes), or "unknown"."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head


def config_params(cfg: Config) -> dict[str, str]:
    """The resolved config as MLflow params: dotted keys, lists as JSON, over-long values cut (marked)."""
    return {
        key: param_value(json.dumps(value) if isinstance(value, (list, dict)) else value)
        for key, value in cfg.flat().items()
    }


def param_value(value: Any) -> str:
    """``value`` as an MLflow param: MLflow refuses longer values, so they are cut, marked."""
    text = str(value)
    if len(text) > MAX_PARAM_VALUE_CHARS:
        marker = f"...[{len(text)} chars]"
        text = text[: MAX_PARAM_VALUE_CHARS - len(marker)] + marker
    return text


def safe_key(key: str) -> str:
    """An MLflow metric/param key: alphanumerics and ``_-. /:``; anything else becomes ``_``."""
    return "".join(c if c.isalnum() or c in "_-. /:" else "_" for c in key)[:MAX_KEY_CHARS]


def log_config(run_id: str, cfg: Config) -> None:
    """Log the resolved config as params (in batches of MLflow's limit) and as config.json."""
    logger = RunLogger(tracking_uri(cfg), run_id)
    logger.log_params(config_params(cfg))
    logger.log_dict(cfg.to_dict(), "config.json")


class RunLogger:
    """Logs into one existing run by id; safe to create in a Ray worker (it carries only two strings)."""

    def __init__(self, uri: str, run_id: str) -> None:
        self.uri = uri
        self.run_id = run_id

    @property
    def client(self):
        return mlflow_client(self.uri)

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(safe_key(k), param_value(v)) for k, v in params.items()]
        for start in range(0, len(items), PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=items[start : start + PARAMS_PER_BATCH])

    def log_metrics(self, metrics: Mapping[str, float | None], step: int | None = None) -> None:
        """Log the numeric entries (None = not computed: skipped, never logged as 0)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [
            Metric(safe_key(key), float(value), now, step or 0)
            for key, value in metrics.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        ]
        for start in range(0, len(items), METRICS_PER_BATCH):  # one request per batch, not per metric
            self.client.log_batch(self.run_id, metrics=items[start : start + METRICS_PER_BATCH])

    def log_series(self, key: str, points: Sequence[tuple[int, float]]) -> None:
        """One metric at many steps (a learning curve), in one request per 1,000 points."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(safe_key(key), float(value), now, int(step)) for step, value in points]
        for start in range(0, len(items), METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=items[start : start + METRICS_PER_BATCH])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, str(value))

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_artifacts(self, folder: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(self.run_id, str(folder), artifact_path)

    def log_dict(self, data: Any, artifact_file: str) -> None:
        self.client.log_dict(self.run_id, data, artifact_file)

    def log_table(self, columns: Mapping[str, list], artifact_file: str) -> None:
        """A table artifact (MLflow's UI shows it under Evaluation / Artifacts)."""
        self.client.log_table(self.run_id, dict(columns), artifact_file)
