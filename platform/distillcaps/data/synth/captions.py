"""Five reference captions per scene, worded in varied, natural ways and always true to the scene.

Every caption mentions every event (class word), states the relation with its own words
(sequence: "followed by", "then", "before", "after"; overlap: "while", "as", "at the same time",
"simultaneously"; background: "in the background"), counts countable bursts ("once", "twice",
"several times"), and marks non-normal loudness ("faintly", "loudly"). Captions are 5-20 words.
"""

from __future__ import annotations

import numpy as np

from distillcaps.data.synth.domains import Domain
from distillcaps.data.synth.scene import Scene, SceneEvent
from distillcaps.data.synth.vocabulary import (
    BACKGROUND_NOUNS,
    COUNT_WORDS,
    LOUDNESS_ADVERBS,
    PHRASINGS,
    count_key,
)

MIN_WORDS, MAX_WORDS = 5, 20
CAPTIONS_PER_CLIP = 5

# (template, is a full clause): "{BC} in the background, and {core}" needs a clause as core.
SINGLE = [
    ("{C}", True),
    ("{G} can be heard", True),
    ("the sound of {G}", False),
    ("{G}", False),
    ("you can hear {G}", True),
]
SEQUENCE = [
    ("{C1}, followed by {G2}", True),
    ("{G1} followed by {G2}", False),
    ("{C1} and then {C2}", True),
    ("first {C1}, then {C2}", True),
    ("{C1} before {C2}", True),
    ("after {C1}, {C2}", True),
]
OVERLAP = [
    ("{C1} while {C2}", True),
    ("{G1} and {G2} at the same time", False),
    ("{C1} as {C2}", True),
    ("{C1} and {C2} simultaneously", True),
    ("while {C1}, {C2}", True),
]
WITH_BACKGROUND = [
    ("{core} with {B} in the background", False),
    ("{core}, with {B} in the background", False),
    ("{core} against a background of {B}", False),
    ("{BC} in the background, and {core}", True),
]


class CaptionWriter:
    def __init__(self, rng: np.random.Generator, domain: Domain) -> None:
        self.rng = rng
        self.domain = domain

    def captions(self, scene: Scene, k: int = CAPTIONS_PER_CLIP) -> list[str]:
        chosen: list[str] = []
        for _attempt in range(200):
            caption = self.caption(scene)
            if caption not in chosen and MIN_WORDS <= len(caption.split()) <= MAX_WORDS:
                chosen.append(caption)
            if len(chosen) == k:
                return chosen
        raise RuntimeError(f"could not word {k} distinct captions for scene {scene.to_json()}")

    def caption(self, scene: Scene) -> str:
        core, is_clause = self.core(scene)
        if scene.background is not None:
            template, needs_clause = self.pick(WITH_BACKGROUND)
            while needs_clause and not is_clause:
                template, needs_clause = self.pick(WITH_BACKGROUND)
            subject, verb, _ = self.pick(PHRASINGS[scene.background.label])
            core = template.format(core=core, B=self.pick(BACKGROUND_NOUNS[scene.background.label]),
                                   BC=f"{subject} {verb}")  # fmt: skip
        elif len(core.split()) < MIN_WORDS or self.rng.random() < 0.3:
            core = f"{core} {self.pick(self.domain.places)}"
        return core[0].upper() + core[1:] + "."

    def core(self, scene: Scene) -> tuple[str, bool]:
        """The foreground part of a caption, and whether it is a full clause."""
        if scene.relation == "single":
            (event,) = scene.foreground
            clause, gerund = self.phrase(event)
            template, is_clause = self.pick(SINGLE)
            return template.format(C=clause, G=gerund), is_clause
        (first, second) = scene.foreground
        c1, g1 = self.phrase(first)
        c2, g2 = self.phrase(second)
        template, is_clause = self.pick(SEQUENCE if scene.relation == "sequence" else OVERLAP)
        return template.format(C1=c1, G1=g1, C2=c2, G2=g2), is_clause

    def phrase(self, event: SceneEvent) -> tuple[str, str]:
        """('a dog barks loudly twice', 'a dog barking loudly twice') for one event."""
        subject, verb, ing = self.pick(PHRASINGS[event.label])
        before, after = "", ""
        if event.loudness != "normal":
            adverb = self.pick(LOUDNESS_ADVERBS[event.loudness])
            # "a horn loudly honks twice" reads better than "a horn honks loudly twice"
            if event.count is not None or self.rng.random() < 0.5:
                before = f"{adverb} "
            else:
                after = f" {adverb}"
        if event.count is not None:
            after += " " + self.pick(COUNT_WORDS[count_key(event.count)])
        return f"{subject} {before}{verb}{after}", f"{subject} {before}{ing}{after}"

    def pick(self, options):
        return options[int(self.rng.integers(len(options)))]
