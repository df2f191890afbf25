"""CLAP backends behind one interface: ``embed_audio`` / ``embed_text``, L2-normalised.

Registry ``CLAP_ENCODERS``: tiny-clap (the offline default, trained by ``distillcaps.standins``),
hf-clap (transformers ClapModel), laion-clap (the laion_clap package; imported only when chosen).
"""

from distillcaps.retrieval.clap import hf, laion, tiny  # noqa: F401 - registers the backends
from distillcaps.retrieval.clap.base import CLAP_ENCODERS, ClapEncoder, build_clap

__all__ = ["CLAP_ENCODERS", "ClapEncoder", "build_clap"]
