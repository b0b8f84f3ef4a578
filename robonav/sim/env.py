"""``robonav/Maze-v0``: one robot in one partially observable maze, as a Gymnasium environment.

Actions are normalised, (v / v_max, omega / omega_max) in [-1, 1] as Gymnasium recommends (a deployed model
scales to SI units inside its graph); they pass through the safety layer of robonav.control before the motors,
as on the robot. Reward: geodesic progress, a success bonus, a collision penalty and a time penalty. The episode
terminates at the goal radius and truncates at the time limit of docs/design.md. Info holds the episode metrics.
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np

from robonav.settings import from_dict
from robonav.sim.config import SimConfig
from robonav.sim.core import MazeSim
from robonav.sim.maze import Maze


def as_config(config: SimConfig | dict | None) -> SimConfig:
    """SimConfig from a SimConfig, a plain mapping (launch-file `sim:` section) or None (defaults)."""
    if config is None:
        return SimConfig()
    if isinstance(config, SimConfig):
        return config
    return from_dict(SimConfig, config, "sim")


class MazeEnv(gym.Env):
    """A single maze env (a MazeSim with one slot)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}  # noqa: RUF012 (Gymnasium declares it)

    def __init__(self, maze: str | os.PathLike[str] | Maze | list[Maze] | dict | None = None,
                 config: SimConfig | dict | None = None, render_mode: str | None = None,
                 seed: int | None = None) -> None:
        self.config = as_config(config)
        self.sim = MazeSim(1, self.config, maze, seed)
        obs0 = self.sim.observers[0]
        self.observation_space = gym.spaces.Box(obs0.low, obs0.high, (obs0.dim,), np.float32)
        rc = self.config.robot
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self._scale = np.array([rc.v_max, rc.omega_max])
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.render_mode = render_mode
        self._trail: list[np.ndarray] = []

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.sim.reseed(seed)
        episode = (options or {}).get("episode")
        self.sim.reset_env(0, episode)
        self._trail = [self.sim.pose[0].copy()]
        return self.sim.obs[0].copy(), self.sim.info(0)

    def step(self, action):
        obs, reward, terminated, truncated = self.sim.step(self._scale * np.asarray(action, np.float64)[None])
        self._trail.append(self.sim.pose[0].copy())
        return obs[0].copy(), float(reward[0]), bool(terminated[0]), bool(truncated[0]), self.sim.info(0)

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        from robonav.sim.render import render_rgb

        return render_rgb(self.sim, 0, np.array(self._trail))

    def close(self) -> None:
        self.sim.close()
