"""The package as a user installs it: a wheel built from this checkout, in a virtual environment
outside the repository, has its presets and its command line (nothing is read from the checkout)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_built_wheel_installed_elsewhere_loads_every_preset_and_runs_the_cli(tmp_path):
    uv = Path(sys.executable).with_name("uv")
    # sdist first, then the wheel from it (uv build's default): what a release would contain
    subprocess.run([str(uv), "build", "--quiet", "-o", str(tmp_path / "dist"), str(ROOT)], check=True)
    wheel = next((tmp_path / "dist").glob("distillcaps-*.whl"))

    env_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    install = [str(uv), "pip", "install", "--quiet", "--no-deps", "--python", str(python), str(wheel)]
    subprocess.run(install, check=True)
    # The dependencies are the project's .venv's (read-only, appended after the new environment's
    # own site-packages); its editable distillcaps is a .pth there, which a path entry never runs.
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    Path(site, "project-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    probe = (
        "import distillcaps, pathlib; from distillcaps.config import load_config, shipped_configs;"
        "where = pathlib.Path(distillcaps.__file__).resolve();"
        f"assert {str(ROOT)!r} not in str(where), where;"
        "names = sorted(shipped_configs()); [load_config(n) for n in names]; print(' '.join(names))"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    run = dict(cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    loaded = subprocess.run([str(python), "-c", probe], **run)
    assert loaded.returncode == 0, loaded.stderr
    assert {"tiny", "smol", "paper", "quick"} <= set(loaded.stdout.split())
    cli = subprocess.run([str(env_dir / "bin" / "distillcaps"), "--help"], **run)
    assert cli.returncode == 0 and "train" in cli.stdout, cli.stderr
