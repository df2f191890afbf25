"""Can the Ray cluster hold ``parallel`` trainings at once? Checked before any starts.

Each training asks Ray for ``num_workers × cpus_per_worker`` CPUs (and GPUs with ``use_gpu``) for
as long as it runs, and its Ray Data stages for ``data_stage_cpus`` more while an epoch streams. If
the trainings take every CPU, no data stage can be scheduled and they all wait forever, so a plan
that cannot fit is refused up front with the keys to change.
"""

from __future__ import annotations

from distillcaps.config import Config


def resources_per_training(cfg: Config) -> dict[str, float]:
    """Ray resources one training holds while it streams data: {"CPU": ..., "GPU": ...}."""
    workers = cfg.train.num_workers
    return {
        "CPU": workers * cfg.train.cpus_per_worker + cfg.train.data_stage_cpus,
        "GPU": float(workers) if cfg.train.use_gpu else 0.0,
    }


def check_parallel_trainings(cfg: Config, parallel: int, cluster: dict[str, float]) -> None:
    """Raise ValueError naming what to change when ``parallel`` trainings exceed ``cluster``
    (``ray.cluster_resources()``)."""
    need = resources_per_training(cfg)
    for name, amount in need.items():
        total = parallel * amount
        have = float(cluster.get(name, 0.0))
        if total > have + 1e-9:
            raise ValueError(
                f"--parallel {parallel} needs {total:g} {name}s ({parallel} × {amount:g}: "
                f"train.num_workers={cfg.train.num_workers}, train.cpus_per_worker="
                f"{cfg.train.cpus_per_worker:g}, train.data_stage_cpus={cfg.train.data_stage_cpus:g}, "
                f"train.use_gpu={cfg.train.use_gpu}) but the Ray cluster has {have:g}: lower --parallel "
                f"or the per-training resources (e.g. train.cpus_per_worker)"
            )


def prepare_parallel_trainings(cfg: Config, parallel: int) -> None:
    """Start (or join) Ray in this process before the jobs' threads do, then check that they fit."""
    import ray

    from distillcaps.training.trainer import ensure_ray

    ensure_ray(cfg)
    check_parallel_trainings(cfg, parallel, ray.cluster_resources())
