"""The serving CLI's Ray start-up: distillcaps.ray_runtime.ensure_ray, called with ray.init's keywords.

Kept because the serving CLI, its tests and benchmarks/serve_load.py call ``init_local_ray``; the
start-up itself (explicit agent ports, retries, cleanup of failed attempts) lives in ray_runtime.
"""

from __future__ import annotations

from typing import Any


def init_local_ray(**init_kwargs: Any) -> bool:
    """Join an initialised Ray or $RAY_ADDRESS, else start a local one; ``init_kwargs`` as for
    ``ray.init`` (e.g. num_cpus, object_store_memory, runtime_env). -> True if it ran ray.init."""
    from distillcaps.ray_runtime import ensure_ray

    return ensure_ray(num_cpus=init_kwargs.pop("num_cpus", None), object_store_mb=None, **init_kwargs)
