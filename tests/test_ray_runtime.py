"""distillcaps.ray_runtime: join or start Ray, explicit agent ports, retries, no leaked processes.

Most tests stand in for ray.init (cheap); one starts a real 1-CPU instance, and one lets a real
start fail after its GCS server is up, to check that the processes of a failed attempt are ended.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import psutil
import pytest
import ray

from distillcaps import ports, process_env, ray_runtime
from distillcaps.ray_compat import isolated_local_node
from distillcaps.ray_runtime import end_new_children, ensure_ray, forwarded_env


@pytest.fixture
def no_ray(monkeypatch):
    """No Ray in this process and no $RAY_ADDRESS. A session-scoped Ray of an earlier test module
    (tests/serving keeps one for the whole session: a start costs ~30 s) is shut down first."""
    ray.shutdown()
    assert not ray.is_initialized()
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    yield
    ray.shutdown()


def test_forwarded_env_takes_the_named_variables_and_prefixes(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DISTILLCAPS_SOMETHING", "x")
    monkeypatch.setenv("RAY_SERVE_FOO", "y")
    monkeypatch.setenv("UNRELATED_VARIABLE", "z")
    env = forwarded_env()
    assert env["HF_HUB_OFFLINE"] == "1" and env["DISTILLCAPS_SOMETHING"] == "x"
    assert "RAY_SERVE_FOO" not in env and "UNRELATED_VARIABLE" not in env
    assert forwarded_env(("RAY_SERVE_",))["RAY_SERVE_FOO"] == "y"


def test_an_initialised_ray_is_used_without_a_second_init(monkeypatch):
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("ray.init called again"))
    assert ensure_ray(num_cpus=1) is False


def test_ray_address_is_joined_with_the_forwarded_env(no_ray, monkeypatch):
    calls = []
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    monkeypatch.setenv("DISTILLCAPS_FLAG", "on")
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw))
    assert ensure_ray(num_cpus=2, object_store_mb=64, env_vars={"EXTRA": "1"}) is True
    (kwargs,) = calls
    assert kwargs["address"] == "10.0.0.1:6379"
    assert kwargs["runtime_env"]["env_vars"]["DISTILLCAPS_FLAG"] == "on"
    assert kwargs["runtime_env"]["env_vars"]["EXTRA"] == "1"
    # a cluster's resources are its own: no local sizing is passed when joining
    assert "num_cpus" not in kwargs and "object_store_memory" not in kwargs


def test_a_failed_start_is_retried_with_its_reason_printed(no_ray, monkeypatch, capsys):
    attempts = []

    def flaky_start(**kwargs):
        attempts.append(kwargs)
        if len(attempts) < 3:
            raise Exception("The current node timed out during startup.")

    monkeypatch.setattr(ray_runtime, "start_local_ray", flaky_start)
    assert ensure_ray(num_cpus=1, object_store_mb=100, attempts=3) is True
    assert len(attempts) == 3
    assert attempts[0]["num_cpus"] == 1 and attempts[0]["object_store_memory"] == 100 * 1024 * 1024
    assert attempts[0]["include_dashboard"] is False and attempts[0]["address"] == "local"
    out = capsys.readouterr().out
    assert "Ray did not start (Exception: The current node timed out during startup.); retrying (2/3)" in out
    assert "retrying (3/3)" in out

    attempts.clear()
    monkeypatch.setattr(ray_runtime, "start_local_ray", lambda **kw: (attempts.append(kw), 1 / 0))
    with pytest.raises(ZeroDivisionError):
        ensure_ray(attempts=2)
    assert len(attempts) == 2

    attempts.clear()  # bad arguments are not retried
    monkeypatch.setattr(ray_runtime, "start_local_ray", lambda **kw: (attempts.append(kw), int("x")))
    with pytest.raises(ValueError):
        ensure_ray(attempts=3)
    assert len(attempts) == 1


def test_explicit_agent_ports_apply_only_inside_the_context():
    from ray._private.parameter import RayParams
    from ray._private.ray_constants import DEFAULT_DASHBOARD_AGENT_LISTEN_PORT

    with isolated_local_node() as listen_port:
        params = RayParams()
    assert params.dashboard_agent_listen_port == listen_port != DEFAULT_DASHBOARD_AGENT_LISTEN_PORT
    assert params.metrics_agent_port and params.metrics_export_port and params.runtime_env_agent_port
    assert RayParams().dashboard_agent_listen_port == DEFAULT_DASHBOARD_AGENT_LISTEN_PORT


def test_agent_ports_come_from_below_the_ephemeral_range_and_never_twice():
    # A free port inside the ephemeral range could be taken by any bind(0) before the agent binds it.
    low, _ = ports.ephemeral_ports()
    given = [ports.free_port() for _ in range(50)]
    assert len(set(given)) == len(given)
    first, last = ports.PORT_RANGE
    assert all(first <= p <= min(last, low - 1) for p in given)


def _two_free_adjacent_ports() -> int:
    """p such that p and p+1 are free, below the ephemeral range: there no bind(0) of another
    process on a busy host can take p+1 between this check and the test's own use of it."""
    low, high = ports.PORT_RANGE
    for port in range(low, min(high, ports.ephemeral_ports()[0] - 1), 7):
        try:
            for candidate in (port, port + 1):
                with socket.socket() as sock:
                    sock.bind(("", candidate))
        except OSError:
            continue
        return port
    pytest.skip("no two free adjacent ports below the ephemeral range on this host")


