"""serve/config.yaml is a valid Serve config whose import path builds this app and whose
user_config is a valid ServingConfig (no Ray started here)."""

from __future__ import annotations

import importlib
from pathlib import Path

import yaml

from distillcaps.serving.app import INGRESS_KEYS, serve_config
from distillcaps.serving.config import ServingConfig

REPO = Path(__file__).resolve().parents[2]


def test_serve_config_yaml_validates_and_builds_the_app(monkeypatch):
    from ray.serve.schema import ServeDeploySchema

    raw = yaml.safe_load((REPO / "serve" / "config.yaml").read_text())
    schema = ServeDeploySchema.model_validate(raw)
    (app,) = schema.applications
    deployments = {d.name: d for d in app.deployments}

    assert raw["http_options"]["host"] == "127.0.0.1"
    assert set(deployments) == {"CaptionIngress", "CaptionModel"}
    model = deployments["CaptionModel"]
    cfg = ServingConfig.from_dict(model.user_config)
    assert cfg.model_uri == "models:/distillcaps-student@champion"
    assert model.autoscaling_config is not None and model.health_check_period_s == 5
    assert set(app.args) <= set(INGRESS_KEYS)

    module_name, attr = app.import_path.split(":")
    monkeypatch.syspath_prepend(str(REPO))  # serve run adds its app dir (the repository root) the same way
    builder = getattr(importlib.import_module(module_name), attr)
    application = builder(app.args)
    assert type(application).__name__ == "Application"


def test_serve_config_helper_matches_the_file_layout():
    from ray.serve.schema import ServeDeploySchema

    config = serve_config({"model_uri": "models:/distillcaps-student/2", "max_duration_s": 10.0})

    (app,) = ServeDeploySchema.model_validate(config).applications
    assert app.args["max_duration_s"] == 10.0
    assert app.deployments[0].user_config["model_uri"] == "models:/distillcaps-student/2"
