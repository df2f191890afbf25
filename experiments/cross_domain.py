"""Paper Table 3 layout: train on one domain, evaluate on the other, retrieval from the training domain.

Usage: python experiments/cross_domain.py [--quick] [--seeds 0,1,2] [--parallel N] [--output DIR]
       [key=value ...]
"""

from __future__ import annotations

import sys

from distillcaps.experiments.cli_args import set_offline_environment
from distillcaps.experiments.tables import run_table_experiment, table_arg_parser


def main(argv: list[str] | None = None) -> int:
    set_offline_environment()
    args = table_arg_parser("cross_domain.py", __doc__.splitlines()[0]).parse_args(argv)
    return run_table_experiment("cross_domain", args)


if __name__ == "__main__":
    sys.exit(main())
