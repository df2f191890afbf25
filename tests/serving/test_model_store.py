"""distillcaps.serving.model_store against a real MLflow store (sqlite), without Ray: downloads land
whole or not at all, a recreated registry is not served from the old cache, URIs stay in the cache."""

from __future__ import annotations

import json

import mlflow
import pytest
from standin_backend import write_standin_checkpoint

from distillcaps import atomic_folder
from distillcaps.serving.model_store import register_checkpoint, resolve_model


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the registering run's artifacts (./mlruns) stay in the test's folder


def label_of(resolved) -> str:
    return json.loads((resolved.path / "config.json").read_text())["label"]


def test_a_recreated_registry_is_not_served_from_the_old_cache(tmp_path):
    uri, cache = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "cache"
    register_checkpoint(write_standin_checkpoint(tmp_path / "a", "first"), name="m", tracking_uri=uri)
    assert label_of(resolve_model("models:/m/1", tracking_uri=uri, cache_dir=cache)) == "first"

    mlflow.MlflowClient(uri).delete_registered_model("m")  # made anew: its versions start at 1 again
    register_checkpoint(write_standin_checkpoint(tmp_path / "b", "second"), name="m", tracking_uri=uri)
    again = resolve_model("models:/m@champion", tracking_uri=uri, cache_dir=cache)
    assert again.version == "1" and label_of(again) == "second"


def test_a_failed_download_leaves_nothing_and_the_next_one_completes(tmp_path, monkeypatch):
    uri, cache = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "cache"
    register_checkpoint(write_standin_checkpoint(tmp_path / "a", "whole"), name="m", tracking_uri=uri)
    real = mlflow.artifacts.download_artifacts

    def dies_halfway(artifact_uri, dst_path, tracking_uri):
        open(f"{dst_path}/config.json", "w").write('{"label": "ha')  # a half-written file
        raise ConnectionError("the store went away")

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", dies_halfway)
    with pytest.raises(ConnectionError):
        resolve_model("models:/m/1", tracking_uri=uri, cache_dir=cache)
    assert not [p for p in cache.rglob("config.json")]  # nothing a second replica could load

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", real)
    resolved = resolve_model("models:/m/1", tracking_uri=uri, cache_dir=cache)
    assert label_of(resolved) == "whole" and (resolved.path.parent / ".complete").is_file()


@pytest.mark.parametrize(
    "uri", ["models:/../1", "models:/m/..", "models:/m@.", "runs:/../x", "runs:/abc/../../x"]
)
def test_dot_segments_are_refused(uri, tmp_path):
    with pytest.raises(ValueError, match="'..' segments are not allowed"):
        resolve_model(uri, tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", cache_dir=tmp_path / "cache")


def test_a_finished_download_is_not_repeated(tmp_path, monkeypatch):
    uri, cache = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "cache"
    register_checkpoint(write_standin_checkpoint(tmp_path / "a", "once"), name="m", tracking_uri=uri)
    first = resolve_model("models:/m/1", tracking_uri=uri, cache_dir=cache)
    monkeypatch.setattr(atomic_folder.shutil, "rmtree", lambda *a, **k: pytest.fail("downloaded again"))
    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", lambda **k: pytest.fail("downloaded again"))
    assert resolve_model("models:/m/1", tracking_uri=uri, cache_dir=cache).path == first.path


def test_a_runs_uri_resolves_to_the_checkpoint_not_to_the_runs_own_config(tmp_path):
    from distillcaps.model.checkpoint import WEIGHTS_NAME
    from distillcaps.serving.model_store import WEIGHTS_MARKER, find_checkpoint_root

    assert WEIGHTS_MARKER == WEIGHTS_NAME
    run = tmp_path / "artifacts"
    (run / "checkpoint").mkdir(parents=True)
    (run / "config.json").write_text("{}")  # the run's config, logged beside its checkpoint
    (run / "checkpoint" / "config.json").write_text("{}")
    (run / "checkpoint" / WEIGHTS_NAME).write_bytes(b"")
    assert find_checkpoint_root(run, "runs:/abc") == run / "checkpoint"
    (run / "checkpoint" / WEIGHTS_NAME).unlink()  # a stand-in backend's checkpoint: a config only
    assert find_checkpoint_root(run, "runs:/abc") == run
