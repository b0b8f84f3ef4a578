"""Run a list of episodes with any policy and record what happened, the same way for every policy.

`run_episodes` keeps one MazeSim of ``num_envs`` slots busy: each slot takes the next episode of the queue,
steps until its episode ends (success or time limit; MazeSim never resets by itself), records an
`EpisodeResult`, and takes the next. When the queue is empty, idle slots get zero commands and are not recorded.
Results come back in episode order. Each episode's noise comes from its own seed, so the same episodes, config
and ``num_envs`` give the same results.

Each result also holds the episode's duration and two minimum clearances over its ticks, from the true pose: to
the walls (the maze grid, `wall_clearance`) and, apart, to the movers' bodies (`mover_clearance`; inf in an
episode without movers), so a wall figure stays comparable between worlds with and without people.

A policy owns its recurrent state per env: the runner calls ``reset(env_ids)`` whenever slots start an episode
(before the first ``act`` of that episode), then ``act(obs, frames, sim)`` every tick for all slots.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Protocol

import numpy as np

from robonav.eval.metrics import EpisodeResult
from robonav.sensors.frame import SensorFrame
from robonav.sim.config import SimConfig
from robonav.sim.core import MazeSim
from robonav.sim.episodes import EpisodeSpec

__all__ = [
    "EVAL_LATENCY_TICKS", "ExpertPolicy", "Policy", "PolicyFactory", "RandomPolicy", "eval_config", "mover_clearance",
    "run_episodes", "wall_clearance",
]

CLEARANCE_REACH = 3
"""Cells searched around the robot for the nearest wall; a clearance beyond that reach is reported as the reach."""


class Policy(Protocol):
    """What the runner drives: one object acting for every env of a MazeSim, owning its per-env state."""

    def reset(self, env_ids: np.ndarray) -> None:
        """Envs ``env_ids`` start a new episode: forget their recurrent state and memories."""

    def act(self, obs: np.ndarray, frames: list[SensorFrame | None], sim: MazeSim) -> np.ndarray:
        """Commands [N, 2] (v m/s, omega rad/s) for all envs from the observations [N, D] and raw frames.

        ``sim`` is passed only so privileged baselines (the expert) can be wrapped; real policies ignore it.
        """


PolicyFactory = Callable[[int], Policy]
"""Builds the policy for a given number of envs."""

ProgressFn = Callable[[int, int], None]
"""Called with (episodes finished, episodes in all) after every finished episode."""


EVAL_LATENCY_TICKS = 1
"""Command latency of every evaluation (docs/design.md: eval and HIL run one tick, so their results compare)."""


def eval_config(config: SimConfig | None = None) -> SimConfig:
    """``config`` (default: the nominal SimConfig) as evaluations run it: randomization off (the nominal sensors
    with their noise) and `EVAL_LATENCY_TICKS` of command latency. The given config is not changed."""
    cfg = config or SimConfig()
    return dataclasses.replace(cfg, latency_ticks=EVAL_LATENCY_TICKS,
                               randomization=dataclasses.replace(cfg.randomization, enabled=False))


def wall_clearance(occupancy: np.ndarray, cell: float, x: float, y: float, radius: float) -> float:
    """Distance (m) from the edge of a disc robot (``radius``, centre (x, y)) to the nearest wall cell of
    ``occupancy`` (bool [iy, ix], `Maze.occupancy`; outside the grid is wall) within `CLEARANCE_REACH` cells;
    0 when the disc overlaps a wall.

    >>> occ = np.array([[True, False, False]])  # one row: a wall cell at x in [0, 1]
    >>> round(wall_clearance(occ, 1.0, 1.5, 0.5, 0.2), 6)  # 0.5 m to the wall, minus the radius
    0.3
    """
    k = CLEARANCE_REACH
    ix, iy = math.floor(x / cell), math.floor(y / cell)
    xs, ys = np.arange(ix - k, ix + k + 1), np.arange(iy - k, iy + k + 1)  # window cells [2k+1]
    h, w = occupancy.shape
    inside = (ys[:, None] >= 0) & (ys[:, None] < h) & (xs[None, :] >= 0) & (xs[None, :] < w)
    wall = ~inside  # [2k+1, 2k+1], [iy, ix]
    wall[inside] = occupancy[np.clip(ys, 0, h - 1)[:, None], np.clip(xs, 0, w - 1)[None, :]][inside]
    dx = np.maximum(np.maximum(xs * cell - x, x - (xs + 1) * cell), 0.0)  # distance to each column's cells
    dy = np.maximum(np.maximum(ys * cell - y, y - (ys + 1) * cell), 0.0)
    dist = np.hypot(dy[:, None], dx[None, :])[wall]
    nearest = float(dist.min()) if dist.size else k * cell
    return max(0.0, min(nearest, k * cell) - radius)


def mover_clearance(centres: np.ndarray, radii: np.ndarray, x: float, y: float, radius: float) -> float:
    """Smallest gap (m) between a disc robot (``radius``, centre (x, y)) and mover discs (``centres`` [M, 2],
    ``radii`` [M]); 0 when one overlaps the robot, inf without movers.

    >>> round(mover_clearance(np.array([[1.0, 0.0], [0.0, 3.0]]), np.array([0.25, 0.3]), 0.0, 0.0, 0.2), 6)
    0.55
    """
    if len(radii) == 0:
        return math.inf
    gaps = np.hypot(centres[:, 0] - x, centres[:, 1] - y) - radii - radius  # [M]
    return max(0.0, float(gaps.min()))


def _mover_clearance(sim: MazeSim, i: int) -> float:
    crowd = sim.crowd
    k = int(crowd.count[i])
    return mover_clearance(crowd.pos[i, :k], crowd.radius[i, :k], float(sim.pose[i, 0]), float(sim.pose[i, 1]),
                           float(sim.radius[i]))


def _clearance(sim: MazeSim, i: int) -> float:
    ep = sim.episodes[i]
    assert ep is not None
    return wall_clearance(ep.maze.occupancy, ep.maze.cell, float(sim.pose[i, 0]), float(sim.pose[i, 1]),
                          float(sim.radius[i]))


def run_episodes(policy_factory: PolicyFactory, episodes: list[EpisodeSpec], config: SimConfig | None = None,
                 num_envs: int = 8, progress: ProgressFn | None = None) -> list[EpisodeResult]:
    """Run every episode once with the policy ``policy_factory(num_envs)`` builds; results in episode order.

    ``config`` is used as given (default `eval_config()`); pass ``eval_config(cfg)`` for the eval settings.
    """
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    total = len(episodes)
    if total == 0:
        return []
    n = min(num_envs, total)
    sim = MazeSim(n, config or eval_config(), seed=0)
    try:
        policy = policy_factory(n)
        results: list[EpisodeResult | None] = [None] * total
        slot = np.full(n, -1, dtype=np.int64)  # episode index each env runs, -1 when idle
        queued = 0
        clearance = np.full(n, np.inf)  # per env: the episode's smallest clearance to walls so far
        to_movers = np.full(n, np.inf)  # per env: the same to movers (inf while it has none)
        for i in range(n):
            sim.reset_env(i, episodes[queued])
            clearance[i], to_movers[i] = _clearance(sim, i), _mover_clearance(sim, i)
            slot[i] = queued
            queued += 1
        policy.reset(np.arange(n))
        finished = 0
        zero = np.zeros((n, 2))
        while (slot >= 0).any():
            actions = np.asarray(policy.act(sim.obs, sim.frames, sim), dtype=np.float64).reshape(n, 2)
            actions = np.where((slot >= 0)[:, None], actions, zero)
            _, _, terminated, truncated = sim.step(actions)
            for i in np.flatnonzero(slot >= 0).tolist():
                clearance[i] = min(clearance[i], _clearance(sim, i))
                to_movers[i] = min(to_movers[i], _mover_clearance(sim, i))
            ended = np.flatnonzero((terminated | truncated) & (slot >= 0)).tolist()
            started = []
            for i in ended:
                k = int(slot[i])
                results[k] = EpisodeResult.from_info(sim.info(i), episodes[k].maze.family, period=sim.cfg.period,
                                                     min_clearance=float(clearance[i]),
                                                     min_clearance_movers=float(to_movers[i]))
                finished += 1
                if progress is not None:
                    progress(finished, total)
                if queued < total:
                    sim.reset_env(i, episodes[queued])
                    clearance[i], to_movers[i] = _clearance(sim, i), _mover_clearance(sim, i)
                    slot[i] = queued
                    queued += 1
                    started.append(i)
                else:
                    slot[i] = -1
            if started:
                policy.reset(np.array(started, dtype=np.int64))
    finally:
        sim.close()
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


class ExpertPolicy:
    """The privileged GeodesicExpert (true pose, true map) as a Policy: an upper reference, never deployable."""

    def __init__(self, num_envs: int, **expert_kwargs: float) -> None:
        from robonav.sim.expert import GeodesicExpert

        self.num_envs = num_envs
        self.expert = GeodesicExpert(**expert_kwargs)

    def reset(self, env_ids: np.ndarray) -> None:
        """Stateless: nothing to forget."""

    def act(self, obs: np.ndarray, frames: list[SensorFrame | None], sim: MazeSim) -> np.ndarray:
        """The expert's commands from ``sim``'s privileged state."""
        return self.expert(sim)


class RandomPolicy:
    """Uniform random commands (v in [0, v_max], omega in [-omega_max, omega_max]): a floor for the metrics."""

    def __init__(self, num_envs: int, seed: int = 0, v_max: float = 0.5, omega_max: float = 2.0) -> None:
        self.num_envs = num_envs
        self.rng = np.random.default_rng(seed)
        self.high = np.array([v_max, omega_max])

    def reset(self, env_ids: np.ndarray) -> None:
        """Stateless: nothing to forget."""

    def act(self, obs: np.ndarray, frames: list[SensorFrame | None], sim: MazeSim) -> np.ndarray:
        """Fresh random commands for every env."""
        u = self.rng.random((self.num_envs, 2))  # [N, 2] in [0, 1)
        return np.stack([u[:, 0] * self.high[0], (2 * u[:, 1] - 1) * self.high[1]], axis=1)
