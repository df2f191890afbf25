"""Ray Data's stats actor, started by the training driver, outlives the placement groups of fits."""

from __future__ import annotations

import pytest
import ray
from ray.data._internal.stats import STATS_ACTOR_NAME, STATS_ACTOR_NAMESPACE
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from distillcaps.ray_runtime import ensure_ray
from distillcaps.training.prepare import start_data_stats_actor


@pytest.fixture(scope="module")
def fresh_ray():
    if ray.is_initialized():  # an earlier module's instance (serving's lasts the session) has the actor
        ray.shutdown()
    ensure_ray(num_cpus=2)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


@ray.remote(num_cpus=0.5)
def one_pass() -> int:
    """A Ray Data pass, as a Train worker runs one from inside its placement group."""
    return len(ray.data.range(8).map_batches(lambda batch: batch).take_all())


def in_a_placement_group(remote_function):
    group = placement_group([{"CPU": 0.5}])
    ray.get(group.ready())
    strategy = PlacementGroupSchedulingStrategy(group, placement_group_capture_child_tasks=True)
    return group, remote_function.options(scheduling_strategy=strategy)


@ray.remote(num_cpus=0.5)
def start_inside() -> None:
    start_data_stats_actor()


def test_the_drivers_stats_actor_outlives_a_pass_inside_a_removed_placement_group(fresh_ray) -> None:
    # Inside a placement group (a Tune trial's process) it makes nothing: the actor would die with it.
    group, remote = in_a_placement_group(start_inside)
    ray.get(remote.remote())
    remove_placement_group(group)
    with pytest.raises(ValueError):
        ray.get_actor(STATS_ACTOR_NAME, namespace=STATS_ACTOR_NAMESPACE)

    start_data_stats_actor()  # the driver
    started = ray.get_actor(STATS_ACTOR_NAME, namespace=STATS_ACTOR_NAMESPACE)
    group, remote = in_a_placement_group(one_pass)
    assert ray.get(remote.remote()) == 8
    remove_placement_group(group)

    ray.get(started.__ray_ready__.remote(), timeout=30)  # raises ActorDiedError if it went with the group
    after = ray.get_actor(STATS_ACTOR_NAME, namespace=STATS_ACTOR_NAMESPACE)
    assert after._actor_id == started._actor_id
