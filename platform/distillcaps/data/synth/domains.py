"""Recording domains: which classes tend to occur and how the place sounds.

The indoor domain is the shifted one for cross-domain experiments: a different class mix (keyboards,
knocks, phones, chatter instead of dogs, birds, traffic, weather) AND different acoustics (room
reverberation and a mains-hum noise floor instead of a dry, quiet open air).
"""

from __future__ import annotations

from dataclasses import dataclass

from distillcaps.registry import Registry


@dataclass(frozen=True)
class Domain:
    name: str
    class_weights: dict[str, float]  # relative frequency of each event class in scenes
    places: tuple[str, ...]  # truthful place phrases for captions ("outside", "in a room")
    reverb_rt60: tuple[float, float] | None  # seconds; None: dry (open air)
    reverb_wet: float  # level of the reverberant part relative to the direct sound
    noise_floor_rms: tuple[float, float]  # broadband floor under everything
    mains_hum: bool  # a 50 Hz hum with harmonics, as from lights and appliances


DOMAINS: Registry[Domain] = Registry("synthetic domain")

DOMAINS.register("outdoor")(
    Domain(
        name="outdoor",
        class_weights={
            "dog_bark": 3,
            "bird_chirp": 3,
            "rain": 2,
            "wind": 2,
            "engine_hum": 2,
            "siren": 2,
            "bell": 1.5,
            "footsteps": 1.5,
            "knocking": 0.3,
            "alarm_beep": 0.5,
            "flowing_water": 2,
            "clapping": 1,
            "speech_babble": 1,
            "thunder": 1.5,
            "typing": 0.2,
            "car_horn": 2,
            "phone_ring": 0.3,
            "crickets": 2,
        },  # fmt: skip
        places=("outside", "outdoors", "in the open air", "out in the open"),
        reverb_rt60=None,
        reverb_wet=0.0,
        noise_floor_rms=(0.0015, 0.003),
        mains_hum=False,
    )
)

DOMAINS.register("indoor")(
    Domain(
        name="indoor",
        class_weights={
            "dog_bark": 0.5,
            "bird_chirp": 0.3,
            "rain": 0.7,
            "wind": 0.3,
            "engine_hum": 0.5,
            "siren": 0.3,
            "bell": 1,
            "footsteps": 2,
            "knocking": 3,
            "alarm_beep": 2.5,
            "flowing_water": 2,
            "clapping": 2,
            "speech_babble": 3,
            "thunder": 0.3,
            "typing": 3,
            "car_horn": 0.2,
            "phone_ring": 3,
            "crickets": 0.2,
        },  # fmt: skip
        places=("indoors", "inside a room", "in a room", "inside a building"),
        reverb_rt60=(0.3, 0.7),
        reverb_wet=0.5,
        noise_floor_rms=(0.003, 0.005),
        mains_hum=True,
    )
)
