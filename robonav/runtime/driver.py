"""The driver interface between the control loop and a robot: sensor frames in, velocity commands out.

A driver hides where frames come from and where commands go: the simulator (robonav.sim.driver.SimDriver, for
a dev machine and tests), the UDP robot wire (`UdpDriver`: a robot, or the sim-robot of a HIL run), the ROS 2
bridge (`Ros2Bridge`), or a list of frames (`ReplayDriver`).
The loop calls it from one thread, once per tick:

    frame = driver.latest_frame()          # newest SensorFrame or None; never blocks
    driver.publish(v, omega, frame.seq)    # the safe command answering that frame
    driver.stop()                          # a stop command: watchdog, shutdown, errors
    driver.close()                         # by whoever opened the driver, after the loop

Frame identity: a driver numbers frames with ``seq`` (increasing within an episode) and changes ``episode_id``
on a new goal or reset. The loop processes a frame once: a ``latest_frame()`` that returns the same
(episode_id, seq) again means "no new frame this tick" (the odometry delta must not be integrated twice).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from robonav.sensors.frame import SensorFrame

__all__ = ["Driver", "ReplayDriver"]


@runtime_checkable
class Driver(Protocol):
    """What the control loop needs from a robot (see the module docstring)."""

    def latest_frame(self) -> SensorFrame | None:
        """The newest sensor frame, or None before the first; returns at once (never waits for one)."""
        ...

    def publish(self, v: float, omega: float, answers_seq: int) -> None:
        """Send the command (v m/s, omega rad/s) that answers the frame numbered ``answers_seq``."""
        ...

    def stop(self) -> None:
        """Send a stop command (v = omega = 0) at once."""
        ...

    def close(self) -> None:
        """Release sockets, simulators, files; idempotent."""
        ...


class ReplayDriver:
    """Plays a list of frames, one per ``latest_frame()`` call, and logs what the loop sends: for tests, the
    selftest's timing check and benchmarks (numpy only, no allocation per call).

    ``frames`` may hold None: "no new frame at this call" (the previous frame stays the newest), which is how a
    test makes frames go stale. After the last entry the last frame stays the newest (nothing new arrives),
    unless ``cycle`` starts the list again: every other pass plays copies whose episode ids are shifted past the
    list's, so each pass begins a new episode (the loop resets, as a robot would at a new goal) rather than
    teleporting the odometry back to the first frame. The log ``commands`` is a preallocated ring of
    ``log_size`` rows (v, omega, answers_seq, is_stop); a stop is logged as (0, 0, -1, 1).
    """

    def __init__(self, frames: Sequence[SensorFrame | None], cycle: bool = False, log_size: int = 1 << 16) -> None:
        if len(frames) == 0:
            raise ValueError("ReplayDriver: frames is empty; give at least one SensorFrame (None entries mean "
                             "'no new frame at this tick')")
        self.frames = list(frames)
        self.cycle = cycle
        self._passes = [self.frames]
        if cycle:
            ids = [f.episode_id for f in self.frames if f is not None]
            shift = max(ids) - min(ids) + 1 if ids else 0
            self._passes.append([None if f is None else dataclasses.replace(f, episode_id=f.episode_id + shift)
                                 for f in self.frames])
        self.calls = 0
        """latest_frame() calls so far."""
        self.published = 0
        """Commands published so far (stops not included)."""
        self.stops = 0
        """Stop commands sent so far."""
        self.closed = False
        self._log = np.zeros((log_size, 4))  # [ring, (v, omega, answers_seq, is_stop)]
        self._logged = 0
        self._newest: SensorFrame | None = None

    def latest_frame(self) -> SensorFrame | None:
        """The next entry of the list if it is a frame, else the newest frame so far."""
        i = self.calls
        self.calls = i + 1
        n = len(self.frames)
        if i >= n:
            if not self.cycle:
                return self._newest
            frame = self._passes[(i // n) % 2][i % n]
        else:
            frame = self.frames[i]
        if frame is not None:
            self._newest = frame
        return self._newest

    def publish(self, v: float, omega: float, answers_seq: int) -> None:
        """Log the command."""
        self.published += 1
        self._record(v, omega, answers_seq, 0.0)

    def stop(self) -> None:
        """Log a stop."""
        self.stops += 1
        self._record(0.0, 0.0, -1, 1.0)

    def close(self) -> None:
        self.closed = True

    def _record(self, v: float, omega: float, seq: int, is_stop: float) -> None:
        row = self._log[self._logged % len(self._log)]
        row[0] = v
        row[1] = omega
        row[2] = seq
        row[3] = is_stop
        self._logged += 1

    @property
    def log(self) -> np.ndarray:
        """The logged rows in order, float64 [n, 4] (v, omega, answers_seq, is_stop); the newest ``log_size``."""
        n = len(self._log)
        if self._logged <= n:
            return self._log[:self._logged].copy()
        k = self._logged % n
        return np.concatenate([self._log[k:], self._log[:k]])

    @property
    def commands(self) -> np.ndarray:
        """The published commands (stops left out), float64 [n, 2]."""
        log = self.log
        return log[log[:, 3] == 0.0, :2]
