"""The per-step learning curve each training logs: window means at the window's last step."""

from __future__ import annotations

import pytest

from distillcaps.training.loop import smoothed


def test_the_curve_averages_each_window_and_keeps_a_short_last_one():
    curve = [(step, float(step)) for step in range(1, 26)]  # 25 steps, loss = step
    assert smoothed(curve, 10) == [(10, 5.5), (20, 15.5), (25, 23.0)]
    assert smoothed(curve[:3], 10) == [(3, pytest.approx(2.0))]
    assert smoothed([], 10) == []
