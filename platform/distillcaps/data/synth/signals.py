"""Small vectorised DSP helpers the event synthesisers are built from (numpy, float64 inside)."""

from __future__ import annotations

import functools

import numpy as np


def num_samples(seconds: float, sr: int) -> int:
    return max(1, int(round(seconds * sr)))


def time_axis(n: int, sr: int) -> np.ndarray:
    return np.arange(n) / sr


@functools.lru_cache(maxsize=4096)
def fft_size(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n: pocketfft is slow on lengths with large prime factors."""
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            size = p35 << max(0, (-(-n // p35) - 1).bit_length())  # times the power of 2 that reaches n
            best = min(best, size)
            p35 *= 3
        p5 *= 5
    return best


def band_noise(rng: np.random.Generator, n: int, sr: int, low: float, high: float) -> np.ndarray:
    """White noise with everything outside [low, high] Hz removed (brick-wall in the FFT domain)."""
    size = fft_size(n)  # filter a slightly longer noise and keep n samples: still stationary noise
    spectrum = np.fft.rfft(rng.standard_normal(size))
    freqs = np.fft.rfftfreq(size, 1 / sr)
    spectrum[(freqs < low) | (freqs > high)] = 0
    return unit_rms(np.fft.irfft(spectrum, size)[:n])


def band_filter(x: np.ndarray, sr: int, low: float, high: float) -> np.ndarray:
    """``x`` with everything outside [low, high] Hz removed, unit RMS."""
    n = len(x)
    size = fft_size(n)
    spectrum = np.fft.rfft(x, size)
    freqs = np.fft.rfftfreq(size, 1 / sr)
    spectrum[(freqs < low) | (freqs > high)] = 0
    return unit_rms(np.fft.irfft(spectrum, size)[:n])


def colored_noise(
    rng: np.random.Generator, n: int, sr: int, exponent: float, high: float | None = None
) -> np.ndarray:
    """1/f^exponent noise (1: pink, 2: brown), optionally low-passed at ``high`` Hz."""
    size = fft_size(n)
    spectrum = np.fft.rfft(rng.standard_normal(size)) * color_gains(size, sr, exponent, high)
    return unit_rms(np.fft.irfft(spectrum, size)[:n])


@functools.lru_cache(maxsize=64)
def color_gains(size: int, sr: int, exponent: float, high: float | None) -> np.ndarray:
    freqs = np.fft.rfftfreq(size, 1 / sr)
    gains = np.zeros_like(freqs)
    gains[1:] = freqs[1:] ** (-exponent / 2)
    if high is not None:
        gains[freqs > high] = 0
    return gains


def slow_modulation(rng: np.random.Generator, n: int, sr: int, rate_hz: float) -> np.ndarray:
    """A smooth random curve in [0, 1] that changes about ``rate_hz`` times per second."""
    knots = max(2, int(n / sr * rate_hz) + 2)
    values = rng.random(knots)
    return np.interp(np.linspace(0, knots - 1, n), np.arange(knots), values)


def decay_envelope(n: int, sr: int, attack: float, tau: float) -> np.ndarray:
    t = time_axis(n, sr)
    return np.minimum(t / max(attack, 1e-4), 1.0) * np.exp(-t / tau)


def ramp_envelope(n: int, sr: int, ramp: float) -> np.ndarray:
    """Flat with linear fade-in/out of ``ramp`` seconds (no clicks at tone edges)."""
    k = max(1, min(int(ramp * sr), n // 2))
    env = np.ones(n)
    env[:k] = np.linspace(0, 1, k)
    env[n - k :] = np.linspace(1, 0, k)
    return env


def harmonic_tone(freq: np.ndarray | float, n: int, sr: int, amplitudes: list[float]) -> np.ndarray:
    """Sum of harmonics k*f (k = 1..len(amplitudes)) of a possibly time-varying fundamental."""
    freq = np.broadcast_to(np.asarray(freq, dtype=float), (n,))
    # Phase wrapped in float64, then float32 sines (7x faster; k * phase stays small enough).
    phase = np.mod(2 * np.pi * np.cumsum(freq) / sr, 2 * np.pi).astype(np.float32)  # (n,)
    ks = np.arange(1, len(amplitudes) + 1, dtype=np.float32)[:, None]  # (K, 1)
    keep = (ks[:, 0] * freq.max()) < sr / 2  # drop harmonics above Nyquist
    amps = np.asarray(amplitudes, dtype=np.float32)[keep, None]
    return (amps * np.sin(ks[keep] * phase[None, :])).sum(axis=0, dtype=np.float64)


def add_at(out: np.ndarray, signal: np.ndarray, start: int) -> None:
    """out[start:start+len] += signal, cut at the end of ``out``."""
    if start >= len(out):
        return
    end = min(len(out), start + len(signal))
    out[start:end] += signal[: end - start]


def scatter_grains(
    rng: np.random.Generator, n: int, sr: int, rate_hz: float, grain, regularity: float = 0.0
) -> np.ndarray:
    """Place ``grain(rng) -> array`` at ~rate_hz per second; regularity 1 = metronomic, 0 = Poisson."""
    out = np.zeros(n)
    t = rng.random() / rate_hz
    while t < n / sr:
        add_at(out, grain(rng), int(t * sr))
        period = 1 / rate_hz
        t += regularity * period * rng.uniform(0.9, 1.1) + (1 - regularity) * rng.exponential(period)
    return out


def unit_rms(x: np.ndarray) -> np.ndarray:
    rms = np.sqrt(np.mean(x**2))
    return x / rms if rms > 0 else x


def active_rms(x: np.ndarray) -> float:
    """RMS over the samples that carry the sound (|x| above 1% of the peak), so sparse bursts and
    continuous textures at the same target level sound about equally loud."""
    peak = np.abs(x).max()
    if peak == 0:
        return 0.0
    active = x[np.abs(x) > 0.01 * peak]
    return float(np.sqrt(np.mean(active**2)))
