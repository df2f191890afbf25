"""Dataset readers; importing this package registers each format in ``DATASET_READERS``."""

from distillcaps.data.readers import audiocaps, clotho, jsonl

__all__ = ["audiocaps", "clotho", "jsonl"]
