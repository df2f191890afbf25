"""Paper Table 5: distillation x RAG-in-training x RAG-at-test, plus the rag+auto control.

Usage: python experiments/ablate_dda.py [--quick] [--seeds 0,1,2] [--parallel N] [--output DIR]
       [key=value ...]
"""

from __future__ import annotations

import sys

from distillcaps.experiments.cli_args import set_offline_environment
from distillcaps.experiments.tables import run_table_experiment, table_arg_parser


def main(argv: list[str] | None = None) -> int:
    set_offline_environment()
    args = table_arg_parser("ablate_dda.py", __doc__.splitlines()[0]).parse_args(argv)
    return run_table_experiment("ablate_dda", args)


if __name__ == "__main__":
    sys.exit(main())
