"""The simulator as a robot for the on-robot loop: a `robonav.runtime.driver.Driver` over a one-env MazeSim.

Lock step: every ``publish`` advances the simulated robot by one control period with that command, so the
loop's clock may be real (``robonav run`` on a dev machine), scaled, or manual (tests): the robot never moves
between commands, and a tick's "publish" stage includes one physics step. ``stop()`` and a tick without a
command do not advance it.

What is simulated is the robot, not the runtime: the loop runs the safety layer (robonav.control, the same as in
training and eval), so the simulated robot's own safety filter is replaced by a pass-through; the motor limits,
command latency, noise and odometry drift of ``config`` stay. Running the eval settings (the CLI passes them:
randomization off, one tick of latency), the loop therefore drives the simulated robot exactly as
``robonav eval`` drives it. The simulator's own observation builder is switched to the cheap 'plain' one: the
loop preprocesses the raw frames itself.

Episodes come from ``episodes`` (in order, then again from the start) or, when None, from ``config.maze``. An
episode that ends (goal reached or time limit) is logged in ``results`` and the next one starts: its frames carry
a new episode id, which is how the loop learns to reset.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from robonav.sensors.frame import SensorFrame
from robonav.sim.config import SimConfig
from robonav.sim.core import MazeSim
from robonav.sim.episodes import EpisodeSpec

__all__ = ["PassThroughSafety", "SimDriver"]


class PassThroughSafety:
    """Stands in for MazeSim's SafetyLayer when the control loop runs the real one: returns the commands."""

    def reset(self, env_ids: Any = None) -> None:
        """Nothing to forget."""

    def filter(self, commands: np.ndarray, ranges: np.ndarray, angles: np.ndarray, dt: float,
               radius: np.ndarray | None = None, estop: np.ndarray | None = None,
               num_beams: np.ndarray | None = None) -> np.ndarray:
        """The commands unchanged (MazeSim has already clipped them to the motor limits)."""
        return np.asarray(commands, dtype=np.float64)


class SimDriver:
    """A simulated robot in a maze, driven one control period per published command (module docstring)."""

    def __init__(self, config: SimConfig | None = None, episodes: list[EpisodeSpec] | None = None,
                 seed: int = 0) -> None:
        cfg = dataclasses.replace(config or SimConfig(), observation="plain")
        self.config = cfg
        self.episodes = list(episodes) if episodes is not None else None
        self.sim = MazeSim(1, cfg, seed=seed)
        # The loop's safety layer is the robot's; MazeSim's own would filter every command a second time.
        self.sim.safety = PassThroughSafety()  # type: ignore[assignment]
        self.results: list[dict[str, Any]] = []
        """info() of every finished episode, in order."""
        self.published = 0
        """Commands applied (simulator ticks)."""
        self.stops = 0
        """Stop commands received."""
        self.last_answered = -1
        """answers_seq of the last command."""
        self._next = 0
        self._command = np.zeros((1, 2))
        self._start_episode()

    def _start_episode(self) -> None:
        episode = None
        if self.episodes:
            episode = self.episodes[self._next % len(self.episodes)]
        self._next += 1
        self.sim.reset_env(0, episode)

    def latest_frame(self) -> SensorFrame | None:
        """The frame of the robot's current state (a new one after every publish)."""
        return self.sim.frames[0]

    def publish(self, v: float, omega: float, answers_seq: int) -> None:
        """Apply (v, omega) for one control period; start the next episode when this one ends."""
        self._command[0, 0] = v
        self._command[0, 1] = omega
        self.last_answered = answers_seq
        self.published += 1
        _, _, terminated, truncated = self.sim.step(self._command)
        if terminated[0] or truncated[0]:
            self.results.append(self.sim.info(0))
            self._start_episode()

    def stop(self) -> None:
        """A stop: the command becomes zero (applied at the next publish; the robot does not move meanwhile)."""
        self.stops += 1
        self._command[:] = 0.0

    def close(self) -> None:
        """Release the physics client; idempotent."""
        if self.sim is not None:
            self.sim.close()
            self.sim = None  # type: ignore[assignment]

    def summary(self) -> dict[str, Any]:
        """Finished episodes, successes, collisions and SPL of what the loop drove (for `robonav run`'s report)."""
        done = self.results
        spl = [float(r["is_success"]) * r["shortest_path_length"] / max(r["path_length"], r["shortest_path_length"],
                                                                         1e-9) for r in done]
        return {"sim_episodes": len(done), "sim_successes": sum(bool(r["is_success"]) for r in done),
                "sim_collisions": sum(int(r["collisions"]) for r in done),
                "sim_spl": float(np.mean(spl)) if spl else None, "sim_commands": self.published,
                "sim_stops": self.stops}
