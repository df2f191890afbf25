"""Paper Table 5: distillation x RAG-in-training x RAG-at-test, plus the rag+auto control.

Usage: python experiments/ablate_dda.py [--quick] [--seeds 0,1,2] [--output DIR] [key=value ...]
"""

from __future__ import annotations

import sys

from distillcaps.experiments.cli_args import experiment_arg_parser, set_offline_environment
from distillcaps.experiments.tables import run_table_experiment


def main(argv: list[str] | None = None) -> int:
    set_offline_environment()
    args = experiment_arg_parser("ablate_dda.py", __doc__.splitlines()[0]).parse_args(argv)
    return run_table_experiment("ablate_dda", args)


if __name__ == "__main__":
    sys.exit(main())
