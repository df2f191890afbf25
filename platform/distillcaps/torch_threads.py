"""One torch thread count for every cached build, so that a cache's content depends on its key alone.

A float sum split over two threads rounds differently from the same sum on one. The tiny CLAP trained
in a 2-thread process and in a 1-thread one came out with different weights (bit-wise; the epoch losses
agree to 4 decimals), and its audio tower is the captioner's frozen encoder: every feature, retrieval
and training downstream differed with it. Which thread count a build got depended on where it ran (a
script's main thread, a job thread, a Ray worker with OMP_NUM_THREADS=1), not on the config.

    with build_threads():          # the tiny CLAP's training, the tiny LLM's pretraining, ...
        ...

Ray Data stages that build caches (feature cache, CLAP embeddings) set ``BUILD_THREADS`` for their
process: one stage per core.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

# 1: what a Ray stage on one CPU runs with anyway. Part of the tiny CLAP's cache key.
BUILD_THREADS = 1


@contextmanager
def build_threads(count: int = BUILD_THREADS) -> Iterator[int]:
    """torch.set_num_threads(count) for the block, the caller's count restored after it."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield count
    finally:
        torch.set_num_threads(previous)
