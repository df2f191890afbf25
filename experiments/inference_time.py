"""Paper Figure 5: time to caption the test split with the student, without vs with retrieval.

Usage: python experiments/inference_time.py [--checkpoint DIR] [--repeats 5] [--quick] [key=value ...]
"""

from __future__ import annotations

import sys

from distillcaps.experiments.cli_args import experiment_arg_parser, set_offline_environment
from distillcaps.experiments.inference_time import add_arguments, run_inference_time


def main(argv: list[str] | None = None) -> int:
    set_offline_environment()
    parser = experiment_arg_parser("inference_time.py", __doc__.splitlines()[0])
    add_arguments(parser)
    return run_inference_time(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
