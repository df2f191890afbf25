"""Run a how-to page's code as the page says, against copies of the registries it extends.

A page's ```python blocks whose first line is ``# platform/distillcaps/<path>.py`` are package code:
a new file becomes a module of that name; ``(add)`` after the path means lines added to an existing
module, executed in a copy of its namespace. Registries are global, so each test swaps in a copy
(``registry_copy``) first: the toy entries never reach other tests.
"""

from __future__ import annotations

import re
from pathlib import Path

from distillcaps.registry import Registry

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"```python\n# platform/(\S+)\.py( \(add\))?\n(.*?)```", re.DOTALL)


def page_blocks(page: str) -> list[tuple[str, bool, str]]:
    """(module name, adds to an existing module, code) of each package block of docs/howto/<page>."""
    text = (ROOT / "docs" / "howto" / page).read_text()
    blocks = [(path.replace("/", "."), bool(add), code) for path, add, code in BLOCK.findall(text)]
    assert blocks, f"docs/howto/{page} has no ```python block starting with '# platform/...'"
    return blocks


def registry_copy(registry: Registry) -> Registry:
    """A new registry holding the same entries, through the public API."""
    copy = Registry(registry.kind)
    for name in registry.names():
        copy.register(name)(registry.get(name))
    return copy
