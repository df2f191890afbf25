"""Side-by-side timing: one ``Case`` per measured side, sides measured alternately, ratios per pair.

Sides are measured *alternately* (A B, B A, A B, ...) after a warm-up, so that a neighbour's burst of
load on a shared machine hits both sides rather than one, and a ratio is taken per repetition pair
before the median.

    a, b = Case("a", "clips", 40), Case("b", "clips", 40)
    measure_alternating([(a, run_a), (b, run_b)], repeats=5, warmup=1)
    paired_ratio("a / b (clips/s)", a, b)["median"]
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Case:
    """One measured side: seconds per repetition and how much work (items) one repetition does."""

    name: str
    unit: str  # what items are: "queries", "clips", "captions", "steps", "samples", "requests"
    items_per_repetition: float
    params: dict[str, Any] = field(default_factory=dict)
    repetitions_s: list[float] = field(default_factory=list)  # wall seconds
    # This process's CPU seconds per repetition: on a shared machine the wall clock includes time
    # spent waiting for a core, CPU time does not (it misses work done in other processes: Ray).
    cpu_repetitions_s: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. recall, latency percentiles

    @property
    def median_s(self) -> float:
        return statistics.median(self.repetitions_s)

    @property
    def rates(self) -> list[float]:
        return [self.items_per_repetition / s if s > 0 else float("inf") for s in self.repetitions_s]

    @property
    def median_rate(self) -> float:
        return statistics.median(self.rates)

    @property
    def median_rate_per_cpu_s(self) -> float | None:
        if not self.cpu_repetitions_s:
            return None
        return statistics.median(self.items_per_repetition / max(s, 1e-9) for s in self.cpu_repetitions_s)

    def record(self, wall_s: float, cpu_s: float | None = None) -> None:
        self.repetitions_s.append(wall_s)
        if cpu_s is not None:
            self.cpu_repetitions_s.append(cpu_s)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "items_per_repetition": self.items_per_repetition,
            "params": self.params,
            "repetitions_s": self.repetitions_s,
            "rates_per_s": self.rates,
            "median_s": self.median_s,
            "median_rate_per_s": self.median_rate,
            "cpu_repetitions_s": self.cpu_repetitions_s,
            "median_rate_per_cpu_s": self.median_rate_per_cpu_s,
            **({"extra": self.extra} if self.extra else {}),
        }


def time_call(fn: Callable[[], Any], sync: Callable[[], None] | None = None) -> tuple[float, float]:
    """(wall, process CPU) seconds of one call; ``sync`` waits for a GPU before the clock stops."""
    cpu_start = time.process_time()
    start = time.perf_counter()
    fn()
    if sync is not None:
        sync()
    return time.perf_counter() - start, time.process_time() - cpu_start


def measure_alternating(
    sides: Sequence[tuple[Case, Callable[[], Any]]],
    repeats: int,
    warmup: int,
    sync: Callable[[], None] | None = None,
) -> None:
    """Warm every side up, then time them in turn, reversing the order on odd repetitions.

    Appends one duration per repetition to each Case, so repetition i of every side was measured
    within the same short window of the machine's (noisy) life.
    """
    for _ in range(warmup):
        for _case, fn in sides:
            fn()
    for rep in range(repeats):
        order = list(sides) if rep % 2 == 0 else list(reversed(sides))
        for case, fn in order:
            case.record(*time_call(fn, sync))


def paired_ratio(name: str, faster: Case, slower: Case, *, what: str = "rate") -> dict[str, Any]:
    """Ratio ``faster.rate / slower.rate`` per repetition pair (measured side by side), then its median."""
    if len(faster.repetitions_s) != len(slower.repetitions_s):
        raise ValueError(f"ratio {name}: {faster.name} and {slower.name} have different repetition counts")
    scale = faster.items_per_repetition / slower.items_per_repetition
    per_rep = [s_slow / s_fast * scale for s_fast, s_slow in zip(faster.repetitions_s, slower.repetitions_s)]
    ratio = {
        "name": name,
        "numerator": faster.name,
        "denominator": slower.name,
        "what": what,
        "per_repetition": per_rep,
        "median": statistics.median(per_rep),
    }
    if faster.cpu_repetitions_s and len(faster.cpu_repetitions_s) == len(slower.cpu_repetitions_s):
        # The same ratio on this process's CPU seconds: less sensitive to neighbours' load.
        per_rep_cpu = [
            s_slow / max(s_fast, 1e-9) * scale
            for s_fast, s_slow in zip(faster.cpu_repetitions_s, slower.cpu_repetitions_s)
        ]
        ratio["per_repetition_cpu"] = per_rep_cpu
        ratio["median_cpu"] = statistics.median(per_rep_cpu)
    return ratio


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank-with-interpolation percentile (q in [0, 100]) without numpy."""
    if not values:
        raise ValueError("percentile of an empty list")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
