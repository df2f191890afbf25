"""Rendering a scene to audio: synthesise each event at its absolute level, then the room.

Levels are absolute (RMS over the sounding part), never normalised per clip, so loudness words in
the captions stay true: background < faint < normal < loud.
"""

from __future__ import annotations

import numpy as np

from distillcaps.data.synth.domains import Domain
from distillcaps.data.synth.events import EVENT_CLASSES
from distillcaps.data.synth.scene import Scene, SceneEvent
from distillcaps.data.synth.signals import active_rms, add_at, colored_noise, harmonic_tone, num_samples

LEVEL_RMS = {"background": 0.008, "faint": 0.018, "normal": 0.06, "loud": 0.15}  # ~-42 to -16 dBFS


def render_scene(rng: np.random.Generator, scene: Scene, domain: Domain, sr: int) -> np.ndarray:
    """(n,) float32 in [-1, 1]."""
    n = num_samples(scene.clip_seconds, sr)
    mix = np.zeros(n)
    for event in scene.events:
        add_at(mix, render_event(rng, event, sr), int(round(event.onset * sr)))
    mix = apply_room(rng, mix, domain, sr)
    return np.clip(mix, -1.0, 1.0).astype(np.float32)


def render_event(rng: np.random.Generator, event: SceneEvent, sr: int) -> np.ndarray:
    cls = EVENT_CLASSES.get(event.label)
    if cls.kind == "texture":
        signal = cls.sound(rng, sr, event.offset - event.onset, event.pitch)
        signal = signal * fade(len(signal), sr)
    else:
        signal = np.zeros(num_samples(event.offset - event.onset, sr))
        for start, end in event.bursts:
            add_at(
                signal, cls.sound(rng, sr, end - start, event.pitch), int(round((start - event.onset) * sr))
            )
    level = LEVEL_RMS["background" if event.role == "background" else event.loudness]
    rms = active_rms(signal)
    return signal * (level / rms) if rms > 0 else signal


def fade(n: int, sr: int, seconds: float = 0.05) -> np.ndarray:
    k = max(1, min(int(seconds * sr), n // 2))
    env = np.ones(n)
    env[:k] = np.linspace(0, 1, k)
    env[n - k :] = np.linspace(1, 0, k)
    return env


def apply_room(rng: np.random.Generator, dry: np.ndarray, domain: Domain, sr: int) -> np.ndarray:
    n = len(dry)
    out = dry
    if domain.reverb_rt60 is not None:
        rt60 = rng.uniform(*domain.reverb_rt60)
        m = num_samples(rt60, sr)
        # Exponentially decaying noise: -60 dB after rt60 seconds, the classic synthetic room response.
        impulse = rng.standard_normal(m) * np.exp(-6.9 * np.arange(m) / m)
        impulse /= np.sqrt(np.sum(impulse**2))
        size = 1 << int(np.ceil(np.log2(n + m)))
        wet = np.fft.irfft(np.fft.rfft(dry, size) * np.fft.rfft(impulse, size), size)[:n]
        out = dry + domain.reverb_wet * wet
    floor = colored_noise(rng, n, sr, exponent=1.0) * rng.uniform(*domain.noise_floor_rms)
    if domain.mains_hum:
        floor += 0.004 * harmonic_tone(50.0, n, sr, [1.0, 0.5, 0.3, 0.2])
    return out + floor
