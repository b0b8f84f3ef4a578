"""A simulated episode as MCAP (`robonav eval --mcap DIR`): what the robot saw, believed and did, and the truth.

`EpisodeMcap` is ``record_episode``'s ``on_step``: tick k writes the frame the policy saw (/scan, /odom, /tf), the
true pose, the observer's memories every ``memory_every`` seconds (and at the end), and the command that answered
the previous frame, stamped at that frame's time (the command after the safety layer, before the simulated
latency). The episode's last frame is answered with a stop, as the robot stops at the goal or the time limit, so
there is one command per scan. Tick 0 adds the true maze (/map) and map -> odom (the start pose). Times are
simulated seconds from the episode's start (k x period).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["EpisodeMcap"]


class EpisodeMcap:
    """One episode of env 0 of a MazeSim, collected through ``record_episode(..., on_step=EpisodeMcap())``."""

    def __init__(self, memory_every: float = 1.0) -> None:
        from robonav.runtime.ros2.mcap import RunMcap  # eval imports the runtime lazily (docs/design.md's table)

        self.run = RunMcap(memory_every=memory_every)

    def __call__(self, sim: Any, step: int, done: bool) -> None:
        period = sim.cfg.period
        t = step * period
        if step == 0:
            ep = sim.episodes[0]
            self.run.world(t, ep.maze.occupancy, ep.maze.cell, sim.pose[0])
        else:
            v, omega = sim.last_command[0]
            self.run.command((step - 1) * period, float(v), float(omega))
        frame = sim.frames[0]
        self.run.frame(t, frame)
        self.run.true_pose(t, sim.pose[0])
        self.run.memory(t, sim.observers[0], force=done)
        if done:
            self.run.command(t, 0.0, 0.0)

    def write(self, path: str | Path) -> Path:
        """Write the episode as one MCAP file (``path`` ends in .mcap) or a rosbag2 folder."""
        return self.run.write(path)
