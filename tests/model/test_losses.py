"""dda_loss and caption CE: hand computations, masking, and no gradient into the teacher."""

from __future__ import annotations

import math

import pytest
import torch

from distillcaps.losses import TRAINING_MODES, caption_cross_entropy, dda_loss


def hand_kl(p: list[float], q: list[float]) -> float:
    return sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q))


def softmax(xs: list[float], t: float = 1.0) -> list[float]:
    e = [math.exp(x / t) for x in xs]
    return [v / sum(e) for v in e]


def test_dda_loss_equals_a_hand_computation_with_temperature_and_mask():
    student = torch.tensor([[[1.0, 0.0, -1.0], [0.5, 0.5, 2.0], [9.0, 9.0, 9.0]]])
    teacher = torch.tensor([[[0.0, 2.0, 0.0], [1.0, -1.0, 0.0], [-9.0, 0.0, 9.0]]])
    mask = torch.tensor([[True, True, False]])  # the third position is padding
    t = 2.0
    expected = (
        t
        * t
        * (
            hand_kl(softmax([0, 2, 0], t), softmax([1, 0, -1], t))
            + hand_kl(softmax([1, -1, 0], t), softmax([0.5, 0.5, 2], t))
        )
        / 2
    )
    assert dda_loss(student, teacher, mask, t).item() == pytest.approx(expected, rel=1e-5)


def test_dda_loss_sends_no_gradient_to_the_teacher_and_is_zero_when_equal():
    student = torch.randn(2, 4, 7, requires_grad=True)
    teacher = torch.randn(2, 4, 7, requires_grad=True)
    mask = torch.ones(2, 4, dtype=torch.bool)
    dda_loss(student, teacher, mask, 1.0).backward()
    assert teacher.grad is None
    assert student.grad is not None and student.grad.abs().sum() > 0
    same = torch.randn(1, 3, 5)
    assert dda_loss(same, same.clone(), torch.ones(1, 3, dtype=torch.bool), 1.0).item() == pytest.approx(
        0, abs=1e-6
    )


def test_padding_values_never_change_the_losses():
    student, teacher = torch.randn(2, 5, 11), torch.randn(2, 5, 11)
    targets = torch.randint(0, 11, (2, 5))
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    noisy_s, noisy_t, noisy_y = student.clone(), teacher.clone(), targets.clone()
    noisy_s[1, 2:] = 100 * torch.randn(3, 11)
    noisy_t[1, 2:] = -50.0
    noisy_y[1, 2:] = 0
    assert dda_loss(student, teacher, mask, 1.0) == dda_loss(noisy_s, noisy_t, mask, 1.0)
    assert caption_cross_entropy(student, targets, mask) == caption_cross_entropy(noisy_s, noisy_y, mask)


def test_cross_entropy_is_the_mean_over_valid_tokens():
    logits = torch.tensor([[[0.0, 0.0], [2.0, 0.0]]])
    targets = torch.tensor([[1, 0]])
    expected = (math.log(2) + -math.log(softmax([2, 0])[0])) / 2
    got = caption_cross_entropy(logits, targets, torch.ones(1, 2, dtype=torch.bool))
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_training_modes_cover_the_papers_ablation_rows():
    assert TRAINING_MODES.names() == ["baseline", "distill", "rag", "rag+auto"]
    assert not TRAINING_MODES.get("baseline").needs_retrieval
    terms = TRAINING_MODES.get("distill")
    assert terms.student_ce and terms.teacher_ce and terms.distill
    rag = TRAINING_MODES.get("rag")
    assert rag.teacher_ce and not rag.student_ce and not rag.distill
