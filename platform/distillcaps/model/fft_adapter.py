r"""FFT adapter (paper §3.2.1, eqs. 2-5) in three readings, plus a real frequency-domain filter.

All variants map (R, T, D) -> (R, T, D) along the token axis (dim 1). `GridFFTAdapter` applies one
to band-major encoder tokens so that the FFT runs over the time patches of each frequency band.

What the paper's equations actually compute (`paper`)
------------------------------------------------------
Let X = FFT_t(x) (FFT over the T tokens, per feature). Eq. 3 applies the same real W and b to
the real and the imaginary part: Re Y = Re(X) W^T + b and Im Y = Im(X) W^T + b, so
Y = X W^T + (1 + i) b at every frequency bin. W acts on the feature axis and the FFT on the token
axis, so they commute: IFFT_t(X W^T) = x W^T. A constant c over all bins transforms back to
c * delta[t] (IFFT of a constant is an impulse at token 0). Taking the real part (eq. 5):

    paper(x)[t] = x[t] W^T + b * [t == 0]

i.e. a token-wise linear map, with the bias added to the first token only. No frequency-selective
filtering happens. `tests/model/test_fft_adapter.py` checks this numerically.

What the authors' released code computes (`released`)
------------------------------------------------------
`Y = W(Re X) - i W(Im X)` with W = nn.Linear (bias included) = conj(X W^T) + (1 - i) b. For real
x, conj(X[k]) = X[-k], and the IFFT of X[-k] is x[-t mod T]: the token order circularly reversed
around token 0. So

    released(x)[t] = x[(-t) mod T] W^T + b * [t == 0]

(tokens 0, T-1, T-2, ..., 1, then the same token-wise linear map). Also no filtering.

The real filter (`spectral`)
----------------------------
`x + irfft(rfft(x) * w)`: learnable complex weights per frequency bin and channel, residual, so it
starts near the identity. The weights live on `num_bins` points spanning DC..Nyquist and are
linearly interpolated to the actual number of rfft bins (T // 2 + 1), so one set of weights
serves any sequence length with the same meaning (a fraction of the Nyquist frequency).

Padding: with a `mask` (R, T) bool (valid tokens first), each row is filtered over its own valid
length only (rows are grouped by length), so the amount of padding never changes a real token.
Padded positions are returned unchanged.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distillcaps.registry import Registry

FFT_VARIANTS: Registry[type[nn.Module]] = Registry("FFT adapter variant")


def fft_ready(x: Tensor) -> Tensor:
    """torch.fft has no bfloat16/half kernels on every device: lift those to float32."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def linear_in_its_dtype(linear: nn.Linear, x: Tensor) -> Tensor:
    """Apply a (possibly bf16) Linear to a float32 FFT part; return the FFT's dtype."""
    return linear(x.to(linear.weight.dtype)).to(x.dtype)


@FFT_VARIANTS.register("none")
class IdentityFilter(nn.Module):
    def __init__(self, dim: int, **_: object):
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        return x


@FFT_VARIANTS.register("paper")
class PaperFFTFilter(nn.Module):
    """Eqs. 2-5 literally: FFT over tokens, the same Linear on Re and Im, IFFT, real part."""

    def __init__(self, dim: int, **_: object):
        super().__init__()
        self.linear = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:  # (R, T, D)
        z = torch.fft.fft(fft_ready(x), dim=1)
        re, im = linear_in_its_dtype(self.linear, z.real), linear_in_its_dtype(self.linear, z.imag)
        return torch.fft.ifft(torch.complex(re, im), dim=1).real.to(x.dtype)


@FFT_VARIANTS.register("released")
class ReleasedFFTFilter(nn.Module):
    """The authors' code: `W(Re) - i W(Im)` (a sign flip on the imaginary part), IFFT, real part."""

    def __init__(self, dim: int, **_: object):
        super().__init__()
        self.linear = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        z = torch.fft.fft(fft_ready(x), dim=1)
        re, im = linear_in_its_dtype(self.linear, z.real), linear_in_its_dtype(self.linear, z.imag)
        return torch.fft.ifft(torch.complex(re, -im), dim=1).real.to(x.dtype)


