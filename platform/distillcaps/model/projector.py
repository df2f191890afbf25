"""Projector: Q-Former outputs -> the LLM's embedding space ("audio tokens").

Linear - GELU - Linear. The released code uses one Linear (768 -> 4096); the paper's Fig. 3 and
§3.1 describe an MLP after the Q-Former, and a hidden non-linearity costs little.
"""

from __future__ import annotations

from torch import Tensor, nn


class Projector(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int | None = None):
        super().__init__()
        hidden_dim = hidden_dim or out_dim
        self.fc1 = nn.Linear(in_dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:  # (B, W, in_dim) -> (B, W, out_dim)
        return self.fc2(self.act(self.fc1(x)))
