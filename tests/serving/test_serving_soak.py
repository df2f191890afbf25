"""benchmarks/serve_load.py as a small soak in the default suite: a real service on 127.0.0.1 with a
real tiny checkpoint, a quarter of the uploads bad — no 5xx, every good upload captioned, every bad
one a JSON 4xx, the service healthy afterwards. The full-size soak is the same script with
--requests 1000 --concurrency 32 --bad-share 0.2 (docs/serving.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_small_soak_with_bad_uploads_ends_without_a_5xx(tiny_checkpoints, tmp_path):
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.pop("RAY_ADDRESS", None)
    command = [
        sys.executable, str(ROOT / "benchmarks" / "serve_load.py"), "--start", str(tiny_checkpoints["v1"]),
        "--requests", "48", "--concurrency", "8", "--bad-share", "0.25", "--output-dir", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    report = json.loads((tmp_path / "serve_load.json").read_text())["results"]
    assert report["num_5xx"] == 0 and not report["contract_breaches"] and report["healthz_after"] == 200
    assert report["bad_uploads"] == 12 and report["responses"] == 48
    kinds = {answer.split()[0]: answer for answer in report["bad_upload_answers"]}
    assert "too_short 422 too_short" in kinds.values() and "flac_bomb 422 too_many_samples" in kinds.values()
    assert all(answer.split()[1].startswith("4") for answer in report["bad_upload_answers"])
    assert report["serve_peak_rss_mb"]  # the replicas' memory was watched