@FFT_VARIANTS.register("spectral")
class SpectralFilter(nn.Module):
    """Residual frequency-domain filter: x + irfft(rfft(x) * w(f)), w complex per bin and channel."""

    def __init__(self, dim: int, num_bins: int = 32, init_std: float = 0.02, **_: object):
        super().__init__()
        if num_bins < 1:
            raise ValueError(f"spectral FFT adapter needs num_bins >= 1, got {num_bins}")
        # (num_bins, D, 2): real and imaginary parts (safetensors-friendly); small -> near identity
        self.weight = nn.Parameter(torch.randn(num_bins, dim, 2) * init_std)

    def response(self, num_rfft_bins: int) -> Tensor:
        """Complex weights (num_rfft_bins, D), interpolated over DC..Nyquist."""
        w = fft_ready(self.weight).permute(1, 2, 0)  # (D, 2, num_bins)
        if w.shape[-1] != num_rfft_bins:
            if w.shape[-1] == 1 or num_rfft_bins == 1:
                w = w[..., :1].expand(-1, -1, num_rfft_bins)
            else:
                w = F.interpolate(w, size=num_rfft_bins, mode="linear", align_corners=True)
        return torch.complex(w[:, 0], w[:, 1]).transpose(0, 1)  # (K, D)

    def forward(self, x: Tensor) -> Tensor:  # (R, T, D)
        T = x.shape[1]
        spectrum = torch.fft.rfft(fft_ready(x), dim=1)  # (R, T//2+1, D)
        response = self.response(spectrum.shape[1]).to(spectrum.dtype)
        filtered = torch.fft.irfft(spectrum * response, n=T, dim=1)
        return x + filtered.to(x.dtype)


class FFTAdapter(nn.Module):
    """`FFTAdapter(dim, variant)`: one variant applied along dim 1 of (B, T, D), padding-aware."""

    def __init__(self, dim: int, variant: str = "paper", **variant_kwargs: object):
        super().__init__()
        self.dim, self.variant = dim, variant
        self.filter = FFT_VARIANTS.get(variant)(dim, **variant_kwargs)

    @property
    def linear(self) -> nn.Linear:
        """The paper's W and b (`paper` and `released` variants only)."""
        if not isinstance(getattr(self.filter, "linear", None), nn.Linear):
            raise AttributeError(f"FFT adapter variant {self.variant!r} has no .linear")
        return self.filter.linear

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x (B, T, D); mask (B, T) bool with valid tokens first, or None (all valid)."""
        if mask is None or bool(mask.all()):
            return self.filter(x)
        lengths = mask.sum(dim=1)  # (B,)
        out = x.clone()
        for length in lengths.unique().tolist():  # one FFT per distinct valid length
            if length == 0:
                continue
            rows = (lengths == length).nonzero(as_tuple=True)[0]
            out[rows, :length] = self.filter(x[rows, :length])
        return out


TokenLayout = Literal["time", "flat"]


class GridFFTAdapter(nn.Module):
    """Applies an `FFTAdapter` to band-major tokens (B, bands*T, D).

    layout "time": FFT over the T time patches within each band ((B*bands, T, D) internally);
    layout "flat": FFT over the flattened band-major sequence, as the released code does.
    """

    def __init__(
        self, dim: int, variant: str = "paper", layout: TokenLayout = "time", **variant_kwargs: object
    ):
        super().__init__()
        if layout not in ("time", "flat"):
            raise ValueError(f"FFT adapter layout must be 'time' or 'flat', got {layout!r}")
        self.layout = layout
        self.adapter = FFTAdapter(dim, variant, **variant_kwargs)

    @property
    def linear(self) -> nn.Linear:
        return self.adapter.linear

    def forward(self, tokens: Tensor, grid: tuple[int, int], mask: Tensor | None = None) -> Tensor:
        B, N, D = tokens.shape
        bands, T = grid
        if bands * T != N:
            raise ValueError(f"grid {grid} does not match {N} tokens")
        if self.layout == "flat":  # padding sits between bands here, so like the released code: no mask
            return self.adapter(tokens)
        per_band = tokens.reshape(B * bands, T, D)
        band_mask = None if mask is None else mask.reshape(B * bands, T)
        return self.adapter(per_band, band_mask).reshape(B, N, D)


def build_fft_adapter(adapter_cfg, dim: int) -> GridFFTAdapter:
    """From `cfg.model.adapter` (variant, layout, spectral_bins) for encoder width `dim`."""
    return GridFFTAdapter(
        dim, adapter_cfg.variant, layout=adapter_cfg.layout, num_bins=adapter_cfg.spectral_bins
    )
