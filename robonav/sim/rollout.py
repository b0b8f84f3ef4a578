"""Run one episode of MazeEnv with any action function and keep what happened (for pictures and summaries)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from robonav.sim.core import MazeSim
from robonav.sim.env import MazeEnv
from robonav.sim.episodes import EpisodeSpec
from robonav.sim.render import EpisodeTrace, memory_snapshot


def record_episode(env: MazeEnv, act: Callable[[np.ndarray], np.ndarray], seed: int | None = None,
                   max_steps: int | None = None, memory_every: int = 0,
                   episode: EpisodeSpec | None = None,
                   on_step: Callable[[MazeSim, int, bool], object] | None = None) -> EpisodeTrace:
    """Reset ``env`` (with ``seed``), step it with ``act(obs)`` until the episode ends, return the trace.

    ``episode`` plays that exact episode (maze, start, goal, seed). ``memory_every`` > 0 also snapshots the
    observer's obstacle and trajectory memory every that many ticks and at the end (for the PNG/GIF overlay).
    ``on_step(sim, step, done)`` sees the simulator after the reset (step 0) and after every step.
    """
    obs, info = env.reset(seed=seed, options=None if episode is None else {"episode": episode})
    sim = env.sim
    ep = sim.episodes[0]
    assert ep is not None
    nb = int(sim.counts[0])
    trace = EpisodeTrace(ep.maze, [sim.pose[0].copy()], [sim.ranges[0, :nb].copy()],
                         [sim.beam_rel[0, :nb].copy()], (float(sim.goal_xy[0, 0]), float(sim.goal_xy[0, 1])), info)
    steps = 0
    start = sim.pose[0].copy()

    def snap() -> None:
        m = memory_snapshot(sim.observers[0], start)
        if m is not None:
            trace.memory[steps] = m
            trace.memory_cell = sim.observers[0].spec.config.grid_resolution  # type: ignore[attr-defined]

    if memory_every:
        snap()
    if on_step is not None:
        on_step(sim, 0, False)
    while True:
        obs, _, terminated, truncated, info = env.step(act(obs))
        steps += 1
        trace.poses.append(sim.pose[0].copy())
        trace.scans.append(sim.ranges[0, :nb].copy())
        trace.angles.append(sim.beam_rel[0, :nb].copy())
        done = terminated or truncated or (max_steps is not None and steps >= max_steps)
        if memory_every and (steps % memory_every == 0 or done):
            snap()
        if on_step is not None:
            on_step(sim, steps, done)
        if done:
            break
    trace.info = info
    return trace
