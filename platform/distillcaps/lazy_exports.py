"""A package's names imported on first use (PEP 562), so importing one light submodule of it
(``distillcaps.config`` imports ``distillcaps.<package>.config``) does not import torch.

    _EXPORTS = {"Retriever": "retriever", ...}   # name -> submodule that defines it
    __all__ = sorted(_EXPORTS)
    __getattr__ = lazy_exports(__name__, _EXPORTS)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """The package's module ``__getattr__``: ``package.name`` imports ``package.<exports[name]>``."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
