"""The environment defaults our processes set, in one place.

Each group is applied with ``os.environ.setdefault``: a value the user exported always wins. Ray's
variables are read by Ray's processes when they start, so they are set before ``ray.init``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# No telemetry from MLflow or Ray, in every command, script and worker.
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "RAY_USAGE_STATS_ENABLED": "0"}

# The experiment scripts: nothing is downloaded at run time.
OFFLINE = {"HF_HUB_OFFLINE": "1"}

# tokenizers warns, and turns its thread pool off, when Ray forks after a tokenizer ran: off from the
# start (the benchmarks, which time tokenizer work next to Ray).
SERIAL_TOKENIZERS = {"TOKENIZERS_PARALLELISM": "false"}

# Ray's timeouts are for a host that is not busy: GCS marks a raylet dead after 5 missed 3 s
# heartbeats, and Ray's processes wait 30 s for a raylet to come up.
RAY_PATIENT_START = {
    "RAY_raylet_start_wait_time_s": "120",
    "RAY_health_check_period_ms": "10000",
    "RAY_health_check_timeout_ms": "60000",
    "RAY_health_check_failure_threshold": "30",
}

# Ray ends an idle worker process 1 s after it goes idle once the node holds more workers than a soft
# limit. Inside a Tune trial on 2 cores that ended the Ray Data stage's task worker after every pass,
# so each epoch's train and val pass started a new process importing torch: 6-9 s a pass instead of
# 0.2-0.6 s (experiments/sweep.py --quick). Five minutes keeps it warm between passes.
RAY_WARM_WORKERS = {"RAY_idle_worker_killing_time_threshold_ms": "300000"}

# Train V2 starts a preemption watcher (one more actor process, ~6 CPU-seconds to start on 2 cores)
# with every fit, to notice a spot node being taken back; a local node has nothing to take back.
RAY_LOCAL_NODE = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0"}


def set_defaults(*groups: Mapping[str, str]) -> None:
    for group in groups:
        for name, value in group.items():
            os.environ.setdefault(name, value)
