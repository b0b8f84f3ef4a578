"""robonav.sim: PyBullet maze worlds, the robot, its raw sensors, the Gymnasium env and the vector env.

Importing this module registers ``robonav/Maze-v0`` (Gymnasium loads no plugins by itself), so
``gymnasium.make("robonav.sim:robonav/Maze-v0")`` works without a prior import.
"""

from __future__ import annotations

import gymnasium as gym

from robonav.sim.config import (
    MazeConfig,
    OdometryConfig,
    RandomizationConfig,
    RewardConfig,
    RobotConfig,
    ScannerConfig,
    SimConfig,
)
from robonav.sim.generate import FAMILIES, generate_maze
from robonav.sim.maze import Maze, MazeError, load_maze, parse_maze

ENV_ID = "robonav/Maze-v0"

if ENV_ID not in gym.registry:
    gym.register(
        id=ENV_ID,
        entry_point="robonav.sim.env:MazeEnv",
        vector_entry_point="robonav.sim.vector:MazeVectorEnv",
    )

__all__ = [
    "ENV_ID",
    "FAMILIES",
    "Maze",
    "MazeConfig",
    "MazeError",
    "OdometryConfig",
    "RandomizationConfig",
    "RewardConfig",
    "RobotConfig",
    "ScannerConfig",
    "SimConfig",
    "generate_maze",
    "load_maze",
    "parse_maze",
]
