"""The training objective's terms, on logits already aligned by caption-token index.

Both functions take logits (B, L, V) whose position l is the prediction of caption token l
(the first caption token included: its logits come from the last prompt position) and a
(B, L) bool mask of the real caption tokens. Padding never contributes; the mean runs over
valid tokens of the whole batch, so long and short captions weigh per token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from distillcaps.registry import Registry


def caption_cross_entropy(
    logits: torch.Tensor,  # (B, L, V) predicting caption token l at position l
    targets: torch.Tensor,  # (B, L) long, caption token ids (eos included)
    mask: torch.Tensor,  # (B, L) bool, real caption tokens
) -> torch.Tensor:
    """Mean next-token cross-entropy over the valid caption tokens."""
    per_token = F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")  # (B, L)
    return masked_mean(per_token, mask)


def dda_loss(
    student_logits: torch.Tensor,  # (B, L, V)
    teacher_logits: torch.Tensor,  # (B, L, V); detached here, the KL never trains the teacher
    mask: torch.Tensor,  # (B, L) bool
    temperature: float,
) -> torch.Tensor:
    """Distillation term: T² · KL(p_teacher ‖ p_student), summed over the vocabulary, mean over tokens.

    Forward KL with the retrieval-augmented branch as the (detached) teacher, as in the paper;
    the T² factor keeps gradient magnitudes comparable across temperatures (Hinton et al.).
    """
    t = float(temperature)
    log_p_student = F.log_softmax(student_logits.float() / t, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.detach().float() / t, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=-1)  # (B, L)
    return (t * t) * masked_mean(kl, mask)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` where `mask` is true; 0 (still differentiable) when nothing is valid."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


# ---------------------------------------------------------------------------------------------
# Training modes: which terms a step computes (the paper's ablation rows)


@dataclass(frozen=True)
class ObjectiveTerms:
    student_ce: bool  # CE of the student branch (no retrieval): weight train.w_auto
    teacher_ce: bool  # CE of the retrieval-augmented branch: weight train.w_rag
    distill: bool  # T² KL(teacher ‖ student): weight train.w_dda

    @property
    def needs_retrieval(self) -> bool:
        return self.teacher_ce or self.distill


TRAINING_MODES: Registry[ObjectiveTerms] = Registry("training mode")
TRAINING_MODES.register("baseline")(ObjectiveTerms(student_ce=True, teacher_ce=False, distill=False))
TRAINING_MODES.register("rag")(ObjectiveTerms(student_ce=False, teacher_ce=True, distill=False))
TRAINING_MODES.register("rag+auto")(ObjectiveTerms(student_ce=True, teacher_ce=True, distill=False))
TRAINING_MODES.register("distill")(ObjectiveTerms(student_ce=True, teacher_ce=True, distill=True))
