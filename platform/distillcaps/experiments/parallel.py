"""Can the Ray cluster hold ``parallel`` trainings at once? Checked before any starts.

Each training asks Ray for ``num_workers × cpus_per_worker`` CPUs (and GPUs with ``use_gpu``) for
as long as it runs, and its Ray Data stages for ``data_stage_cpus`` more while an epoch streams. If
the trainings take every CPU, no data stage can be scheduled and they all wait forever, so a plan
that cannot fit is refused up front with the keys to change.

Used by the table scripts' ``--parallel`` and by the sweep, whose trials each hold a little more
for their own process (``--trial-cpus``) and which by default runs as many as fit
(``trainings_that_fit``).
"""

from __future__ import annotations

from distillcaps.config import Config
from distillcaps.ray_runtime import ensure_ray


def resources_per_training(cfg: Config, extra_cpus: float = 0.0) -> dict[str, float]:
    """Ray resources one training holds while it streams data: {"CPU": ..., "GPU": ...}.

    ``extra_cpus``: what its driver holds besides (a Tune trial's own process, ``--trial-cpus``)."""
    workers = cfg.train.num_workers
    return {
        "CPU": extra_cpus + workers * cfg.train.cpus_per_worker + cfg.train.data_stage_cpus,
        "GPU": float(workers) if cfg.train.use_gpu else 0.0,
    }


def trainings_that_fit(cfg: Config, cluster: dict[str, float], extra_cpus: float = 0.0) -> int:
    """How many such trainings ``cluster`` (``ray.cluster_resources()``) holds at once; at least 1
    (an autoscaling cluster adds nodes for a training that does not fit yet)."""
    need = resources_per_training(cfg, extra_cpus)
    fits = [int(float(cluster.get(name, 0.0)) / amount + 1e-9) for name, amount in need.items() if amount > 0]
    return max(1, min(fits, default=1))


def check_parallel_trainings(
    cfg: Config,
    parallel: int,
    cluster: dict[str, float],
    *,
    flag: str = "--parallel",
    extra_cpus: float = 0.0,
    extra_flag: str = "",
) -> None:
    """Raise ValueError naming what to change when ``parallel`` trainings exceed ``cluster``
    (``ray.cluster_resources()``). ``extra_cpus`` is set by ``extra_flag`` (see resources_per_training)."""
    need = resources_per_training(cfg, extra_cpus)
    for name, amount in need.items():
        total = parallel * amount
        have = float(cluster.get(name, 0.0))
        if total > have + 1e-9:
            extra = f"{extra_flag} {extra_cpus:g}, " if extra_flag else ""
            raise ValueError(
                f"{flag} {parallel} needs {total:g} {name}s ({parallel} × {amount:g}: {extra}"
                f"train.num_workers={cfg.train.num_workers}, train.cpus_per_worker="
                f"{cfg.train.cpus_per_worker:g}, train.data_stage_cpus={cfg.train.data_stage_cpus:g}, "
                f"train.use_gpu={cfg.train.use_gpu}) but the Ray cluster has {have:g}: lower {flag} "
                f"or the per-training resources (e.g. train.cpus_per_worker)"
            )


def prepare_parallel_trainings(cfg: Config, parallel: int) -> None:
    """Start (or join) Ray in this process before the jobs' threads do, then check that they fit."""
    import ray

    ensure_ray(object_store_mb=cfg.train.object_store_mb, attempts=5)
    check_parallel_trainings(cfg, parallel, ray.cluster_resources())
