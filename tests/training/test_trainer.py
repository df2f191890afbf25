"""distillcaps.training.trainer's checks before a fit (no Ray needed)."""

from __future__ import annotations

import pytest

from distillcaps.config import ConfigError
from distillcaps.training.prepare import check_store_reaches_every_host


def test_a_machine_local_tracking_store_is_refused_on_a_cluster_of_several_machines():
    one, two = {"10.0.0.5"}, {"10.0.0.5", "10.0.0.9"}
    for local in (
        "sqlite:////home/ray/runs/mlflow.db",
        "http://127.0.0.1:5000",
        "http://localhost:5000",
        "runs",
    ):
        check_store_reaches_every_host(local, one)  # one machine: every store is shared
        with pytest.raises(ConfigError, match=r"local to this machine, but the Ray cluster has 2 machines"):
            check_store_reaches_every_host(local, two)
    check_store_reaches_every_host("http://10.0.0.5:5000", two)  # the head's real address
