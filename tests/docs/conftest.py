"""``run_page``: a how-to page's package code blocks, executed as the page says (see howto_pages.py)."""

from __future__ import annotations

import importlib
import sys
import types

import pytest
from howto_pages import page_blocks


@pytest.fixture
def run_page(monkeypatch):
    """run_page(page) -> {module name: namespace}, each block executed in page order."""

    def run(page: str) -> dict[str, dict]:
        spaces = {}
        for name, adds, code in page_blocks(page):
            if adds:
                namespace = dict(vars(importlib.import_module(name)))
            else:
                module = types.ModuleType(name)
                monkeypatch.setitem(sys.modules, name, module)
                namespace = module.__dict__
            exec(compile(code, f"docs/howto/{page}:{name}", "exec"), namespace)
            spaces[name] = namespace
        return spaces

    return run
