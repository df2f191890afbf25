"""DistillCaps: retrieval-distilled audio captioning."""

__version__ = "0.1.0"
