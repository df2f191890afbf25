"""One way to get a Ray instance: join a running one, or start a small local one that survives a
busy shared host.

    from distillcaps.ray_runtime import ensure_ray
    started = ensure_ray(num_cpus=2, object_store_mb=512)   # True: this call ran ray.init
    ...
    if started:
        ray.shutdown()

Order: an initialised Ray in this process is used as it is; else ``$RAY_ADDRESS`` is joined; else a
new local instance starts (never an instance that someone's ``ray start`` left on the host, which a
plain ``ray.init()`` would join). Why the local start needs care (Ray 2.60, 2 loaded cores):

- The raylet waits at most 15 s per port for its dashboard agent to write port files, and the driver
  gives the raylet a fixed 30 s to register; the agent's imports alone can take longer. Explicit
  agent ports skip the port-file waits.
- Every local instance asks for the same agent HTTP port (52365), so a second instance on the host
  (another engineer's job) clashes. Each start here picks free ports (below the
  ephemeral range, see AGENT_PORT_RANGE).
- With several instances on the host, Ray helpers that look for "the" cluster themselves (the State
  API used by Train V2's PlacementGroupCleaner) pick any of them; the node's processes get
  ``RAY_ADDRESS`` pointing at their own GCS.
- ``ray.init`` exposes none of this, so it is set on Ray's node parameters, the raylet's command
  (``--dashboard_agent_listen_port``, which Ray never passes) and the raylet's environment for the
  duration of the call.
- A failed ``ray.init`` leaves its GCS server and helpers running. The processes a failed attempt
  started (new children of this process, by pid) are ended before the next attempt; Ray processes
  of other jobs are never touched.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

# Environment variables every Ray worker needs as the driver has them (offline hub, no telemetry).
FORWARDED_ENV_NAMES = ("HF_HUB_OFFLINE", "MLFLOW_DISABLE_TELEMETRY", "RAY_USAGE_STATS_ENABLED")
FORWARDED_ENV_PREFIXES = ("DISTILLCAPS_",)  # our own switches, e.g. the test's fault injection

# Ray's timeouts for a host that is not busy: GCS marks a raylet dead after 5 missed 3 s heartbeats,
# and Ray's processes wait 30 s for a raylet to come up. Set only where the caller has not chosen
# otherwise; read by Ray's processes when they start.
PATIENT_START_DEFAULTS = {
    "RAY_raylet_start_wait_time_s": "120",
    "RAY_health_check_period_ms": "10000",
    "RAY_health_check_timeout_ms": "60000",
    "RAY_health_check_failure_threshold": "30",
}

# Ray ends an idle worker process 1 s after it goes idle (idle_worker_killing_time_threshold_ms)
# once the node holds more workers than a soft limit. Inside a Tune trial on 2 cores that ended the
# Ray Data stage's task worker after every pass, so each epoch's train and val pass started a new
# process importing torch: 6-9 s a pass instead of 0.2-0.6 s (experiments/sweep.py --quick). Five
# minutes keeps it warm between passes; idle workers still go after that. Set only where the caller
# has not chosen otherwise, like the above.
WARM_WORKER_DEFAULTS = {"RAY_idle_worker_killing_time_threshold_ms": "300000"}

# Train V2 starts a preemption watcher (one more actor process, ~6 CPU-seconds to start on 2 cores)
# with every fit, to notice a spot node being taken back; a local node has nothing to take back.
# Joined clusters keep Ray's default. Set only where the caller has not chosen otherwise.
LOCAL_NODE_DEFAULTS = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0"}


def ensure_ray(
    num_cpus: int | None = None,
    object_store_mb: int | None = 1024,
    env_vars: Mapping[str, str] | None = None,
    *,
    attempts: int = 3,
    forward_prefixes: tuple[str, ...] = (),
    **init_kwargs: Any,
) -> bool:
    """Make sure this process is connected to Ray. -> True when this call ran ``ray.init``
    (the caller may then ``ray.shutdown()`` when done); False when Ray was already initialised.

    A new local instance runs without the dashboard unless ``include_dashboard=True`` (on a free
    port): its State API is what Train V2's PlacementGroupCleaner asks whether a TrainController
    lives, which matters where controllers are killed, i.e. in Tune sweeps (see ``experiments.sweep``).

    ``env_vars`` (added to ``forwarded_env()``) reach every worker through the job's runtime_env.
    They cannot be added to an instance that this process initialised earlier: pass them at the
    first call. ``object_store_mb`` bounds a new local instance's object store (Ray's default is
    ~30% of RAM: 7 GB here); ``None`` keeps Ray's default. ``init_kwargs`` go to ``ray.init``.
    """
    import ray

    if ray.is_initialized():
        return False
    runtime_env = dict(init_kwargs.pop("runtime_env", None) or {})
    runtime_env["env_vars"] = {
        **forwarded_env(forward_prefixes),
        **runtime_env.get("env_vars", {}),
        **(env_vars or {}),
    }
    runtime_env.setdefault("worker_process_setup_hook", "distillcaps.ray_runtime.quiet_known_ray_noise")
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], runtime_env=runtime_env, **init_kwargs)
        return True
    # "local": a new instance even when /tmp/ray/ray_current_cluster names one that `ray start`
    # left on the host (plain ray.init() would join that one, someone else's).
    init_kwargs["address"] = "local"
    init_kwargs.setdefault("include_dashboard", False)
    if init_kwargs["include_dashboard"]:  # Ray's default port (8265) is every local instance's
        init_kwargs.setdefault("dashboard_port", free_port())
    if num_cpus is not None:
        init_kwargs["num_cpus"] = num_cpus
    if object_store_mb is not None:
        init_kwargs["object_store_memory"] = object_store_mb * 1024 * 1024
    for name, value in {**PATIENT_START_DEFAULTS, **WARM_WORKER_DEFAULTS, **LOCAL_NODE_DEFAULTS}.items():
        os.environ.setdefault(name, value)
    for attempt in range(1, attempts + 1):
        try:
            start_local_ray(runtime_env=runtime_env, **init_kwargs)
            return True
        except (ValueError, TypeError):  # bad arguments: another attempt would fail the same way
            raise
        except Exception as error:  # noqa: BLE001 - Ray raises a bare Exception on a slow start-up
            if attempt == attempts:
                raise
            reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            print(f"Ray did not start ({reason}); retrying ({attempt + 1}/{attempts})", flush=True)
    raise AssertionError("unreachable")


# Ray loggers whose warnings say nothing actionable on our instances. Train V2's PlacementGroupCleaner
# asks the State API (a dashboard service) every second whether the TrainController lives; local
# instances here run without the dashboard, so it warned ~once a second for the whole run (69 lines in
# the first two minutes of a training). It only ever acts on a "dead" answer, never on a failed query:
# harmless where a controller only ends by finishing (its job's end removes the rest), not where one
# is killed while the job goes on (a stopped Tune trial), so sweeps start the dashboard.
QUIET_RAY_LOGGERS = ("ray.train.v2._internal.execution.controller.placement_group_cleaner",)


def quiet_known_ray_noise() -> None:
    """Ray worker setup hook (runtime_env ``worker_process_setup_hook``): silence QUIET_RAY_LOGGERS."""
    import logging

    for name in QUIET_RAY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def start_local_ray(**init_kwargs: Any) -> None:
    """One ``ray.init`` of a new local instance (see isolated_local_node); if it fails, end the
    processes it started and re-raise."""
    import psutil
    import ray

    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    try:
        with isolated_local_node():
            ray.init(**init_kwargs)
    except BaseException:
        ray.shutdown()
        end_new_children(me, before)
        raise


def end_new_children(process, before: set[int], rounds: int = 5) -> list[int]:
    """Kill the descendants of ``process`` whose pids are not in ``before``. -> their pids.

    Swept until none is left (up to ``rounds``): a failed start's helpers can still be spawning
    (the autoscaler monitor was seen appearing after a single sweep on the loaded CI machine)."""
    import psutil

    ended: list[int] = []
    for _ in range(rounds):
        new = [c for c in process.children(recursive=True) if c.pid not in before and c.pid not in ended]
        if not new:
            break
        for child in new:
            with contextlib.suppress(psutil.Error):
                child.kill()
                ended.append(child.pid)
        time.sleep(0.5)  # not psutil.wait_procs: it would reap the caller's own children
    return ended


def forwarded_env(prefixes: tuple[str, ...] = ()) -> dict[str, str]:
    """The driver's variables that workers need: FORWARDED_ENV_NAMES, DISTILLCAPS_*, ``prefixes``."""
    wanted = FORWARDED_ENV_PREFIXES + tuple(prefixes)
    return {k: v for k, v in os.environ.items() if k in FORWARDED_ENV_NAMES or k.startswith(wanted)}


