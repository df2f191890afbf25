"""The MLP projector into the LLM's embedding space."""

from __future__ import annotations

import torch

from distillcaps.model.projector import Projector


def test_projector_maps_to_llm_width():
    torch.manual_seed(0)
    proj = Projector(16, 40)
    x = torch.randn(2, 5, 16)
    y = proj(x)
    assert y.shape == (2, 5, 40)
    assert proj.fc1.out_features == 40  # hidden width defaults to the LLM width
    expected = proj.fc2(torch.nn.functional.gelu(proj.fc1(x)))
    torch.testing.assert_close(y, expected)


def test_projector_hidden_width():
    assert Projector(16, 40, hidden_dim=8).fc1.out_features == 8
