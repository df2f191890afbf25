"""The training loop's pure parts: the per-step learning curve (window means at the window's last
step) and the stop on a non-finite loss."""

from __future__ import annotations

import pytest

from distillcaps.training.loop import smoothed


def test_the_curve_averages_each_window_and_keeps_a_short_last_one():
    curve = [(step, float(step)) for step in range(1, 26)]  # 25 steps, loss = step
    assert smoothed(curve, 10) == [(10, 5.5), (20, 15.5), (25, 23.0)]
    assert smoothed(curve[:3], 10) == [(3, pytest.approx(2.0))]
    assert smoothed([], 10) == []


def test_a_non_finite_loss_stops_the_training_naming_the_step_its_clips_and_the_last_checkpoint():
    import math

    from distillcaps.training.loop import NonFiniteLoss, check_finite_loss

    check_finite_loss(2.5, 10, 0, ["a.wav"])  # finite: nothing happens
    with pytest.raises(
        NonFiniteLoss, match=r"loss is nan at optimizer step 7 \(epoch 2\).*a\.wav, b\.wav.*after epoch 1"
    ):
        check_finite_loss(math.nan, 7, 1, ["a.wav", "b.wav"])
    with pytest.raises(NonFiniteLoss, match=r"loss is inf .* and 2 more\. Last good checkpoint: none yet"):
        check_finite_loss(math.inf, 1, 0, [f"{i}.wav" for i in range(10)])
