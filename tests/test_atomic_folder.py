"""distillcaps.atomic_folder: a cache folder built whole, once, by one of several processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from distillcaps.atomic_folder import build_folder, cache_lock

# Each process: take the lock, build the folder if it is not there (slowly, and noting that it
# built), and print what it found. Only the lock keeps the second process from building as well.
BUILDER = """
import sys, time
from pathlib import Path
from distillcaps.atomic_folder import build_folder, cache_lock

target, log = Path(sys.argv[1]), Path(sys.argv[2])

def build(tmp):
    with open(log, "a") as f:
        f.write("built\\n")
    time.sleep(1.0)  # long enough for the other process to arrive while this one builds
    (tmp / "data.txt").write_text("whole")
    (tmp / "done").write_text("")

with cache_lock(target):
    print(build_folder(target, build, marker="done"))
"""


def test_two_processes_build_one_folder_and_the_second_reuses_it(tmp_path):
    target, log = tmp_path / "cache" / "thing", tmp_path / "builds.log"
    platform = str(Path(__file__).resolve().parents[1] / "platform")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", BUILDER, str(target), str(log)],
            stdout=subprocess.PIPE,
            text=True,
            env={"PYTHONPATH": platform},
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outputs == [str(target), str(target)]
    assert log.read_text() == "built\n"  # one build; the other process waited, then found it
    assert (target / "data.txt").read_text() == "whole"
    assert sorted(p.name for p in target.parent.iterdir()) == ["thing", "thing.lock"]  # no temp left


def test_a_failed_build_leaves_nothing_and_the_lock_free(tmp_path):
    target = tmp_path / "thing"

    def broken(tmp):
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"), cache_lock(target):
        build_folder(target, broken, marker="done")
    assert not target.exists() and [p.name for p in tmp_path.iterdir()] == ["thing.lock"]
    with cache_lock(target, timeout_s=1.0):  # released by the failure: taken at once
        build_folder(target, lambda tmp: (tmp / "done").write_text(""), marker="done")
    assert (target / "done").is_file()


def test_a_held_lock_times_out_naming_the_lock_file(tmp_path):
    target = tmp_path / "thing"
    with cache_lock(target), pytest.raises(TimeoutError, match=r"thing.lock: another builder held it"):
        with cache_lock(target, timeout_s=0.3):
            pytest.fail("the lock was granted to a second builder while the first held it")
