"""Evaluation sharded over Ray workers, with the same per-episode results as a local run of the same shards.

Why shards: `run_episodes` gives bit-identical results for the same episodes, config and ``num_envs``, but an
episode's numbers depend (in the last float bits, sometimes more through a closed loop) on which episodes share
its MazeSim and the policy's batch: a learned policy's batched forward takes another path when another slot
starts an episode. So the list is cut into consecutive shards of ``shard_size`` episodes, and each shard is one
`run_episodes(policy_factory, shard, config, num_envs)`: on a Ray worker (`run_episodes_ray`, one task per shard,
results reassembled in episode order) or one after another in this process (`run_sharded`). The two are equal
field by field, and neither depends on how many Ray workers there are. ``robonav eval --ray ADDRESS`` equals
``robonav eval --shard-size K`` for the same K (default 4 x --envs), not the unsharded ``robonav eval``.

Only `run_episodes_ray` imports ray (inside the function).
"""

from __future__ import annotations

from collections.abc import Callable

from robonav.errors import UserError
from robonav.eval.metrics import EpisodeResult
from robonav.eval.runner import PolicyFactory, run_episodes
from robonav.sim.config import SimConfig
from robonav.sim.episodes import EpisodeSpec

__all__ = ["ShardError", "run_episodes_ray", "run_sharded", "shard_episodes"]

ProgressFn = Callable[[int, int], None]


class ShardError(UserError, ValueError):
    """A shard size or worker count that cannot cut an episode list."""


def shard_episodes(episodes: list[EpisodeSpec], shard_size: int) -> list[list[EpisodeSpec]]:
    """Consecutive shards of ``shard_size`` episodes (the last may be shorter), in list order.

    >>> [len(s) for s in shard_episodes(list(range(10)), 4)]
    [4, 4, 2]
    """
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ShardError(f"shard size must be an integer >= 1, got {shard_size!r}: pass e.g. --shard-size 32")
    return [episodes[i:i + shard_size] for i in range(0, len(episodes), shard_size)]


def run_sharded(policy_factory: PolicyFactory, episodes: list[EpisodeSpec], config: SimConfig | None,
                num_envs: int, shard_size: int, progress: ProgressFn | None = None) -> list[EpisodeResult]:
    """The shards of `shard_episodes` run one after another here: what `run_episodes_ray` computes."""
    results: list[EpisodeResult] = []
    total = len(episodes)
    for shard in shard_episodes(episodes, shard_size):
        done = len(results)
        part = None if progress is None else (lambda k, _n, done=done: progress(done + k, total))
        results += run_episodes(policy_factory, shard, config, num_envs, part)
    return results


def _run_shard(policy_factory: PolicyFactory, shard: list[EpisodeSpec], config: SimConfig | None,
               num_envs: int) -> list[EpisodeResult]:
    return run_episodes(policy_factory, shard, config, num_envs)


def run_episodes_ray(policy_factory: PolicyFactory, episodes: list[EpisodeSpec], config: SimConfig | None,
                     num_envs: int, shard_size: int, workers: int | None = None,
                     progress: ProgressFn | None = None, address: str | None = None) -> list[EpisodeResult]:
    """`run_sharded` with one Ray task (1 CPU) per shard, at most ``workers`` at a time (None: the cluster's CPUs);
    results in episode order. ``address``: ``ray.init``'s ('auto', 'local', HOST:6379, ray://HOST:10001) when Ray
    is not initialised yet (shut down again at the end); None: use the initialised Ray. The policy factory is put
    in the object store once and must pickle (a checkpoint's model, a policy class; not an open ONNX session)."""
    import ray

    if workers is not None and workers < 1:
        raise ShardError(f"Ray eval workers must be >= 1, got {workers}: pass e.g. --ray-workers 4")
    owns_ray = address is not None and not ray.is_initialized()
    if owns_ray:
        if address == "local":  # a private instance on this machine
            ray.init(address="local", include_dashboard=False)
        else:
            ray.init(address=address)
    try:
        return _run_on_ray(ray, policy_factory, episodes, config, num_envs, shard_size, workers, progress)
    finally:
        if owns_ray:
            ray.shutdown()


def _run_on_ray(ray, policy_factory: PolicyFactory, episodes: list[EpisodeSpec], config: SimConfig | None,
                num_envs: int, shard_size: int, workers: int | None,
                progress: ProgressFn | None) -> list[EpisodeResult]:
    """The shards as Ray tasks, at most ``workers`` in flight, reassembled in shard order."""
    shards = shard_episodes(episodes, shard_size)
    if not shards:
        return []
    limit = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    task = ray.remote(num_cpus=1, max_retries=3)(_run_shard)  # a lost node's shard runs again (same result)
    factory_ref = ray.put(policy_factory)
    results: list[list[EpisodeResult] | None] = [None] * len(shards)
    pending: dict = {}
    done_episodes, next_shard = 0, 0
    while next_shard < len(shards) or pending:
        while next_shard < len(shards) and len(pending) < limit:
            pending[task.remote(factory_ref, shards[next_shard], config, num_envs)] = next_shard
            next_shard += 1
        ready, _ = ray.wait(list(pending), num_returns=1)
        k = pending.pop(ready[0])
        results[k] = ray.get(ready[0])
        done_episodes += len(shards[k])
        if progress is not None:
            progress(done_episodes, len(episodes))
    return [r for part in results if part is not None for r in part]
