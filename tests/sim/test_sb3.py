"""The env works with a trainer nobody here wrote: sb3-contrib's RecurrentPPO, unchanged."""

from __future__ import annotations

import pytest

sb3_contrib = pytest.importorskip("sb3_contrib")


def test_recurrent_ppo_runs_a_few_hundred_steps(tmp_path):
    import gymnasium as gym
    import torch
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)
    venv = make_vec_env(lambda: gym.make("robonav.sim:robonav/Maze-v0", maze={"width": [3, 3]}), n_envs=2,
                        seed=0)
    model = sb3_contrib.RecurrentPPO("MlpLstmPolicy", venv, n_steps=64, batch_size=64, n_epochs=1, seed=0,
                                     policy_kwargs={"lstm_hidden_size": 32, "net_arch": [32]}, device="cpu")
    model.learn(total_timesteps=384)
    assert model.num_timesteps >= 384
    path = tmp_path / "rppo.zip"
    model.save(path)
    loaded = sb3_contrib.RecurrentPPO.load(path, device="cpu")
    obs = venv.reset()
    action, state = loaded.predict(obs, deterministic=True)
    assert action.shape == (2, 2) and state is not None
    venv.close()
