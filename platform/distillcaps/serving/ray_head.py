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

import sys

from distillcaps.process_env import RAY_PATIENT_START, set_defaults
from distillcaps.ray_compat import enable_token_auth, isolated_local_node

DEFAULT_OPTIONS = ["--include-dashboard=false", "--disable-usage-stats"]


def main(argv: list[str] | None = None) -> int:
    from ray.scripts.scripts import cli

    args = ["start", "--head", "--block", *DEFAULT_OPTIONS, *(sys.argv[1:] if argv is None else argv)]
    set_defaults(RAY_PATIENT_START)  # inherited by the processes it starts
    enable_token_auth()
    with isolated_local_node():
        cli.main(args=args, prog_name="ray", standalone_mode=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
