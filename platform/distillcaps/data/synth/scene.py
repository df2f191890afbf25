"""Scene composition: which events a clip holds, when, how loud, and how they relate.

A scene has 1-2 foreground events and optionally one background texture under the whole clip:
- ``single``: one foreground event;
- ``sequence``: two foreground events that do NOT overlap (the first ends >= MIN_GAP before the
  second starts), so "followed by" is audible;
- ``overlap``: a foreground texture with a second event nested inside it, so "while" is audible.
Countable events record their burst count and burst times; loudness is faint/normal/loud as an
absolute level (the renderer never re-normalises a clip, so "faint" stays faint).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

from distillcaps.data.synth.domains import Domain
from distillcaps.data.synth.events import EVENT_CLASSES, EventClass

MARGIN = 0.1  # seconds kept free at both clip edges
MIN_GAP = 0.5  # silence between the events of a sequence (longer than the indoor reverb tail matters)
Loudness = Literal["faint", "normal", "loud"]


@dataclass
class SceneEvent:
    label: str
    role: Literal["foreground", "background"]
    onset: float  # seconds
    offset: float
    loudness: Loudness = "normal"
    count: int | None = None  # bursts, for countable classes
    bursts: list[tuple[float, float]] = field(default_factory=list)  # (onset, offset) per burst
    pitch: float = 1.0


@dataclass
class Scene:
    relation: Literal["single", "sequence", "overlap"]
    foreground: list[SceneEvent]  # in caption order: sequence = time order
    background: SceneEvent | None
    domain: str
    clip_seconds: float

    @property
    def events(self) -> list[SceneEvent]:
        return self.foreground + ([self.background] if self.background else [])

    def to_json(self) -> dict:
        return {
            "relation": self.relation,
            "domain": self.domain,
            "clip_seconds": self.clip_seconds,
            "events": [{**asdict(e), "bursts": [list(b) for b in e.bursts]} for e in self.events],
        }


def compose_scene(rng: np.random.Generator, domain: Domain, clip_seconds: float) -> Scene:
    structure = rng.choice(["single", "sequence", "overlap"], p=[0.4, 0.35, 0.25])
    with_background = rng.random() < 0.35
    background = None
    if with_background:
        label = pick_classes(rng, domain, 1, lambda c: c.background)[0]
        background = SceneEvent(label, "background", 0.0, clip_seconds, pitch=rng.uniform(0.85, 1.15))
    taken = {background.label} if background else set()
    if structure == "single":
        (label,) = pick_classes(rng, domain, 1, exclude=taken)
        foreground = [place_event(rng, label, MARGIN, clip_seconds - MARGIN, min_fill=0.5)]
    elif structure == "sequence":
        first, second = pick_classes(rng, domain, 2, exclude=taken)
        split = rng.uniform(0.4, 0.6) * clip_seconds
        foreground = [
            place_event(rng, first, MARGIN, split - MIN_GAP / 2, min_fill=0.6),
            place_event(rng, second, split + MIN_GAP / 2, clip_seconds - MARGIN, min_fill=0.6),
        ]
    else:
        (outer,) = pick_classes(rng, domain, 1, lambda c: c.kind == "texture", exclude=taken)
        (inner,) = pick_classes(rng, domain, 1, exclude=taken | {outer})
        host = place_event(rng, outer, MARGIN, clip_seconds - MARGIN, min_seconds=2.8)
        nested = place_event(rng, inner, host.onset + 0.4, host.offset - 0.3, min_fill=0.5)
        foreground = [host, nested] if rng.random() < 0.5 else [nested, host]
    assign_loudness(rng, foreground, overlapping=structure == "overlap")
    return Scene(str(structure), foreground, background, domain.name, clip_seconds)


def pick_classes(rng, domain: Domain, k: int, accept=lambda c: True, exclude=frozenset()) -> list[str]:
    """k distinct labels drawn by the domain's class weights."""
    names = [n for n in EVENT_CLASSES.names() if n not in exclude and accept(EVENT_CLASSES.get(n))]
    weights = np.array([domain.class_weights[n] for n in names], dtype=float)
    return [str(x) for x in rng.choice(names, size=k, replace=False, p=weights / weights.sum())]


def place_event(
    rng, label: str, start: float, end: float, min_fill: float = 0.3, min_seconds: float = 0.0
) -> SceneEvent:
    """Put one event inside the window [start, end] seconds."""
    cls = EVENT_CLASSES.get(label)
    pitch = float(rng.uniform(0.8, 1.25))
    window = end - start
    if cls.kind == "texture":
        low = max(min(cls.seconds[0], window), min_seconds, min_fill * window)
        length = float(rng.uniform(min(low, window), min(cls.seconds[1], window)))
        onset = start + float(rng.uniform(0, window - length))
        return SceneEvent(label, "foreground", onset, onset + length, pitch=pitch)
    bursts = layout_bursts(rng, cls, window)
    span = bursts[-1][1]
    onset = start + float(rng.uniform(0, window - span))
    shifted = [(onset + a, onset + b) for a, b in bursts]
    return SceneEvent(
        label, "foreground", onset, shifted[-1][1], count=len(bursts), bursts=shifted, pitch=pitch
    )


def layout_bursts(rng, cls: EventClass, window: float) -> list[tuple[float, float]]:
    """Burst times from 0 for 1, 2 or 3-5 bursts, dropping bursts until they fit the window."""
    count = int(rng.choice([1, 2, int(rng.integers(3, 6))], p=[0.3, 0.3, 0.4]))
    length = float(rng.uniform(*cls.seconds))
    gap = float(rng.uniform(*cls.gap_seconds))
    count = max(1, min(count, int((window + gap) // (length + gap))))
    return [(i * (length + gap), i * (length + gap) + length) for i in range(count)]


def assign_loudness(rng, foreground: list[SceneEvent], overlapping: bool) -> None:
    """faint/loud now and then; never faint under another foreground sound, where it would be masked."""
    for event in foreground:
        choices, p = (
            (["normal", "loud"], [0.8, 0.2])
            if overlapping
            else (["faint", "normal", "loud"], [0.2, 0.6, 0.2])
        )
        event.loudness = str(rng.choice(choices, p=p))
    if sum(e.loudness == "loud" for e in foreground) > 1:
        foreground[-1].loudness = "normal"
