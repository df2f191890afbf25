"""The embedded synthetic sound-scene benchmark (the tiny preset's default data set).

    write_synthetic_dataset("out", SynthSettings(seed=0, num_train=600, num_val=100, num_eval=150))

One idea per module: ``signals`` (DSP helpers), ``events`` (the event classes), ``domains``
(class mix + acoustics), ``scene`` (composition and relations), ``render`` (audio),
``vocabulary`` + ``captions`` (the caption writer), ``writer`` (the Clotho layout on disk).
"""

from distillcaps.data.synth.domains import DOMAINS, Domain
from distillcaps.data.synth.events import EVENT_CLASSES, EventClass
from distillcaps.data.synth.scene import Scene, SceneEvent, compose_scene
from distillcaps.data.synth.writer import SYNTH_VERSION, SynthSettings, write_synthetic_dataset

__all__ = [
    "DOMAINS",
    "EVENT_CLASSES",
    "SYNTH_VERSION",
    "Domain",
    "EventClass",
    "Scene",
    "SceneEvent",
    "SynthSettings",
    "compose_scene",
    "write_synthetic_dataset",
]
