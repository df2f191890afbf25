"""Trainings at once: the first job alone, then N at a time; plans that cannot fit are refused."""

from __future__ import annotations

import threading

import pytest

from distillcaps.config import load_config
from distillcaps.experiments.parallel import check_parallel_trainings, resources_per_training
from distillcaps.experiments.runner import run_jobs
from distillcaps.experiments.tables import table_arg_parser


def test_the_first_job_runs_alone_then_the_rest_run_together() -> None:
    events: list[str] = []
    lock = threading.Lock()
    # Jobs 1 and 2 each wait for the other: only running at the same time lets both pass.
    both_running = threading.Barrier(2, timeout=30)

    def job(name: str) -> None:
        with lock:
            events.append(f"start {name}")
        if name != "first":
            both_running.wait()
        with lock:
            events.append(f"end {name}")

    run_jobs([("first",), ("a",), ("b",)], job, parallel=2)
    assert events[:2] == ["start first", "end first"]
    assert sorted(events[2:]) == ["end a", "end b", "start a", "start b"]


def test_sequential_jobs_keep_their_order() -> None:
    seen: list[int] = []
    run_jobs([(i,) for i in range(4)], seen.append, parallel=1)
    assert seen == [0, 1, 2, 3]


def test_an_interrupt_drops_the_jobs_not_yet_started() -> None:
    started: list[int] = []

    def job(i: int) -> None:
        started.append(i)
        if i == 1:
            raise KeyboardInterrupt("stop")

    with pytest.raises(KeyboardInterrupt):
        run_jobs([(i,) for i in range(20)], job, parallel=2)
    assert len(started) < 20


def test_parallel_trainings_must_leave_cpus_for_the_data_stages() -> None:
    cfg = load_config("tiny", ["train.cpus_per_worker=1.0", "train.data_stage_cpus=0.25"])
    assert resources_per_training(cfg) == {"CPU": 1.25, "GPU": 0.0}
    check_parallel_trainings(cfg, 1, {"CPU": 2.0})
    with pytest.raises(ValueError, match=r"--parallel 2 needs 2.5 CPUs .*train.cpus_per_worker=1.*has 2"):
        check_parallel_trainings(cfg, 2, {"CPU": 2.0})
    fits = load_config("tiny", ["train.cpus_per_worker=0.75"])
    check_parallel_trainings(fits, 2, {"CPU": 2.0})


def test_parallel_gpu_trainings_need_a_gpu_per_worker() -> None:
    cfg = load_config("tiny", ["train.use_gpu=true", "train.num_workers=4"])
    check_parallel_trainings(cfg, 2, {"CPU": 96.0, "GPU": 8.0})
    with pytest.raises(ValueError, match=r"needs 12 GPUs .*has 8"):
        check_parallel_trainings(cfg, 3, {"CPU": 96.0, "GPU": 8.0})


@pytest.mark.parametrize("bad", ["0", "-1", "two"])
def test_parallel_must_be_a_positive_whole_number(bad: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        table_arg_parser("ablate_dda.py", "t").parse_args(["--parallel", bad])
    assert f"got {bad!r}" in capsys.readouterr().err
