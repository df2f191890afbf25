"""What every benchmark script shares: its flags, the exact command it ran, pinned threads, Ray.

parser = base_parser(__file__, __doc__)   # --quick --repeats --warmup --threads --output-dir --device
parser.add_argument("--clips", ...)        # the script's own sizes
args = parse_args(parser, argv)            # args.argv: what the result's "command" records
set_threads(args.threads)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from distillcaps.ray_runtime import ensure_ray


def base_parser(script: str, doc: str) -> argparse.ArgumentParser:
    """Flags every benchmark takes; scripts add their own size flags on top. ``script`` is the
    script's ``__file__``: its results go to ``results/`` beside it; ``doc``'s first line describes it."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes: all scripts within ~10 min")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions per side (>= 5 for ratios)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per side before timing")
    parser.add_argument("--threads", type=int, default=1, help="torch/faiss threads (1 = per-core figures)")
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=Path(script).resolve().parent / "results",
        help="where <name>.json goes",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the same scripts run on a GPU)")
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """parse_args that remembers the argument list, so the JSON records the exact command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    return args


def set_threads(threads: int) -> None:
    """Pin intra-op threads so that a figure means 'per N cores' and not 'whatever was free'."""
    import torch

    torch.set_num_threads(threads)
    try:
        import faiss
    except ImportError:  # an optional dependency (the cpu or gpu extra)
        return
    faiss.omp_set_num_threads(threads)


def start_benchmark_ray(num_cpus: int, attempts: int = 3) -> None:
    """A small local Ray (256 MB object store, no dashboard); RAY_SERVE_* variables reach the workers
    too. ``ensure_ray`` picks explicit agent ports and retries a start that misses Ray's window on a
    loaded machine."""
    ensure_ray(
        num_cpus=num_cpus,
        object_store_mb=256,
        attempts=attempts,
        forward_prefixes=("RAY_SERVE_",),
        log_to_driver=False,
    )
