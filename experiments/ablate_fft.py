"""Paper Tables 6/7: FFT adapter variants (none, paper, released, spectral) under the DistillCaps objective.

Usage: python experiments/ablate_fft.py [--quick] [--seeds 0,1,2] [--parallel N] [--output DIR]
       [key=value ...]
"""

from __future__ import annotations

import sys

from distillcaps.experiments.cli_args import set_offline_environment
from distillcaps.experiments.tables import run_table_experiment, table_arg_parser


def main(argv: list[str] | None = None) -> int:
    set_offline_environment()
    args = table_arg_parser("ablate_fft.py", __doc__.splitlines()[0]).parse_args(argv)
    return run_table_experiment("ablate_fft", args)


if __name__ == "__main__":
    sys.exit(main())
