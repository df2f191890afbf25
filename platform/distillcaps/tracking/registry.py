"""The model registry: the one way a run's checkpoint artifacts become a model version."""

from __future__ import annotations

from distillcaps.tracking.runs import mlflow_client

MODEL_DESCRIPTION = "DistillCaps student checkpoints (safetensors)"


def register_run_artifacts(
    uri: str, run_id: str, artifact_path: str, name: str, alias: str | None = None
) -> str:
    """Register ``run_id``'s ``artifact_path`` folder as a new version of ``name`` (created on first
    use) and point ``alias`` at it (aliases, not stages). -> the version, as MLflow numbers them.

    The version records the run whose artifacts it serves (lineage in the UI)."""
    from mlflow.exceptions import MlflowException

    client = mlflow_client(uri)
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description=MODEL_DESCRIPTION)
    source = f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{artifact_path}"
    version = client.create_model_version(name, source=source, run_id=run_id).version
    if alias:
        client.set_registered_model_alias(name, alias, version)
    return str(version)
