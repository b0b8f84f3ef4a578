"""Where an episode comes from: a maze (file or generated), its start and goal, and the seed of its noise.

An episode is (maze, start, goal, seed): the same four always give the same episode. A file maze keeps its own
start and goal, and seeds vary only the noise; generated mazes are drawn from the configured split and families.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from robonav.sim.config import MazeConfig
from robonav.sim.maze import Maze, load_maze


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode: the maze holds its start and goal; ``seed`` drives noise, randomization and heading."""

    maze: Maze
    seed: int


class MazeSampler:
    """Draws the maze of each new episode from a file, a Maze, a list of mazes, or generator settings."""

    def __init__(self, source: str | os.PathLike[str] | Maze | list[Maze] | MazeConfig | dict | None,
                 default: MazeConfig | None = None) -> None:
        self.fixed: list[Maze] | None = None
        self.config: MazeConfig = default or MazeConfig()
        if source is None:
            pass
        elif isinstance(source, Maze):
            self.fixed = [source]
        elif isinstance(source, (str, os.PathLike)):
            self.fixed = [load_maze(source)]
        elif isinstance(source, list):
            if not source or not all(isinstance(m, Maze) for m in source):
                raise TypeError("maze list must hold at least one Maze")
            self.fixed = list(source)
        elif isinstance(source, MazeConfig):
            self.config = source
        elif isinstance(source, dict):
            from robonav.settings import from_dict

            self.config = from_dict(MazeConfig, source, "maze")
        else:
            raise TypeError(
                f"maze must be a file path, a Maze, a list of Maze, a MazeConfig or a dict of generator "
                f"settings, got {type(source).__name__}"
            )
        self._current: dict[int, tuple[Maze, int]] = {}

    def sample(self, env_index: int, rng: np.random.Generator) -> EpisodeSpec:
        """The next episode of env ``env_index``, drawn with ``rng``."""
        seed = int(rng.integers(2**31 - 1))
        if self.fixed is not None:
            maze = self.fixed[int(rng.integers(len(self.fixed)))]
            return EpisodeSpec(maze, seed)
        from robonav.sim.generate import generate_maze
        from robonav.sim.geodesic import sample_start_goal
        from robonav.sim.suites import split_seed

        cfg = self.config
        held = self._current.get(env_index)
        if held is not None and held[1] < cfg.episodes_per_maze:
            maze = held[0]
            self._current[env_index] = (maze, held[1] + 1)
        else:
            family = cfg.families[int(rng.integers(len(cfg.families)))]
            w = int(rng.integers(cfg.width[0], cfg.width[1] + 1))
            hr = cfg.height if cfg.height is not None else None
            h = w if hr is None else int(rng.integers(hr[0], hr[1] + 1))
            mseed = split_seed(cfg.split, int(rng.integers(1_000_000)))
            cell = cfg.cell if cfg.cell_range is None else float(rng.uniform(*cfg.cell_range))
            maze = generate_maze(family, w, h, seed=mseed, cell=cell, corner_to_corner=cfg.corner_to_corner)
            self._current[env_index] = (maze, 1)
            return EpisodeSpec(maze, seed)
        if cfg.corner_to_corner:
            return EpisodeSpec(maze, seed)
        start, goal = sample_start_goal(maze, rng)
        return EpisodeSpec(maze.with_start_goal(start, goal), seed)
