"""Start a small local Ray that coexists with other local Ray instances on one busy host.

Ray 2.60's raylet waits at most 15 s per port for its dashboard agent to write port files and
aborts otherwise ("Timed out waiting for file .../metrics_agent_port_..."); on a loaded 2-core
machine the agent's imports alone take longer. Every local instance also asks for the same agent
HTTP port (52365). Handing the raylet and the agent explicit free ports skips the port-file waits
and the clash. ``ray.init`` does not expose those ports, so they are set on Ray's node parameters
(and the raylet's ``--dashboard_agent_listen_port`` flag, which Ray never passes) during the call.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def explicit_agent_ports() -> Iterator[None]:
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

    def start_with_listen_port(command: list[str], process_type: str, *args: Any, **kwargs: Any) -> Any:
        if process_type == "raylet":
            command = [*command, f"--dashboard_agent_listen_port={listen_port}"]
        return original_start(command, process_type, *args, **kwargs)

    parameter.RayParams.__init__ = init_with_ports
    services.start_ray_process = start_with_listen_port
    try:
        yield
    finally:
        parameter.RayParams.__init__ = original_init
        services.start_ray_process = original_start


def init_local_ray(**kwargs: Any) -> None:
    """``ray.init(**kwargs)`` for a new local instance, with explicit agent ports; no dashboard."""
    import ray

    kwargs.setdefault("include_dashboard", False)
    with explicit_agent_ports():
        ray.init(**kwargs)
