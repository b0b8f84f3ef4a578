"""The Gymnasium env and the vector env with movers: Gymnasium's checker, sb3-contrib's RecurrentPPO, infos."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import robonav.sim  # noqa: F401  (registers the env)
from robonav.sim.config import DYNAMIC_DENSITY
from robonav.sim.vector import MazeVectorEnv

DYNAMIC = {"dynamic": {"density": DYNAMIC_DENSITY}}
SMALL = {"dynamic": {"density": 0.1, "spawn_clearance": 1.0}}  # about 2.5 movers in a 3x3 maze


def test_env_checker_passes_without_warnings_with_movers():
    env = gym.make("robonav.sim:robonav/Maze-v0", config=DYNAMIC).unwrapped
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env)
    _, info = env.reset(seed=3)
    assert env.sim.crowd.count[0] >= 4 and info["mover_contacts"] == 0
    env.close()


def test_the_vector_env_carries_mover_contacts_in_its_infos():
    env = MazeVectorEnv(3, config=DYNAMIC, seed=0)
    try:
        _, infos = env.reset(seed=0)
        assert infos["mover_contacts"].shape == (3,) and (env.sim.crowd.count >= 4).all()
        before = env.sim.crowd.pos.copy()
        for _ in range(5):
            _, _, _, _, infos = env.step(np.zeros((3, 2), np.float32))
        assert not np.array_equal(before, env.sim.crowd.pos)
        assert "mover_contacts" in infos
    finally:
        env.close()


def test_recurrent_ppo_runs_on_the_env_with_movers(tmp_path):
    sb3_contrib = pytest.importorskip("sb3_contrib")
    import torch
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)
    venv = make_vec_env(lambda: gym.make("robonav.sim:robonav/Maze-v0", maze={"width": [3, 3]}, config=SMALL),
                        n_envs=2, seed=0)
    model = sb3_contrib.RecurrentPPO("MlpLstmPolicy", venv, n_steps=64, batch_size=64, n_epochs=1, seed=0,
                                     policy_kwargs={"lstm_hidden_size": 32, "net_arch": [32]}, device="cpu")
    model.learn(total_timesteps=256)
    assert model.num_timesteps >= 256
    assert all(int(e.unwrapped.sim.crowd.count[0]) >= 1 for e in venv.envs)  # it really ran with movers
    venv.close()
