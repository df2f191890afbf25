"""Windowed Q-Former: window counts per layout, locality, masks."""

from __future__ import annotations

import pytest
import torch

from distillcaps.model.config import QFormerConfig
from distillcaps.model.qformer import WindowedQFormer, build_qformer

DE, DQ = 12, 16


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def qformer(**kw) -> WindowedQFormer:
    kw.setdefault("num_heads", 2)
    return WindowedQFormer(DE, dim=DQ, **kw).eval()


def grid_tokens(B: int, bands: int, T: int) -> torch.Tensor:
    return torch.randn(B, bands * T, DE)


def test_time_windows_shapes_and_mask():
    qf = qformer(window_size=4, window_stride=4, queries_per_window=2)
    tokens = grid_tokens(2, 4, 10)  # 10 time patches -> windows [0:4] [4:8] [8:10 + pad]
    mask = torch.ones(2, 40, dtype=torch.bool)
    mask[1].view(4, 10)[:, 5:] = False  # row 1: 5 real time patches -> window 2 holds no audio
    out = qf(tokens, (4, 10), mask)
    assert out.tokens.shape == (2, 3 * 2, DQ)
    assert out.mask.tolist() == [[True] * 6, [True] * 4 + [False] * 2]


@pytest.mark.parametrize(("T", "expected"), [(4, 1), (3, 1), (5, 2), (62, 16), (8, 2)])
def test_time_window_counts(T, expected):
    qf = qformer(window_size=4, window_stride=4)
    assert qf(grid_tokens(1, 4, T), (4, T)).tokens.shape[1] == expected


def test_overlapping_windows():
    qf = qformer(window_size=4, window_stride=2)
    assert qf(grid_tokens(1, 4, 10), (4, 10)).tokens.shape[1] == 4  # starts 0, 2, 4, 6


def test_flat_layout_matches_released_window_counts():
    qf = qformer(window_size=17, window_stride=17, layout="flat")
    assert qf(grid_tokens(1, 4, 62), (4, 62)).tokens.shape[1] == 14  # 10 s CED clip
    assert qf(grid_tokens(1, 4, 189), (4, 189)).tokens.shape[1] == 44  # 30 s, released CED chunking
    assert qf(grid_tokens(1, 4, 2), (4, 2)).tokens.shape[1] == 1  # shorter than a window: padded


def test_a_time_window_holds_every_band_of_its_time_patches_and_nothing_else():
    qf = qformer(window_size=4, window_stride=4)
    tokens = grid_tokens(1, 4, 12)
    base = qf(tokens, (4, 12)).tokens
    for band in range(4):
        changed = tokens.clone()
        changed.view(1, 4, 12, DE)[0, band, 5] += 1.0  # time patch 5 -> window 1
        diff = (qf(changed, (4, 12)).tokens - base).abs().amax(dim=-1)[0]
        assert diff[1] > 1e-4 and diff[0] == 0 and diff[2] == 0


def test_padding_and_masked_tokens_change_nothing():
    qf = qformer(window_size=4, window_stride=4)
    short = grid_tokens(1, 4, 6)
    alone = qf(short, (4, 6))
    padded = torch.cat([short.view(1, 4, 6, DE), 100 * torch.randn(1, 4, 5, DE)], dim=2).view(1, 44, DE)
    mask = torch.zeros(1, 4, 11, dtype=torch.bool)
    mask[..., :6] = True
    out = qf(padded, (4, 11), mask.view(1, 44))
    assert out.mask.tolist() == [[True, True, False]]
    torch.testing.assert_close(out.tokens[:, :2], alone.tokens)


def test_gradients_reach_queries_and_layers():
    qf = qformer().train()
    out = qf(grid_tokens(2, 4, 8), (4, 8))
    (out.tokens * torch.randn_like(out.tokens)).sum().backward()  # plain sum is flat after LayerNorm
    assert qf.queries.grad is not None and qf.queries.grad.abs().sum() > 0


def test_build_from_config():
    cfg = QFormerConfig(
        num_layers=1, num_heads=2, dim=DQ, window_size=17, window_stride=17, window_layout="flat"
    )
    qf = build_qformer(cfg, encoder_dim=DE)
    assert qf.layout == "flat" and len(qf.qformer.encoder.layer) == 1


def test_pooled_residual_carries_clip_signal_from_init() -> None:
    """A fresh BLIP-2 Q-Former barely tells clips apart; the skip path makes their outputs differ."""
    torch.manual_seed(0)
    tokens = torch.randn(8, 4 * 8, 16)  # 8 different clips on a (4 bands, 8 time) grid
    spread = {}
    for pooled in (False, True):
        torch.manual_seed(1)
        qf = WindowedQFormer(16, dim=32, num_layers=2, num_heads=4, pooled_residual=pooled).eval()
        out = qf(tokens, (4, 8)).tokens  # (8, W, 32)
        spread[pooled] = (out - out.mean(0, keepdim=True)).norm() / out.norm()
    assert spread[True] > 5 * spread[False]


def test_pooled_residual_ignores_padding() -> None:
    torch.manual_seed(0)
    qf = WindowedQFormer(16, dim=32, num_layers=1, num_heads=4, pooled_residual=True).eval()
    tokens = torch.randn(1, 4 * 6, 16)
    mask = torch.ones(1, 4 * 6, dtype=torch.bool).reshape(1, 4, 6)
    mask[:, :, 5:] = False
    padded = tokens.clone().reshape(1, 4, 6, 16)
    padded[:, :, 5:] = 100.0  # garbage in the padded time patch
    a = qf(tokens, (4, 6), mask.reshape(1, -1)).tokens
    b = qf(padded.reshape(1, -1, 16), (4, 6), mask.reshape(1, -1)).tokens
    assert torch.allclose(a, b, atol=1e-5)
