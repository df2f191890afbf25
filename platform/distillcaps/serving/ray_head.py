"""``python -m distillcaps.serving.ray_head --port PORT [ray start options]``: a local Ray head for
``serve run`` on a busy host.

It is ``ray start --head --block`` with the dashboard agent's ports handed out explicitly and Ray's
patient start-up timeouts (``distillcaps.ray_runtime``). On a loaded machine Ray 2.60's raylet
otherwise aborts after waiting 15 s for the agent's port files, which is what a plain
``serve run serve/config.yaml`` (it starts Ray with a bare ``ray.init``) and a plain ``ray start``
both hit. Then deploy onto it:

    RAY_AUTH_MODE=token serve run --address 127.0.0.1:PORT serve/config.yaml

Token authentication is on (Ray 2.60's default for new clusters; the token is ~/.ray/auth_token,
created if missing); a client that names the address explicitly must say ``RAY_AUTH_MODE=token``.
The head blocks until SIGTERM or Ctrl-C, then stops the Ray processes it started (no others).
Environment variables set here (e.g. ``MLFLOW_TRACKING_URI``) reach every replica.
"""

from __future__ import annotations

import os
import sys

from distillcaps.ray_runtime import PATIENT_START_DEFAULTS, explicit_agent_ports

DEFAULT_OPTIONS = ["--include-dashboard=false", "--disable-usage-stats"]


def main(argv: list[str] | None = None) -> int:
    from ray._private.authentication.authentication_token_setup import (
        enable_token_auth_by_default,
        ensure_token_if_auth_enabled,
    )
    from ray.scripts.scripts import cli

    args = ["start", "--head", "--block", *DEFAULT_OPTIONS, *(sys.argv[1:] if argv is None else argv)]
    for name, value in PATIENT_START_DEFAULTS.items():  # inherited by the processes it starts
        os.environ.setdefault(name, value)
    enable_token_auth_by_default()  # explicit, so it does not depend on whether a token file exists
    ensure_token_if_auth_enabled(None, create_token_if_missing=True)
    with explicit_agent_ports():
        cli.main(args=args, prog_name="ray", standalone_mode=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