def test_a_port_someone_listens_on_is_not_handed_out(monkeypatch):
    busy = _two_free_adjacent_ports()
    with socket.socket() as taken:
        taken.bind(("", busy))
        taken.listen()
        monkeypatch.setattr(ports, "_ports_given", set())
        monkeypatch.setattr(ports, "PORT_RANGE", (busy, busy + 1))
        assert ports.free_port() == busy + 1  # the only free one of the two


def test_end_new_children_ends_only_processes_started_after_the_snapshot():
    me = psutil.Process()
    older = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        before = {p.pid for p in me.children(recursive=True)}
        newer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        assert end_new_children(me, before) == [newer.pid]
        assert newer.wait(timeout=10) != 0
        assert older.poll() is None
    finally:
        older.kill()
        older.wait()


def test_local_start_forwards_env_uses_its_own_agent_port_and_is_joined_later(no_ray, monkeypatch):
    from ray._private.ray_constants import DEFAULT_DASHBOARD_AGENT_LISTEN_PORT

    monkeypatch.setenv("DISTILLCAPS_PROBE", "from-driver")
    assert ensure_ray(num_cpus=1, object_store_mb=100, env_vars={"PROBE_EXTRA": "yes"}) is True

    @ray.remote(num_cpus=1)
    def read_env() -> tuple[str | None, ...]:
        import logging
        import os

        from distillcaps.ray_runtime import QUIET_RAY_LOGGERS

        quiet = all(logging.getLogger(n).getEffectiveLevel() >= logging.ERROR for n in QUIET_RAY_LOGGERS)
        names = (
            "DISTILLCAPS_PROBE",
            "PROBE_EXTRA",
            "RAY_ADDRESS",
            *process_env.RAY_WARM_WORKERS,
            *process_env.RAY_LOCAL_NODE,
        )
        return (*(os.environ.get(k) for k in names), quiet)

    # RAY_ADDRESS: Ray helpers in workers that look for "the" cluster find this one, not another
    # instance on the host; the setup hook silenced the PlacementGroupCleaner's warning loop; Ray's
    # processes got the warm-worker and local-node defaults (a worker inherits the raylet's
    # environment; a Train driver in a worker, as in a Tune trial, passes the latter on to Train)
    gcs_address = ray.get_runtime_context().gcs_address
    defaults = (*process_env.RAY_WARM_WORKERS.values(), *process_env.RAY_LOCAL_NODE.values())
    assert ray.get(read_env.remote()) == ("from-driver", "yes", gcs_address, *defaults, True)
    node = ray._private.worker.global_worker.node
    # another local instance on the host (another user's job) holds the default agent port
    assert node.dashboard_agent_listen_port != DEFAULT_DASHBOARD_AGENT_LISTEN_PORT
    assert ray.cluster_resources()["CPU"] == 1
    assert ensure_ray(num_cpus=2) is False  # joined, not started again
    ray.shutdown()


def test_a_failed_start_leaves_no_processes_behind(no_ray, monkeypatch):
    from ray._private import node

    def fail_after_head(self):
        raise RuntimeError("raylet did not come up (simulated)")

    # The GCS server (a child of this process) is running when the raylet start fails.
    monkeypatch.setattr(node.Node, "start_ray_processes", fail_after_head)
    me = psutil.Process()
    # an instance shut down by an earlier test may still be ending its processes
    psutil.wait_procs(me.children(recursive=True), timeout=30)
    before = {p.pid for p in me.children(recursive=True)}
    with pytest.raises(RuntimeError, match="simulated"):
        ensure_ray(num_cpus=1, object_store_mb=100, attempts=1)
    left = [p for p in me.children(recursive=True) if p.pid not in before and p.is_running()]
    alive = [p for p in left if p.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], [p.cmdline() for p in alive]
    assert not ray.is_initialized()
