"""Mean ± standard deviation of each metric over seeds (or repeats).

The std is the sample standard deviation (ddof=1), the usual "± std over N seeds" in papers; with a
single seed it is undefined and reported as None, never as 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass
class Summary:
    mean: dict[str, float] = field(default_factory=dict)
    std: dict[str, float | None] = field(default_factory=dict)
    n: dict[str, int] = field(default_factory=dict)  # seeds that produced each metric


def summarize(per_seed: Mapping[object, Mapping[str, float]]) -> Summary:
    """per_seed: seed -> {metric: value}. A metric missing for a seed (failed or unavailable) is skipped."""
    names: list[str] = []
    for metrics in per_seed.values():
        names.extend(k for k in metrics if k not in names)
    summary = Summary()
    for name in names:
        values = [float(m[name]) for m in per_seed.values() if name in m and m[name] is not None]
        values = [v for v in values if math.isfinite(v)]
        if not values:
            continue
        mean = sum(values) / len(values)
        summary.mean[name] = mean
        summary.n[name] = len(values)
        if len(values) < 2:
            summary.std[name] = None
        else:
            summary.std[name] = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return summary


def format_mean_std(mean: float | None, std: float | None, scale: float = 100.0, digits: int = 1) -> str:
    """'41.7 ± 0.3' (scaled to percent like the paper), '41.7' with one seed, '—' when absent."""
    if mean is None:
        return "—"
    text = f"{mean * scale:.{digits}f}"
    if std is not None:
        text += f" ± {std * scale:.{digits}f}"
    return text
