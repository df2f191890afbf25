"""Where a served model comes from: a checkpoint directory or an MLflow registry URI.

Registering logs the checkpoint directory (safetensors + config.json + tokenizer) as run artifacts and
points a registered model version at them; no pickled pyfunc is involved. Resolving
``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` downloads those artifacts into a local cache
keyed by tracking store, name, version and what the version points at (its run and artifact
location: a registry deleted and created anew numbers its versions from 1 again). Each download
goes to a temporary folder that is renamed into place when complete, so two replicas resolving the
same model never read a half-written one.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from distillcaps.atomic_folder import build_folder
from distillcaps.config import Config
from distillcaps.tracking.registry import register_run_artifacts
from distillcaps.tracking.runs import experiment_in, mlflow_client, store_uri

DEFAULT_MODEL_NAME = "distillcaps-student"
DEFAULT_ALIAS = "champion"
CHECKPOINT_ARTIFACT_PATH = "checkpoint"
CHECKPOINT_MARKER = "config.json"  # every DistillCaps checkpoint dir holds its resolved Config here
WEIGHTS_MARKER = "trainable.safetensors"  # distillcaps.model.checkpoint.WEIGHTS_NAME

_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>[^/]+))/?$")


@dataclass(frozen=True)
class ResolvedModel:
    uri: str  # what the user asked for
    path: Path  # local checkpoint directory
    name: str
    version: str


def default_tracking_uri(tracking_uri: str = "") -> str:
    """Training's rule (distillcaps.tracking.store_uri) with the default run_dir: explicit, else
    $MLFLOW_TRACKING_URI, else sqlite:///<abs runs>/mlflow.db."""
    return store_uri(tracking_uri, Config().run_dir)


def resolve_model(uri: str, *, tracking_uri: str = "", cache_dir: Path | None = None) -> ResolvedModel:
    """A checkpoint dir, ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or ``runs:/ID/PATH`` -> a dir."""
    if uri.startswith("models:/"):
        return _resolve_registered(uri, default_tracking_uri(tracking_uri), cache_dir)
    if uri.startswith("runs:/"):
        return _resolve_run_artifact(uri, default_tracking_uri(tracking_uri), cache_dir)
    path = Path(uri).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"model {uri!r}: not a checkpoint directory nor a models:/ or runs:/ URI")
    root = find_checkpoint_root(path, uri)
    return ResolvedModel(uri=uri, path=root, name=root.name, version=f"local-{fingerprint(root)}")


def register_checkpoint(
    checkpoint_dir: str | Path,
    *,
    name: str = DEFAULT_MODEL_NAME,
    alias: str | None = DEFAULT_ALIAS,
    tracking_uri: str = "",
    experiment: str = "distillcaps",
    run_id: str | None = None,
) -> str:
    """Log ``checkpoint_dir`` as artifacts (of ``run_id`` or a new run), register it, set ``alias``.

    Returns the new version (a string, as MLflow numbers them).
    """
    checkpoint_dir = Path(checkpoint_dir)
    find_checkpoint_root(checkpoint_dir, str(checkpoint_dir))
    uri = default_tracking_uri(tracking_uri)
    client = mlflow_client(uri)
    if run_id is None:
        run_id = client.create_run(experiment_in(uri, experiment), run_name=f"register-{name}").info.run_id
        client.log_artifacts(run_id, str(checkpoint_dir), CHECKPOINT_ARTIFACT_PATH)
        client.set_terminated(run_id)
    else:
        client.log_artifacts(run_id, str(checkpoint_dir), CHECKPOINT_ARTIFACT_PATH)
    return register_run_artifacts(uri, run_id, CHECKPOINT_ARTIFACT_PATH, name, alias)


