"""The workarounds in distillcaps.ray_compat still match the Ray they patch, and are still needed.

Each test names what to do when it fails: on a Ray upgrade, re-check every workaround against the new
sources; when Ray gains the public way, drop the workaround.
"""

from __future__ import annotations

import inspect

import ray

from distillcaps import ray_compat


def test_ray_is_the_version_the_workarounds_were_written_for():
    assert ray.__version__ == ray_compat.RAY_VERSION_CHECKED, (
        f"Ray {ray.__version__}: re-check every workaround in distillcaps/ray_compat.py against its "
        f"sources, then set RAY_VERSION_CHECKED"
    )


def test_ray_init_still_takes_no_agent_ports_so_isolated_local_node_is_needed():
    params = inspect.signature(ray.init).parameters
    public = {"dashboard_agent_listen_port", "metrics_agent_port", "runtime_env_agent_port"} & set(params)
    assert not public, f"ray.init now takes {public}: pass them there and drop the RayParams patch"


def test_the_patched_private_functions_still_have_the_shapes_the_patch_assumes():
    from ray._private import parameter, services

    ray_params = inspect.signature(parameter.RayParams.__init__).parameters
    assert {"metrics_agent_port", "metrics_export_port", "runtime_env_agent_port"} <= set(ray_params)
    assert "dashboard_agent_listen_port" in ray_params
    start = inspect.signature(services.start_ray_process).parameters
    assert list(start)[:2] == ["command", "process_type"] and "env_updates" in start
    raylet = inspect.getsource(services.start_raylet)
    assert "--gcs-address=" in raylet  # where the patch reads the node's own GCS from
    assert "--dashboard_agent_listen_port" not in raylet, (
        "Ray now passes the agent's port to the raylet: drop that part of isolated_local_node"
    )


def test_the_private_serve_and_auth_entry_points_exist():
    from ray._private.authentication import authentication_token_setup as auth
    from ray.serve._private import api
    from ray.serve._private.client import ServeControllerClient

    assert "create_token_if_missing" in inspect.signature(auth.ensure_token_if_auth_enabled).parameters
    assert not inspect.signature(auth.enable_token_auth_by_default).parameters
    required = [
        p
        for p in inspect.signature(api.serve_start).parameters.values()
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    assert not required and hasattr(ServeControllerClient, "deploy_apps")