# Where a local node's agent ports come from: above Ray's worker ports (10002-19999) and below the
# kernel's ephemeral range (32768-60999 by default). A port found free *inside* the ephemeral range
# can go to any bind(0) or outgoing connection before the agent binds it, seconds later: in CI the
# driver's own gRPC server got the dashboard agent's port 9 s before the agent's slow start bound
# it, and the raylet, which fate-shares with its agents, ended the instance under a running test.
AGENT_PORT_RANGE = (20000, 32767)
_ports_given: set[int] = set()  # never the same port twice from one process, even before it is bound


def free_port() -> int:
    """A TCP port that nothing listens on, from AGENT_PORT_RANGE (below the ephemeral range, so no
    bind(0) takes it in the meantime), not handed out before by this process."""
    low, high = AGENT_PORT_RANGE
    high = min(high, ephemeral_ports()[0] - 1)
    chooser = random.SystemRandom()  # independent of any seed a caller set
    for _ in range(200 if high >= low else 0):
        port = chooser.randint(low, high)
        if port in _ports_given:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("", port))
            except OSError:
                continue
        _ports_given.add(port)
        return port
    with socket.socket() as sock:  # no room below the ephemeral range on this host
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ephemeral_ports() -> tuple[int, int]:
    """The kernel's range for bind(0) and outgoing connections (Linux; the default elsewhere)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


@contextlib.contextmanager
def isolated_local_node() -> Iterator[int]:
    """While active, a new local Ray node keeps to itself on a shared host. -> its agent HTTP port.

    - Its agents get free, explicit ports (no port-file waits, no clash on 52365).
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


explicit_agent_ports = isolated_local_node  # the earlier name (serving/ray_head.py uses it)
