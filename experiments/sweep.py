"""Ray Tune sweep (ASHA) over KL temperature, top-k, LoRA rank and lr; registers the best student.

Usage: python experiments/sweep.py [--num-samples 12] [--max-concurrent N] [--quick] [key=value ...]
"""

from __future__ import annotations

import sys

from distillcaps.experiments.cli_args import experiment_arg_parser, set_offline_environment
from distillcaps.experiments.sweep import add_arguments, run_sweep


def main(argv: list[str] | None = None) -> int:
    set_offline_environment()
    parser = experiment_arg_parser("sweep.py", __doc__.splitlines()[0])
    add_arguments(parser)
    return run_sweep(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
