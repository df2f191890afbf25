"""The source root is called platform/, but the package is distillcaps: the stdlib module survives."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_stdlib_platform_is_not_shadowed_in_the_installed_environment() -> None:
    # Run from the repo root, where a directory named platform/ sits next to the cwd entry of sys.path.
    code = (
        "import platform, distillcaps; "
        "assert platform.system() in ('Linux', 'Darwin', 'Windows'), platform.system(); "
        "assert hasattr(platform, 'python_version'); "
        "print(platform.__file__); print(distillcaps.__file__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    stdlib_file, package_file = out
    assert not stdlib_file.startswith(str(REPO / "platform"))
    assert package_file.startswith(str(REPO / "platform" / "distillcaps"))