def find_checkpoint_root(path: Path, uri: str) -> Path:
    """The directory holding config.json: ``path`` itself or a folder up to two levels below.

    A folder that also holds trained weights wins over one that holds only a config: a training
    run's artifacts (``runs:/ID``) hold the run's config beside its ``checkpoint/`` folder.
    """
    found = [
        p.parent for depth in ("", "*/", "*/*/") for p in sorted(path.glob(f"{depth}{CHECKPOINT_MARKER}"))
    ]
    if not found:
        raise FileNotFoundError(
            f"model {uri!r}: no {CHECKPOINT_MARKER} in {path} (not a DistillCaps checkpoint)"
        )
    return next((p for p in found if (p / WEIGHTS_MARKER).is_file()), found[0])


def fingerprint(root: Path) -> str:
    """Short content hash of a checkpoint dir, so two local checkpoints report different versions."""
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(root)).encode())
        with file.open("rb") as handle:
            for block in iter(lambda h=handle: h.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]


def _cache_root(cache_dir: Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    base = os.environ.get("DISTILLCAPS_MODEL_CACHE") or Path.home() / ".cache" / "distillcaps" / "models"
    return Path(base)


def _resolve_registered(uri: str, tracking_uri: str, cache_dir: Path | None) -> ResolvedModel:
    import mlflow
    from mlflow import MlflowClient

    match = _MODELS_URI.match(uri)
    if not match:
        raise ValueError(f"model {uri!r}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
    _refuse_dot_segments(uri, [g for g in match.groups() if g is not None])
    name = match["name"]
    client = MlflowClient(tracking_uri)
    try:
        if match["alias"]:
            version = client.get_model_version_by_alias(name, match["alias"]).version
        else:
            version = client.get_model_version(name, match["version"]).version
    except mlflow.exceptions.MlflowException as err:
        raise FileNotFoundError(f"model {uri!r} not found in the registry at {tracking_uri}: {err}") from None
    # The version's artifact location, not a models:/ URI: that one would be looked up in the
    # process-wide registry URI rather than in `tracking_uri`.
    source = client.get_model_version_download_uri(name, version)
    run_id = client.get_model_version(name, version).run_id or ""
    store_key = hashlib.sha256(tracking_uri.encode()).hexdigest()[:8]
    content_key = hashlib.sha256(f"{run_id}\0{source}".encode()).hexdigest()[:12]
    target = _cache_root(cache_dir) / store_key / name / f"{version}-{content_key}"
    _download_once(
        target,
        lambda dst: mlflow.artifacts.download_artifacts(
            artifact_uri=source, dst_path=dst, tracking_uri=tracking_uri
        ),
    )
    root = find_checkpoint_root(target, uri)
    return ResolvedModel(uri=uri, path=root, name=name, version=str(version))


def _resolve_run_artifact(uri: str, tracking_uri: str, cache_dir: Path | None) -> ResolvedModel:
    import mlflow

    segments = uri[len("runs:/") :].strip("/").split("/")
    _refuse_dot_segments(uri, segments)
    run_id, sub = segments[0], "/".join(segments[1:])
    target = _cache_root(cache_dir) / "runs" / run_id / (sub.replace("/", "_") or "_root")
    _download_once(
        target,
        lambda dst: mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=dst, tracking_uri=tracking_uri
        ),
    )
    root = find_checkpoint_root(target, uri)
    return ResolvedModel(uri=uri, path=root, name=f"run-{run_id[:8]}", version=sub or "root")


def _refuse_dot_segments(uri: str, segments: list[str]) -> None:
    """A URI part "." or ".." would name a folder outside the model cache."""
    if not segments or any(part in ("", ".", "..") for part in segments):
        raise ValueError(f"model {uri!r}: empty, '.' or '..' segments are not allowed")


def _download_once(target: Path, download: Callable[[str], object]) -> None:
    """``download(folder)`` into ``target`` once, whole or not at all (see build_folder); a finished
    target holds ``.complete``."""

    def fetch(tmp: Path) -> None:
        download(str(tmp))
        (tmp / ".complete").touch()

    build_folder(target, fetch, marker=".complete")
