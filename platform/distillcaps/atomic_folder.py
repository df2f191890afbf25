"""A cache folder built once, whole or not at all: written under a temporary name beside it, then
renamed into place (an atomic step on one filesystem).

    folder = build_folder(cache / "tiny-llm-<key>", lambda tmp: pretrain_into(tmp), marker="config.json")

A reader never sees a half-written folder, a failed build leaves nothing behind, and of two
concurrent builders the first rename wins (the other's work is dropped).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


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
