"""Where the precompute passes run: "auto" keeps CPU passes in-process and sends GPU passes to Ray."""

from __future__ import annotations

import pytest

from distillcaps.precompute_engine import ENGINES, runs_on_ray


def test_auto_runs_cpu_passes_here_and_gpu_passes_on_ray():
    assert not runs_on_ray("auto")
    assert runs_on_ray("auto", on_gpu=True)


def test_ray_and_local_ignore_the_device():
    assert runs_on_ray("ray") and runs_on_ray("ray", on_gpu=True)
    assert not runs_on_ray("local") and not runs_on_ray("local", on_gpu=True)


def test_an_unknown_engine_names_the_known_ones():
    with pytest.raises(KeyError, match="unknown precompute engine 'rya'; known: auto, local, ray"):
        runs_on_ray("rya")
    assert ENGINES == ("auto", "local", "ray")
