"""A cache folder built once, whole or not at all: written under a temporary name beside it, then
renamed into place (an atomic step on one filesystem).

    folder = build_folder(cache / "tiny-llm-<key>", lambda tmp: pretrain_into(tmp), marker="config.json")

A reader never sees a half-written folder, a failed build leaves nothing behind, and of two
concurrent builders the first rename wins (the other's work is dropped). Under ``cache_lock`` the
second builder waits for the first instead and finds the folder built:

    with cache_lock(target):                    # flock on <target>.lock, across processes
        folder = build_folder(target, build, marker="manifest.json")
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

# A builder holding the lock can run for minutes (embedding a corpus); waiting is the right thing,
# but not forever when a lock file is held by a process that hung.
LOCK_TIMEOUT_S = 3600.0
LOCK_POLL_S = 0.1


def build_folder(target: Path, build: Callable[[Path], object], marker: str) -> Path:
    """``target`` when ``target/marker`` exists, else ``build(tmp)`` into a temporary sibling renamed
    to ``target``; ``build`` must write ``marker`` (the folder's sign of being whole)."""
    if (target / marker).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():  # an unfinished folder written in place: never a cache hit, and it blocks the rename
        shutil.rmtree(target, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 would hide a shared cache from other users
    try:
        build(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / marker).is_file():  # lost a race only if the winner finished
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@contextmanager
def cache_lock(target: Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """An exclusive lock on ``target`` between threads and processes: ``flock`` on ``<target>.lock``.

    flock locks belong to an open file, so two threads of one process exclude each other as two
    processes do. The lock file stays: removing it would let a third builder lock a fresh file
    while a second still waits on the old one.
    """
    import fcntl

    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(f"{target}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{target}.lock: another builder held it for over {timeout_s:.0f} s"
                    ) from None
                time.sleep(LOCK_POLL_S)
        yield
    finally:
        os.close(fd)  # closing releases the lock
