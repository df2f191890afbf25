"""distillcaps.cli: SIGTERM stops a command the way Ctrl-C does, so its MLflow run ends KILLED."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from mlflow import MlflowClient

STOPPED_RUN = textwrap.dedent(
    """
    import sys, time
    from distillcaps.cli import sigterm_as_interrupt
    from distillcaps.config import load_config
    from distillcaps.tracking import start_run

    cfg = load_config("tiny", [f"run_dir={sys.argv[1]}"])
    try:
        with sigterm_as_interrupt(), start_run(cfg, "stopped") as run:
            print(run.info.run_id, flush=True)
            time.sleep(120)
    except KeyboardInterrupt:
        sys.exit(130)
    """
)


def test_sigterm_ends_the_open_mlflow_run_killed(tmp_path):
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    process = subprocess.Popen(
        [sys.executable, "-c", STOPPED_RUN, str(tmp_path / "runs")],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        run_id = process.stdout.readline().strip()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 130
    finally:
        process.kill()
    run = MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}").get_run(run_id)
    assert run.info.status == "KILLED"
