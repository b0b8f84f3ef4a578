"""Evaluation sharded over Ray tasks gives, field by field, the results of the same shards run here."""

from __future__ import annotations

import pytest

ray = pytest.importorskip("ray", reason="ray is not installed: pip install robonav[dist]")

from robonav.eval.distributed import ShardError, run_episodes_ray, run_sharded, shard_episodes  # noqa: E402
from robonav.eval.episodes import make_episodes  # noqa: E402
from robonav.eval.policies import resolve_policy  # noqa: E402
from robonav.eval.runner import run_episodes  # noqa: E402


def test_shards_are_consecutive_and_cover_the_list():
    eps = list(range(10))
    assert shard_episodes(eps, 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]  # type: ignore[arg-type]
    assert shard_episodes([], 4) == []
    with pytest.raises(ShardError, match="shard size must be an integer >= 1, got 0"):
        shard_episodes(eps, 0)  # type: ignore[arg-type]


def test_ray_eval_equals_the_local_sharded_run(ray_cluster):
    """The shipped LSTM policy (whose per-episode numbers do depend on batch company) on 5 episodes in shards
    of 2 with 2 envs: Ray (2 tasks at a time, out-of-order completion possible) == here, every field."""
    resolved = resolve_policy("default")
    factory, config = resolved.factory, resolved.sim_config
    episodes = make_episodes("val-3x3", 5, seed=7)
    seen: list[tuple[int, int]] = []
    remote = run_episodes_ray(factory, episodes, config, num_envs=2, shard_size=2, workers=2,
                              progress=lambda done, total: seen.append((done, total)))
    local = run_sharded(factory, episodes, config, num_envs=2, shard_size=2)
    assert [r.seed for r in remote] == [e.seed for e in episodes]  # episode order
    for k, (a, b) in enumerate(zip(remote, local, strict=True)):
        assert a == b, f"episode {k}: Ray {a} != local {b}"
    assert len(seen) == 3 and seen[-1] == (5, 5)  # one report per finished shard, in completion order
    # one shard is the plain local run
    assert run_sharded(factory, episodes[:2], config, 2, 2) == run_episodes(factory, episodes[:2], config, 2)
