"""FFT adapter variants: shapes, the paper/released equivalences, and a real frequency filter."""

from __future__ import annotations

import math

import pytest
import torch

from distillcaps.model.config import AdapterConfig
from distillcaps.model.fft_adapter import FFT_VARIANTS, FFTAdapter, GridFFTAdapter, build_fft_adapter

VARIANTS = ["none", "paper", "released", "spectral"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_registry():
    assert FFT_VARIANTS.names() == sorted(VARIANTS)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("layout", ["time", "flat"])
def test_shapes_for_each_variant_and_layout(variant, layout):
    adapter = GridFFTAdapter(8, variant, layout=layout)
    tokens = torch.randn(2, 4 * 5, 8)  # 4 bands x 5 time patches
    mask = torch.ones(2, 20, dtype=torch.bool)
    mask[1].view(4, 5)[:, 3:] = False
    out = adapter(tokens, (4, 5), mask)
    assert out.shape == tokens.shape and out.dtype == tokens.dtype
    assert FFTAdapter(8, variant)(torch.randn(3, 7, 8)).shape == (3, 7, 8)


def test_none_is_identity():
    x = torch.randn(2, 9, 8)
    assert torch.equal(FFTAdapter(8, "none")(x), x)


def test_paper_equals_tokenwise_linear_with_bias_at_token_zero_only():
    adapter = FFTAdapter(8, "paper")
    W, b = adapter.linear.weight, adapter.linear.bias
    x = torch.randn(3, 11, 8, dtype=torch.float64)
    with torch.no_grad():
        y = adapter.double()(x)
    expected = x @ W.double().T
    expected[:, 0] += b.double()
    torch.testing.assert_close(y, expected)
    assert not torch.allclose(y[:, 1:], x[:, 1:] @ W.double().T + b.double())  # no bias elsewhere


def test_released_equals_circular_reversal_then_linear():
    adapter = FFTAdapter(8, "released").double()
    W, b = adapter.linear.weight, adapter.linear.bias
    x = torch.randn(3, 11, 8, dtype=torch.float64)
    with torch.no_grad():
        y = adapter(x)
    reversed_order = [(-t) % 11 for t in range(11)]  # 0, 10, 9, ..., 1
    expected = x[:, reversed_order] @ W.T
    expected[:, 0] += b
    torch.testing.assert_close(y, expected)


def test_spectral_filters_frequencies_differently():
    T, D, signal_bins = 32, 4, (2, 10)
    adapter = FFTAdapter(D, "spectral", num_bins=T // 2 + 1)  # one weight per rfft bin: no interpolation
    with torch.no_grad():
        adapter.filter.weight.zero_()
        adapter.filter.weight[:6, :, 0] = -0.5  # low bins: gain 1 - 0.5
        adapter.filter.weight[6:, :, 0] = -0.9  # high bins: gain 1 - 0.9
    t = torch.arange(T, dtype=torch.float64)
    low, high = (torch.cos(2 * math.pi * k * t / T) for k in signal_bins)
    x = torch.zeros(1, T, D, dtype=torch.float64)
    x[0, :, 0] = low + high
    with torch.no_grad():
        y = adapter.double()(x)
    spectrum = torch.fft.rfft(y[0, :, 0])
    gain_low = spectrum[2].abs() / (T / 2)
    gain_high = spectrum[10].abs() / (T / 2)
    torch.testing.assert_close(gain_low.item(), 0.5, atol=1e-6, rtol=0)
    torch.testing.assert_close(gain_high.item(), 0.1, atol=1e-6, rtol=0)
    # so no token-wise linear map y[t] = x[t] A^T + c fits: least squares leaves a large residual
    # (x is non-zero in channel 0 only, so [x[t, 0], 1] spans every token-wise affine map's input)
    design = torch.stack([x[0, :, 0], torch.ones(T, dtype=torch.float64)], dim=1)
    fit = torch.linalg.lstsq(design, y[0]).solution
    residual = (design @ fit - y[0]).norm() / y[0].norm()
    assert residual > 0.5
    # while the paper variant is fitted exactly by one
    paper = FFTAdapter(D, "paper").double()
    with torch.no_grad():
        yp = paper(x)
    fit_p = torch.linalg.lstsq(design[1:], yp[0, 1:]).solution
    assert (design[1:] @ fit_p - yp[0, 1:]).norm() < 1e-8


def test_spectral_any_length_and_near_identity_at_init():
    adapter = FFTAdapter(8, "spectral", num_bins=32)
    for T in (1, 2, 7, 63, 200):
        x = torch.randn(2, T, 8)
        y = adapter(x)
        assert y.shape == x.shape
        assert (y - x).norm() < 0.2 * x.norm()  # starts close to the identity
    y.sum().backward()
    assert adapter.filter.weight.grad is not None and adapter.filter.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("variant", VARIANTS)
def test_padding_amount_does_not_change_real_tokens_in_time_layout(variant):
    adapter = GridFFTAdapter(8, variant, layout="time")
    with torch.no_grad():
        if variant == "spectral":
            adapter.adapter.filter.weight.normal_()
    short = torch.randn(1, 4, 6, 8)  # (B, bands, T, D)
    padded = torch.cat([short, torch.randn(1, 4, 3, 8)], dim=2)
    mask = torch.zeros(1, 4, 9, dtype=torch.bool)
    mask[..., :6] = True
    out_short = adapter(short.reshape(1, 24, 8), (4, 6))
    out_padded = adapter(padded.reshape(1, 36, 8), (4, 9), mask.reshape(1, 36))
    real = out_padded.view(1, 4, 9, 8)[:, :, :6]
    torch.testing.assert_close(real, out_short.view(1, 4, 6, 8))


def test_time_layout_runs_the_fft_within_each_band():
    adapter = GridFFTAdapter(8, "released", layout="time").double()
    x = torch.randn(1, 3 * 5, 8, dtype=torch.float64)
    with torch.no_grad():
        y = adapter(x, (3, 5)).view(3, 5, 8)
        per_band = adapter.adapter(x.view(3, 5, 8))
    torch.testing.assert_close(y, per_band)


def test_build_from_config():
    adapter = build_fft_adapter(AdapterConfig(variant="spectral", layout="flat", spectral_bins=8), dim=16)
    assert adapter.layout == "flat" and adapter.adapter.filter.weight.shape == (8, 16, 2)
    with pytest.raises(AttributeError):
        _ = adapter.linear
    assert build_fft_adapter(AdapterConfig(), dim=16).linear.weight.shape == (16, 16)


@pytest.mark.parametrize("variant", VARIANTS)
def test_bfloat16(variant):
    adapter = GridFFTAdapter(8, variant).to(torch.bfloat16)
    out = adapter(torch.randn(2, 12, 8, dtype=torch.bfloat16), (4, 3))
    assert out.dtype == torch.bfloat16
