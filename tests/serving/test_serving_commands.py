"""The documented start commands, run for real as subprocesses on free loopback ports (slow: each
starts its own Ray, minutes on a loaded 2-core host):

- ``serve run serve/config.yaml`` (Ray Serve's CLI, the repository's config with only the HTTP port
  changed) onto a local head from ``python -m distillcaps.serving.ray_head``, with the default model
  ``models:/distillcaps-student@champion`` found through ``MLFLOW_TRACKING_URI``;
- ``distillcaps serve --model CHECKPOINT_DIR --port P``.

Each posts a real wav as ``curl -F file=@clip.wav`` does, checks the JSON against the same checkpoint
captioning in-process, then stops the commands (Ctrl-C / SIGTERM, as a user would) and checks that
they exit and the port is closed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from serving_helpers import MODEL_NAME, encode, free_port, tone

from distillcaps.serving.captioner import Captioner
from distillcaps.serving.upload import AudioLimits, decode_audio

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
START_TIMEOUT_S = 900  # Ray + Serve + model start-up; ~4 min measured under load 20
STOP_TIMEOUT_S = 120


class Command:
    """A command in its own session (so it and its children can be ended by its group id)."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str], cwd: Path = REPO) -> None:
        self.log = log
        self.handle = log.open("wb")
        self.process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=self.handle, stderr=subprocess.STDOUT, start_new_session=True
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self, tail: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-tail:]

    def stop(self, sig: int) -> int | None:
        """Send ``sig``; -> the exit code, or None if it had to be killed after STOP_TIMEOUT_S."""
        if not self.alive():
            self.kill_group()
            return self.process.returncode
        self.process.send_signal(sig)
        try:
            return self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return None
        finally:
            self.kill_group()

    def kill_group(self) -> None:
        """Whatever is left of this command's own process group (pgid == its pid)."""
        with contextlib.suppress(ProcessLookupError):  # the group already ended on its own
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
        if not self.handle.closed:
            self.handle.close()


def environment(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", MLFLOW_DISABLE_TELEMETRY="true", RAY_USAGE_STATS_ENABLED="0")
    env.pop("RAY_ADDRESS", None)
    env.update(extra)
    return env


def wait_until(predicate, what: str, commands: list[Command], timeout_s: float = START_TIMEOUT_S):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        for command in commands:
            if not command.alive():
                pytest.fail(f"{what}: {command.process.args[:3]} exited:\n{command.output()}")
        time.sleep(2)
    pytest.fail(f"{what}: not within {timeout_s} s\n" + "\n---\n".join(c.output() for c in commands))


def healthy(url: str):
    try:
        response = httpx.get(f"{url}/healthz", timeout=10)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def port_closed(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    except httpx.ConnectError:
        return True
    except httpx.HTTPError:
        return False
    return False


def post_clip(url: str, clip: Path) -> httpx.Response:
    """What ``curl -F file=@clip.wav URL/v1/captions`` sends."""
    with clip.open("rb") as handle:
        return httpx.post(f"{url}/v1/captions", files={"file": (clip.name, handle)}, timeout=120)


@pytest.fixture
def clip(tmp_path) -> Path:
    path = tmp_path / "clip.wav"
    path.write_bytes(encode(tone(440.0, 44_100, 2.0, 2), 44_100))  # stereo 44.1 kHz, like a recording
    return path


def expected_caption(checkpoint: Path, clip: Path) -> str:
    waveform = decode_audio(clip.read_bytes(), AudioLimits(10_000_000, 30.0)).waveform
    return Captioner.from_uri(str(checkpoint)).caption([waveform])[0]


def test_serve_run_serve_config_yaml_onto_a_local_head(model_registry, clip, tmp_path):
    http_port, gcs_port = free_port(), free_port()
    config = yaml.safe_load((REPO / "serve" / "config.yaml").read_text())
    config["http_options"]["port"] = http_port  # the only change: a free port instead of 8000
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = environment(
        MLFLOW_TRACKING_URI=model_registry["tracking_uri"],  # where models:/...@champion is looked up
        DISTILLCAPS_MODEL_CACHE=str(tmp_path / "model-cache"),
    )
    url = f"http://127.0.0.1:{http_port}"

    head = Command(
        [str(BIN / "python"), "-m", "distillcaps.serving.ray_head", f"--port={gcs_port}", "--num-cpus=2"]
        + ["--object-store-memory=500000000"],
        tmp_path / "ray_head.log",
        env,
    )
    serve_run = None
    try:
        wait_until(lambda: "Ray runtime started" in head.output(100_000), "ray_head", [head])
        serve_run = Command(
            [str(BIN / "serve"), "run", f"--address=127.0.0.1:{gcs_port}", str(config_path)],
            tmp_path / "serve_run.log",
            {**env, "RAY_AUTH_MODE": "token"},
        )
        health = wait_until(lambda: healthy(url), "serve run", [head, serve_run])
        response = post_clip(url, clip)

        assert health["model"] == {"name": MODEL_NAME, "version": "1"}
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"caption", "rag", "model", "batch_size", "latency_ms"}
        assert body["caption"] == expected_caption(model_registry["v1"], clip)
        assert body["rag"] is False and body["model"] == {"name": MODEL_NAME, "version": "1"}
        assert body["latency_ms"] > 0

        assert serve_run.stop(signal.SIGINT) is not None, serve_run.output()  # Ctrl-C: Serve shuts down
        assert port_closed(http_port)
        assert head.stop(signal.SIGTERM) is not None, head.output()
    finally:
        for command in (serve_run, head):
            if command is not None and command.alive():
                command.kill_group()


def test_distillcaps_serve_with_a_checkpoint_dir(model_registry, clip, tmp_path):
    checkpoint = model_registry["v1"]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = environment(DISTILLCAPS_MODEL_CACHE=str(tmp_path / "model-cache"))

    server = Command(
        [str(BIN / "distillcaps"), "serve", "--model", str(checkpoint), "--port", str(port)]
        + ["--num-cpus", "2"],
        tmp_path / "distillcaps_serve.log",
        env,
    )
    try:
        health = wait_until(lambda: healthy(url), "distillcaps serve", [server])
        response = post_clip(url, clip)

        assert health["model"]["name"] == checkpoint.name
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["caption"] == expected_caption(checkpoint, clip)
        assert body["rag"] is False and body["model"]["version"].startswith("local-")

        assert server.stop(signal.SIGINT) == 0, server.output()  # Ctrl-C: a clean exit
        assert port_closed(port)
    finally:
        if server.alive():
            server.kill_group()
