"""The batched vector env: registration, SAME_STEP autoreset pinned, exact reproducibility, worker processes."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

import robonav.sim  # noqa: F401
from robonav.sim.maze import parse_maze
from robonav.sim.vector import MazeVectorEnv, ProcessVectorEnv

SMALL = parse_maze("#######\n#S....#\n#.###.#\n#....G#\n#######")


def test_make_vec_uses_the_batched_world():
    env = gym.make_vec("robonav.sim:robonav/Maze-v0", num_envs=3, vectorization_mode="vector_entry_point")
    assert isinstance(env, MazeVectorEnv)
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3, env.single_observation_space.shape[0])
    env.close()


def test_same_step_autoreset_is_pinned():
    env = MazeVectorEnv(2, maze=SMALL, seed=0)
    env.reset(seed=0)
    env.sim.limit[:] = (2, 100)  # env 0 truncates on its 2nd step, env 1 runs on
    a = np.zeros((2, 2), np.float32)
    obs1, _, term, trunc, info = env.step(a)
    assert not trunc.any() and "final_obs" not in info
    last_before = env.sim.obs.copy()
    obs2, _, term, trunc, info = env.step(a)
    assert trunc.tolist() == [True, False] and not term.any()
    assert info["_final_obs"].tolist() == [True, False]
    assert info["final_info"]["episode_steps"][0] == 2
    # The returned observation of env 0 is already the first of its next episode...
    assert env.sim.steps[0] == 0 and env.sim.steps[1] == 2
    np.testing.assert_array_equal(obs2[0], env.sim.obs[0])
    # ...and final_obs holds the observation the episode ended on (not the reset one).
    assert not np.array_equal(info["final_obs"][0], obs2[0])
    del last_before, obs1
    env.close()


def _rollout(env, seed, steps=40):
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(123)
    trace = [obs.copy()]
    for _ in range(steps):
        obs, r, te, tr, _ = env.step(rng.uniform(-1, 1, (env.num_envs, 2)).astype(np.float32))
        trace += [obs.copy(), r.copy(), te.copy(), tr.copy()]
    return trace


def test_seeding_reproduces_a_run_exactly():
    cfg = {"maze": {"width": [3, 4]}, "randomization": {"enabled": True}}
    a = MazeVectorEnv(3, config=cfg, seed=5)
    b = MazeVectorEnv(3, config=cfg, seed=99)
    ta, tb = _rollout(a, 7), _rollout(b, 7)
    tc = _rollout(b, 8)
    a.close()
    b.close()
    assert all(np.array_equal(x, y) for x, y in zip(ta, tb))
    assert not all(np.array_equal(x, y) for x, y in zip(ta, tc))


def test_process_vector_env_matches_two_batched_worlds():
    cfg = {"maze": {"width": [3, 3]}}
    proc = ProcessVectorEnv(4, workers=2, config=cfg, seed=10)
    try:
        tp = _rollout(proc, 10, steps=15)
    finally:
        proc.close()
    halves = [MazeVectorEnv(2, config=cfg) for _ in range(2)]
    t0, t1 = _rollout(halves[0], 10, 15), None
    # Worker w is seeded seed + w and gets its half of the actions.
    rng = np.random.default_rng(123)
    o0, _ = halves[0].reset(seed=10)
    o1, _ = halves[1].reset(seed=11)
    np.testing.assert_array_equal(tp[0], np.concatenate([o0, o1]))
    for k in range(15):
        act = rng.uniform(-1, 1, (4, 2)).astype(np.float32)
        r0 = halves[0].step(act[:2])
        r1 = halves[1].step(act[2:])
        np.testing.assert_array_equal(tp[1 + 4 * k], np.concatenate([r0[0], r1[0]]))
        np.testing.assert_array_equal(tp[2 + 4 * k], np.concatenate([r0[1], r1[1]]))
    del t0, t1
    for h in halves:
        h.close()


def test_a_worker_s_bad_settings_reach_the_parent_as_one_user_error():
    import pytest

    from robonav.errors import UserError

    # Movers that cannot be placed (no cell 30 m from start and goal) are refused inside the worker at reset.
    cfg = {"maze": {"width": [3, 3]}, "dynamic": {"density": 0.3, "spawn_clearance": 30.0}}
    proc = ProcessVectorEnv(2, workers=2, config=cfg, seed=1)
    try:
        with pytest.raises(UserError, match=r"too few for \d+ movers: lower sim.dynamic.density"):
            proc.reset(seed=1)
    finally:
        proc.close()
