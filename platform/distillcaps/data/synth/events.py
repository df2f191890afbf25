"""The sound-event classes of the synthetic benchmark, each a small procedural synthesiser.

Two kinds:
- ``countable``: discrete bursts (a bark, a knock, a beep); a scene says how many, and captions
  may count them ("twice", "several times"). ``sound`` makes ONE burst of ``seconds``.
- ``texture``: a continuous sound (rain, babble); ``sound`` fills ``seconds``.
``pitch`` (around 1.0) scales the characteristic frequencies of one event instance, so the same
dog barks at the same pitch within a clip but differs between clips. Classes marked
``background`` can also sit under a whole clip at a low level ("... in the background").
Every class is spectrally and temporally distinct enough for a small model to tell apart in a
log-mel spectrogram.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from distillcaps.data.synth.signals import (
    add_at,
    band_filter,
    band_noise,
    colored_noise,
    decay_envelope,
    harmonic_tone,
    num_samples,
    ramp_envelope,
    scatter_grains,
    slow_modulation,
    time_axis,
)
from distillcaps.registry import Registry

Sound = Callable[[np.random.Generator, int, float, float], np.ndarray]  # (rng, sr, seconds, pitch) -> (n,)


@dataclass(frozen=True)
class EventClass:
    name: str
    kind: Literal["countable", "texture"]
    sound: Sound
    seconds: tuple[float, float]  # burst length (countable) or shortest/longest texture segment
    gap_seconds: tuple[float, float] = (0.0, 0.0)  # silence between bursts (countable only)
    background: bool = False  # may fill a whole clip quietly behind the foreground


EVENT_CLASSES: Registry[EventClass] = Registry("synthetic event class")


def event_class(name: str, kind: str, seconds, gap_seconds=(0.0, 0.0), background: bool = False):
    def register(sound: Sound) -> Sound:
        EVENT_CLASSES.register(name)(EventClass(name, kind, sound, seconds, gap_seconds, background))
        return sound

    return register


# --- countable: discrete bursts ------------------------------------------------------------------


@event_class("dog_bark", "countable", seconds=(0.15, 0.28), gap_seconds=(0.25, 0.5))
def dog_bark(rng, sr, seconds, pitch):
    n = num_samples(seconds, sr)
    t = time_axis(n, sr)
    f0 = 480 * pitch * (1 + 0.25 * np.sin(np.pi * t / seconds))  # the bark's pitch rises then falls
    voiced = harmonic_tone(f0, n, sr, [1 / k**1.1 for k in range(1, 11)])
    rasp = band_noise(rng, n, sr, 600 * pitch, 2600 * pitch)
    return (voiced + 0.5 * rasp) * decay_envelope(n, sr, attack=0.008, tau=seconds / 2.5)


@event_class("knocking", "countable", seconds=(0.08, 0.1), gap_seconds=(0.12, 0.3))
def knocking(rng, sr, seconds, pitch):
    n = num_samples(seconds, sr)
    t = time_axis(n, sr)
    f = 230 * pitch  # a wooden door's body resonance
    body = (np.sin(2 * np.pi * f * t) + 0.5 * np.sin(2 * np.pi * 2.3 * f * t)) * np.exp(-t / 0.018)
    click = band_noise(rng, n, sr, 1000, 4000) * np.exp(-t / 0.003)
    return body + 0.4 * click


@event_class("bell", "countable", seconds=(0.8, 1.2), gap_seconds=(0.05, 0.25))
def bell(rng, sr, seconds, pitch):
    n = num_samples(seconds, sr)
    t = time_axis(n, sr)
    f = 520 * pitch
    partials = [(0.5, 0.6), (1.0, 1.0), (1.19, 0.5), (1.5, 0.4), (2.0, 0.5), (2.52, 0.3), (3.0, 0.2)]
    tone = sum(a * np.sin(2 * np.pi * r * f * t) * np.exp(-t * (1.5 + r)) for r, a in partials)
    return tone * np.minimum(t / 0.002, 1.0)


@event_class("alarm_beep", "countable", seconds=(0.12, 0.25), gap_seconds=(0.1, 0.25))
def alarm_beep(rng, sr, seconds, pitch):
    n = num_samples(seconds, sr)
    return harmonic_tone(2400 * pitch, n, sr, [1.0, 0.0, 0.3]) * ramp_envelope(n, sr, 0.005)


@event_class("car_horn", "countable", seconds=(0.3, 0.7), gap_seconds=(0.15, 0.4))
def car_horn(rng, sr, seconds, pitch):
    n = num_samples(seconds, sr)
    f1 = 400 * pitch  # two horns about a major third apart, brassy harmonics
    sawtooth = [1 / k for k in range(1, 9)]
    tone = harmonic_tone(f1, n, sr, sawtooth) + harmonic_tone(1.26 * f1, n, sr, sawtooth)
    return tone * ramp_envelope(n, sr, 0.01)


@event_class("phone_ring", "countable", seconds=(0.8, 1.2), gap_seconds=(0.5, 0.8))
def phone_ring(rng, sr, seconds, pitch):
    n = num_samples(seconds, sr)
    t = time_axis(n, sr)
    trill = (np.sin(2 * np.pi * 16 * t) > 0).astype(float)  # alternates two tones 16 times a second
    tone = trill * np.sin(2 * np.pi * 950 * pitch * t) + (1 - trill) * np.sin(2 * np.pi * 1400 * pitch * t)
    return tone * ramp_envelope(n, sr, 0.01)


# --- textures: continuous sounds -----------------------------------------------------------------


@event_class("bird_chirp", "texture", seconds=(1.2, 3.5))
def bird_chirp(rng, sr, seconds, pitch):
    top = rng.uniform(3500, 5000) * pitch

    def chirp(rng):
        m = num_samples(rng.uniform(0.04, 0.1), sr)
        t = time_axis(m, sr)
        f = top * (1 - 0.4 * t / t[-1] if m > 1 else 1)  # fast downward sweep
        return np.sin(2 * np.pi * np.cumsum(f) / sr) * np.hanning(m)

    return scatter_grains(rng, num_samples(seconds, sr), sr, rng.uniform(5, 10), chirp, regularity=0.3)


@event_class("rain", "texture", seconds=(1.5, 4.0), background=True)
def rain(rng, sr, seconds, pitch):
    n = num_samples(seconds, sr)
    hiss = band_noise(rng, n, sr, 400, 7500)
    impulses = (rng.random(n) < 300 / sr) * rng.standard_normal(n)  # ~300 drops a second
    return hiss + 0.35 * band_filter(impulses, sr, 2000, 7000)


@event_class("wind", "texture", seconds=(1.5, 4.0), background=True)
def wind(rng, sr, seconds, pitch):
    n = num_samples(seconds, sr)
    gusts = 0.25 + slow_modulation(rng, n, sr, rng.uniform(0.8, 1.6))
    rumble = colored_noise(rng, n, sr, exponent=2.0, high=700)
    whistle = band_noise(rng, n, sr, 450 * pitch, 650 * pitch) * slow_modulation(rng, n, sr, 2.0)
    return gusts * (rumble + 0.4 * whistle)


@event_class("engine_hum", "texture", seconds=(1.5, 4.0), background=True)
def engine_hum(rng, sr, seconds, pitch):
    n = num_samples(seconds, sr)
    t = time_axis(n, sr)
    f0 = rng.uniform(32, 55) * pitch * (1 + 0.02 * np.sin(2 * np.pi * 0.5 * t))
    hum = harmonic_tone(f0, n, sr, [1 / k**0.7 for k in range(1, 21)])
    firing = 1 + 0.4 * np.sin(2 * np.pi * np.cumsum(f0 / 2) / sr)
    return hum * firing + 0.3 * colored_noise(rng, n, sr, exponent=1.0, high=1200)


@event_class("siren", "texture", seconds=(2.0, 4.5))
def siren(rng, sr, seconds, pitch):
    n = num_samples(seconds, sr)
    t = time_axis(n, sr)
    period = rng.uniform(1.2, 2.2)
    freq = 950 * pitch * (1 + 0.35 * np.sin(2 * np.pi * t / period))  # the slow wail
    return harmonic_tone(freq, n, sr, [1.0, 0.4, 0.2]) * ramp_envelope(n, sr, 0.05)


@event_class("footsteps", "texture", seconds=(1.5, 4.0))
def footsteps(rng, sr, seconds, pitch):
    def step(rng):
        m = num_samples(0.09, sr)
        thud = band_noise(rng, m, sr, 60, 1200 * pitch) * decay_envelope(m, sr, 0.003, 0.02)
        return thud * rng.uniform(0.7, 1.0)

    return scatter_grains(rng, num_samples(seconds, sr), sr, rng.uniform(1.6, 2.4), step, regularity=0.9)


@event_class("flowing_water", "texture", seconds=(1.5, 4.0), background=True)
def flowing_water(rng, sr, seconds, pitch):
    n = num_samples(seconds, sr)
    burble = band_noise(rng, n, sr, 200, 4000) * (0.3 + slow_modulation(rng, n, sr, 25))

    def bubble(rng):
        m = num_samples(0.03, sr)
        t = time_axis(m, sr)
        f = rng.uniform(500, 1300) * pitch * (1 + 2 * t / 0.03)  # bubbles ring upward
        return np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / 0.008)

    return burble + 2 * scatter_grains(rng, n, sr, 40, bubble)


@event_class("clapping", "texture", seconds=(1.5, 3.5))
def clapping(rng, sr, seconds, pitch):
    def clap(rng):
        m = num_samples(0.04, sr)
        return band_noise(rng, m, sr, 800, 3500) * decay_envelope(m, sr, 0.001, 0.007)

    return scatter_grains(rng, num_samples(seconds, sr), sr, rng.uniform(3, 5), clap, regularity=0.8)


VOWEL_FORMANTS = [(730, 1090), (270, 2290), (530, 1840), (300, 870), (640, 1190), (400, 2000)]


@event_class("speech_babble", "texture", seconds=(1.5, 4.0), background=True)
def speech_babble(rng, sr, seconds, pitch):
    n = num_samples(seconds, sr)
    out = np.zeros(n)
    for _voice in range(2):  # two overlapping talkers
        f0 = rng.uniform(100, 220) * pitch
        ks = np.arange(1, int(3500 / f0) + 1)[:, None]  # (K, 1) harmonics of the voice
        t0 = rng.uniform(0, 0.2)
        while t0 < seconds:
            m = num_samples(rng.uniform(0.12, 0.25), sr)
            t = time_axis(m, sr)
            f1, f2 = VOWEL_FORMANTS[rng.integers(len(VOWEL_FORMANTS))]
            freqs = ks[:, 0] * f0
            gains = 1 / (1 + ((freqs - f1) / 100) ** 2) + 0.7 / (1 + ((freqs - f2) / 120) ** 2)
            contour = 1 + 0.08 * np.sin(np.pi * t / t[-1])  # pitch lifts within a syllable
            phase = (2 * np.pi * f0 * np.cumsum(contour) / sr).astype(
                np.float32
            )  # short: float32 is exact enough
            syllable = (gains[:, None] * np.sin(ks.astype(np.float32) * phase[None, :])).sum(0)
            add_at(out, syllable * np.hanning(m), int(t0 * sr))
            t0 += m / sr + rng.uniform(0.03, 0.15)
    return out


@event_class("thunder", "texture", seconds=(2.5, 4.5))
def thunder(rng, sr, seconds, pitch):
    n = num_samples(seconds, sr)
    crack = band_noise(rng, n, sr, 200, 6000) * decay_envelope(n, sr, 0.005, 0.08)
    rumble = colored_noise(rng, n, sr, exponent=2.0, high=250 * pitch)
    swell = decay_envelope(n, sr, attack=0.2, tau=seconds / 2.5) * (0.5 + slow_modulation(rng, n, sr, 4))
    return 0.7 * crack + 2 * rumble * swell


@event_class("typing", "texture", seconds=(1.5, 4.0), background=True)
def typing(rng, sr, seconds, pitch):
    def keystroke(rng):
        m = num_samples(0.015, sr)
        t = time_axis(m, sr)
        click = band_noise(rng, m, sr, 2000 * pitch, 7000) * np.exp(-t / 0.002)
        return click * rng.uniform(0.5, 1.0)

    return scatter_grains(rng, num_samples(seconds, sr), sr, rng.uniform(6, 10), keystroke)


@event_class("crickets", "texture", seconds=(1.5, 4.0), background=True)
def crickets(rng, sr, seconds, pitch):
    carrier = rng.uniform(4200, 5200) * pitch

    def chirp(rng):  # 3-4 pulses 30 ms apart
        pulses = int(rng.integers(3, 5))
        m = num_samples(0.03 * pulses, sr)
        t = time_axis(m, sr)
        gate = (np.sin(2 * np.pi * t / 0.03) > 0.3).astype(float)
        return gate * np.sin(2 * np.pi * carrier * t)

    return scatter_grains(rng, num_samples(seconds, sr), sr, rng.uniform(2, 3.5), chirp, regularity=0.9)
