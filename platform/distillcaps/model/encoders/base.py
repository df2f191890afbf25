"""What every audio encoder returns, the frozen-encoder contract, and the valid-token mask rules.

An encoder turns a padded batch of 16 kHz waveforms into tokens on a (frequency band x time
patch) grid, flattened band-major as CED emits them: token index = band * time_patches + t.
Downstream modules (FFT adapter, windowed Q-Former) need the grid to find the time axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class EncoderOutput:
    tokens: Tensor  # (B, N, D), N = bands * time_patches, band-major
    mask: Tensor  # (B, N) bool, True where the token covers real audio
    grid: tuple[int, int]  # (bands, time_patches)


class AudioEncoder(nn.Module):
    """Base class: `forward(waveform (B, S), lengths (B,) | None) -> EncoderOutput`.

    Subclasses set `dim` (token width). `freeze()` turns off gradients and pins eval mode, so a
    later `model.train()` cannot switch dropout or batch-norm statistics back on.
    """

    dim: int
    frozen: bool = False

    def forward(self, waveform: Tensor, lengths: Tensor | None = None) -> EncoderOutput:
        raise NotImplementedError

    def freeze(self) -> AudioEncoder:
        self.frozen = True
        self.requires_grad_(False)
        return self.train(False)

    def train(self, mode: bool = True) -> AudioEncoder:
        return super().train(mode and not self.frozen)


def full_lengths(waveform: Tensor, lengths: Tensor | None) -> Tensor:
    """Lengths in samples, (B,) long; None means every row is all real audio."""
    if lengths is None:
        return torch.full((waveform.shape[0],), waveform.shape[1], dtype=torch.long, device=waveform.device)
    if lengths.shape != (waveform.shape[0],):
        raise ValueError(f"lengths must have shape ({waveform.shape[0]},), got {tuple(lengths.shape)}")
    return lengths.to(device=waveform.device, dtype=torch.long).clamp(0, waveform.shape[1])


def band_major_mask(valid_time_patches: Tensor, bands: int, time_patches: int) -> Tensor:
    """(B,) counts of valid time patches -> (B, bands * time_patches) bool, band-major."""
    t = torch.arange(time_patches, device=valid_time_patches.device)
    per_time = t[None, :] < valid_time_patches[:, None]  # (B, T)
    return per_time[:, None, :].expand(-1, bands, -1).reshape(valid_time_patches.shape[0], -1)


def load_state_dict_strict(
    module: nn.Module, state: dict[str, Tensor], *, source: str, optional_prefixes: tuple[str, ...] = ()
) -> None:
    """Load with strict key and shape checks; errors name the missing/unexpected/mis-shaped keys."""
    expected = module.state_dict()
    # keys under `optional_prefixes` (computed buffers) may be absent; the module keeps its own
    missing = sorted(k for k in set(expected) - set(state) if not k.startswith(optional_prefixes))
    unexpected = sorted(set(state) - set(expected))
    mis_shaped = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(state))
        if tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    if mis_shaped:
        problems.append(f"shape mismatches {mis_shaped}")
    if problems:
        raise ValueError(
            f"{source}: state dict does not match {type(module).__name__}: " + "; ".join(problems)
        )
    module.load_state_dict(state, strict=not optional_prefixes)
