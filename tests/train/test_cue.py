"""The recurrent learner end to end on a task only memory solves (the cue is shown 31 steps before it counts).

The task, CueCorridorEnv: a robot drives down a corridor; at step 0 the observation shows which arm of the
T-junction is correct (+1 right, -1 left, in the goal-bearing slot of the observation), then the cue disappears;
``length - 1`` steps later the junction flag lights up and the sign of the turn command picks an arm: +1 reward
for the right arm, -1 for the wrong one, and the episode ends. A memoryless policy cannot beat 50 %. Non-physics
and vectorised, so the test trains on it in seconds; it follows MazeVectorEnv's conventions (normalised actions,
SAME_STEP autoreset).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, VectorEnv

from robonav.policy.actor_critic import PolicyConfig
from robonav.sim.config import SimConfig
from robonav.train.config import PPOTrainConfig
from robonav.train.ppo import PPOConfig
from robonav.train.trainer import Trainer


class CueCorridorEnv(VectorEnv):
    """``num_envs`` corridors in lockstep-free numpy; observation size ``obs_dim`` like a real policy's."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}  # noqa: RUF012

    def __init__(self, num_envs: int = 32, length: int = 32, obs_dim: int = 16, seed: int | None = None) -> None:
        if length < 2 or obs_dim < 3:
            raise ValueError(f"CueCorridorEnv needs length >= 2 and obs_dim >= 3, got {length}, {obs_dim}")
        self.num_envs, self.length, self.obs_dim = num_envs, length, obs_dim
        self.single_observation_space = gym.spaces.Box(-1.0, 1.0, (obs_dim,), np.float32)
        self.single_action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.rng = np.random.default_rng(seed)
        self.t = np.zeros(num_envs, dtype=np.int64)
        self.cue = np.ones(num_envs)

    def _obs(self) -> np.ndarray:
        obs = np.zeros((self.num_envs, self.obs_dim), np.float32)
        obs[:, 0] = np.where(self.t == 0, self.cue, 0.0)  # the cue, shown once
        obs[:, 1] = self.t == self.length - 1  # the junction
        obs[:, 2] = 1.0  # a constant input (the corridor itself)
        return obs

    def _new(self, envs: np.ndarray) -> None:
        self.t[envs] = 0
        self.cue[envs] = self.rng.choice([-1.0, 1.0], size=len(envs))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self._new(np.arange(self.num_envs))
        return self._obs(), {}

    def step(self, actions):
        turn = np.sign(np.asarray(actions, dtype=np.float64)[:, 1])
        at_junction = self.t == self.length - 1
        correct = at_junction & (turn == self.cue)
        reward = np.where(at_junction, np.where(correct, 1.0, -1.0), 0.0).astype(np.float32)
        self.t += 1
        terminated = at_junction.copy()
        truncated = np.zeros(self.num_envs, dtype=bool)
        infos: dict[str, Any] = {}
        if terminated.any():
            n = self.num_envs
            infos["final_obs"], infos["_final_obs"] = self._obs(), terminated.copy()
            infos["final_info"] = {"is_success": correct, "episode_steps": np.full(n, self.length),
                                   "path_length": np.ones(n), "shortest_path_length": np.ones(n),
                                   "_is_success": terminated.copy()}
            infos["_final_info"] = terminated.copy()
            self._new(np.flatnonzero(terminated))
        return self._obs(), reward, terminated, truncated, infos


def _train(core: str, tmp_path, updates: int = 150) -> float:
    cfg = PPOTrainConfig(run=f"cue-{core}", out=str(tmp_path), total_steps=32 * 32 * updates, workers=0, seed=0,
                      checkpoint_every=10**9, sim=SimConfig(observation="plain"),
                      policy=PolicyConfig(encoder=(32,), hidden=32, core=core, init_log_std=0.0),
                      ppo=PPOConfig(num_envs=32, steps=32, seq_len=32, lr=1e-3, lr_final=1e-3, ent_coef=0.0,
                                    minibatches=2))
    trainer = Trainer(cfg, progress=False, envs=CueCorridorEnv(32, length=32, obs_dim=16, seed=0))
    out = trainer.train()
    trainer.close()
    return out["success_rate"]


@pytest.mark.slow
def test_lstm_solves_the_cue_task_and_the_memoryless_policy_cannot(tmp_path):
    lstm = _train("lstm", tmp_path)
    mlp = _train("mlp", tmp_path)
    assert lstm >= 0.95, f"LSTM success {lstm:.3f} over the last 200 episodes"
    assert 0.35 <= mlp <= 0.65, f"memoryless success {mlp:.3f} should stay near chance"
