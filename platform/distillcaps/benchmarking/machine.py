"""What a figure was measured on: the machine, its load, the package versions and the commit."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULT_VERSIONS = ("torch", "numpy", "faiss-cpu", "faiss-gpu", "torchaudio", "soundfile", "transformers")


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """Cores, CPU model, GPU (if any) and the load at the time of the run (the machine is shared)."""
    info: dict[str, Any] = {
        "hostname_hash": hash(platform.node()) & 0xFFFF,  # tells runs apart without naming the host
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(),
        "memory_gb": _memory_gb(),
        "load_average_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "device": device,
        "gpu": None,
    }
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = {
                "name": torch.cuda.get_device_name(0),
                "count": torch.cuda.device_count(),
                "memory_gb": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
                "cuda": torch.version.cuda,
            }
    except ImportError:
        pass
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def package_versions(names: Sequence[str] = DEFAULT_VERSIONS) -> dict[str, str]:
    """Installed versions of the packages that matter to a figure (absent ones are left out), and
    the git commit of the checkout this package runs from."""
    versions = {}
    for name in (*names, "distillcaps"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    versions["git_commit"] = git_commit()
    return versions


def git_commit() -> str:
    """HEAD's commit (12 hex digits) of the git checkout holding this package; "unknown" outside one."""
    checkout = next((p for p in Path(__file__).resolve().parents if (p / ".git").is_dir()), None)
    if checkout is None:
        return "unknown"
    try:
        ref = (checkout / ".git" / "HEAD").read_text().strip()
        if ref.startswith("ref: "):
            return (checkout / ".git" / ref[5:]).read_text().strip()[:12]
        return ref[:12]
    except OSError:
        return "unknown"


def load_note(machine: dict[str, Any]) -> str:
    """What the load average at the end of the run says about how far the absolute times can be trusted.

    A busy machine stretches wall times of both sides alike (they alternate), so the ratios hold;
    the absolute figures do not. "Busy" means more runnable processes than cores, the benchmark's own
    included (a 1-thread benchmark alone reads about 1).
    """
    load, cores = machine.get("load_average_1_5_15"), machine.get("cpu_affinity") or machine.get("cpu_count")
    if not load or not cores:
        return "Load unknown: treat the absolute figures as provisional; the side-by-side ratios hold."
    state = "busy" if load[0] > cores else "not busy"
    return (
        f"1-min load average {load[0]:.2f} on {cores} cores at the end of the run ({state}). "
        "Ratios were measured side by side (alternating) and are the more trustworthy numbers"
        + ("; treat the absolute figures as provisional." if state == "busy" else ".")
    )
