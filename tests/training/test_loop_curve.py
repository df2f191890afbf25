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

    from distillcaps.training.loop import NonFiniteLoss, check_finite_loss, checkpoint_label
    from distillcaps.training.train_state import TrainState

    step_checkpoint = checkpoint_label(TrainState(epoch=1, step_in_epoch=4, global_step=14), "/r/ckpt")
    assert step_checkpoint == "the step checkpoint at global step 14 (epoch 2, step 4) (/r/ckpt)"
    check_finite_loss(2.5, 10, 0, ["a.wav"], step_checkpoint)  # finite: nothing happens
    with pytest.raises(
        NonFiniteLoss,
        match=r"loss is nan at global step 17 \(epoch 2\).*a\.wav, b\.wav.*step 14 \(epoch 2, step 4\)",
    ):
        check_finite_loss(math.nan, 17, 1, ["a.wav", "b.wav"], step_checkpoint)
    with pytest.raises(NonFiniteLoss, match=r"loss is inf .* and 2 more\. Last good checkpoint: none yet"):
        check_finite_loss(
            math.inf, 1, 0, [f"{i}.wav" for i in range(10)], checkpoint_label(TrainState(), None)
        )
    assert checkpoint_label(TrainState(epoch=2, global_step=20), None) == (
        "the one at the end of epoch 2 (global step 20)"
    )
