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
- ``ray.init`` exposes none of this, so ``distillcaps.ray_compat.isolated_local_node`` sets it on
  Ray's private node parameters for the duration of the call.
- A failed ``ray.init`` leaves its GCS server and helpers running. The processes a failed attempt
  started (new children of this process, by pid) are ended before the next attempt; Ray processes
  of other jobs are never touched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from distillcaps.ports import free_port
from distillcaps.process_env import RAY_LOCAL_NODE, RAY_PATIENT_START, RAY_WARM_WORKERS, set_defaults
from distillcaps.ray_compat import isolated_local_node

# Environment variables every Ray worker needs as the driver has them (offline hub, no telemetry).
FORWARDED_ENV_NAMES = ("HF_HUB_OFFLINE", "MLFLOW_DISABLE_TELEMETRY", "RAY_USAGE_STATS_ENABLED")
FORWARDED_ENV_PREFIXES = ("DISTILLCAPS_",)  # our own switches, e.g. the test's fault injection


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
    set_defaults(RAY_PATIENT_START, RAY_WARM_WORKERS, RAY_LOCAL_NODE)  # read by the processes it starts
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
