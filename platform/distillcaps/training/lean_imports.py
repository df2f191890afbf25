"""Keep packages a Train worker never uses out of its imports.

transformers imports scikit-learn (for assisted generation's ROC thresholds) and torchvision (for
image processors) whenever they are installed, and both are: mlflow, librosa and laion_clap need
them. Together they cost a worker ~4 s of start-up (measured: importing the worker's modules took
16.5-17.8 s with them and 12.5-13.9 s without), which every fit and every sweep trial pays.

A ``None`` entry in ``sys.modules`` makes ``importlib.util.find_spec`` report the package missing,
so transformers skips it, and makes a direct ``import`` fail loudly rather than half-work.
"""

from __future__ import annotations

import sys

UNUSED_IN_TRAIN_WORKERS = ("sklearn", "torchvision")


def hide_unused_packages(names: tuple[str, ...] = UNUSED_IN_TRAIN_WORKERS) -> list[str]:
    """Hide ``names`` from this process unless already imported. -> the names it hid."""
    hidden = [name for name in names if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # the documented "not importable" marker
    return hidden
