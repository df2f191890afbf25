"""Every use of Ray's private API, in one module, each with the Ray version it was written for.

``tests/test_ray_compat.py`` fails when Ray changes under a workaround: on a new Ray version (re-check
each one), or when Ray gains the public way that would make one unneeded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from distillcaps.ports import free_port

RAY_VERSION_CHECKED = "2.60.0"  # the workarounds below were written and tested against this Ray


@contextlib.contextmanager
def isolated_local_node() -> Iterator[int]:
    """While active, a new local Ray node keeps to itself on a shared host. -> its agent HTTP port.

    Ray 2.60: ``ray.init`` takes no agent ports, and the raylet's command never carries
    ``--dashboard_agent_listen_port``, so they are set on ``ray._private.parameter.RayParams`` and
    added to the raylet's command in ``ray._private.services.start_ray_process``.

    - Its agents get free, explicit ports: the raylet then skips its 15 s-per-port wait for the
      agent's port files (too short on a loaded host), and a second instance on the host does not
      clash on the default agent port 52365.
    - Its raylet, and so every worker, actor and agent it starts, gets ``RAY_ADDRESS`` = its own GCS.
      Ray's helpers that find "the" cluster by themselves otherwise pick one of the host's
      instances: Train V2's PlacementGroupCleaner asks the State API whether the TrainController is
      alive, and an answer from another instance's dashboard ("no such actor") would make it remove
      the running training's placement group.
    """
    from ray._private import parameter, services

    listen_port = free_port()
    original_init = parameter.RayParams.__init__
    original_start = services.start_ray_process

    def init_with_ports(self, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.metrics_agent_port = self.metrics_agent_port or free_port()
        self.metrics_export_port = self.metrics_export_port or free_port()
        self.runtime_env_agent_port = self.runtime_env_agent_port or free_port()
        self.dashboard_agent_listen_port = listen_port

    def start_raylet_pinned(command: list[str], process_type: str, *args: Any, **kwargs: Any) -> Any:
        if process_type == "raylet":
            command = [*command, f"--dashboard_agent_listen_port={listen_port}"]
            gcs = next(a.split("=", 1)[1] for a in command if a.startswith("--gcs-address="))
            kwargs["env_updates"] = {**(kwargs.get("env_updates") or {}), "RAY_ADDRESS": gcs}
        return original_start(command, process_type, *args, **kwargs)

    parameter.RayParams.__init__ = init_with_ports
    services.start_ray_process = start_raylet_pinned
    try:
        yield listen_port
    finally:
        parameter.RayParams.__init__ = original_init
        services.start_ray_process = original_start


def enable_token_auth() -> None:
    """Ray 2.60: token authentication on, with a token file created if missing, for a head started
    from Python (``ray start`` does this in its CLI code; there is no public function)."""
    from ray._private.authentication.authentication_token_setup import (
        enable_token_auth_by_default,
        ensure_token_if_auth_enabled,
    )

    enable_token_auth_by_default()  # explicit, so it does not depend on whether a token file exists
    ensure_token_if_auth_enabled(None, create_token_if_missing=True)


def serve_client() -> Any:
    """Ray 2.60: the Serve controller's client, which applies a whole Serve config (what
    ``serve run config.yaml`` does); the public ``serve.run`` takes one application object."""
    from ray.serve._private.api import serve_start

    return serve_start()
