"""Observation builders: the one replaceable place where a SensorFrame and the last command become a vector.

``plain``: scan min-pooled into 32 bins + goal vector + previous command, from the frame alone (it integrates
the odometry deltas itself). ``preprocessor``: robonav.sensors.Preprocessor, the code that also runs on the
robot (scan bins, odometry, obstacle and trajectory memory patches). Both have the same small interface.
``batch_observer`` steps N Preprocessors in one Numba call (the simulator's tick); plain observers, and
Preprocessors with laser odometry, are called one by one.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Protocol

import numpy as np

from robonav.sensors import Preprocessor, PreprocessorConfig
from robonav.sensors.batch import PreprocessorBatch
from robonav.sensors.frame import SensorFrame


class Observer(Protocol):
    """What the simulator needs from an observation builder."""

    dim: int
    low: np.ndarray
    high: np.ndarray

    def reset(self) -> None: ...
    def __call__(self, frame: SensorFrame, last_command: np.ndarray) -> np.ndarray: ...


class PlainObserver:
    """Scan bins, goal (distance, sin, cos of bearing) and the previous command; no memory."""

    def __init__(self, bins: int = 32, max_range: float = 3.5, goal_clip: float = 10.0, v_max: float = 0.5,
                 omega_max: float = 2.0) -> None:
        self.bins, self.max_range, self.goal_clip = bins, max_range, goal_clip
        self.v_max, self.omega_max = v_max, omega_max
        self.dim = bins + 5
        self.low = np.concatenate([np.zeros(bins), [0.0, -1.0, -1.0, -1.0, -1.0]]).astype(np.float32)
        self.high = np.ones(self.dim, dtype=np.float32)
        self._pose = np.zeros(3)
        self._episode = -1
        self._out = np.zeros(self.dim, dtype=np.float32)
        self._cache: dict = {}

    def _bins_for(self, scan):
        """(beam order sorted by bin, start index of each present bin, present bin ids), cached per spec."""
        hit = self._cache.get(scan)
        if hit is None:
            a = scan.beam_angles()
            k = np.floor(((a + math.pi / self.bins) % (2 * math.pi)) / (2 * math.pi) * self.bins)
            k = k.astype(np.int64) % self.bins
            order = np.argsort(k, kind="stable")
            present, starts = np.unique(k[order], return_index=True)
            hit = self._cache[scan] = (order, starts, present)
        return hit

    def reset(self) -> None:
        self._pose[:] = 0.0
        self._episode = -1

    def __call__(self, frame: SensorFrame, last_command: np.ndarray) -> np.ndarray:
        if frame.episode_id != self._episode:
            self.reset()
            self._episode = frame.episode_id
        x, y, th = self._pose
        dx, dy, dth = frame.odom_delta
        c, s = math.cos(th), math.sin(th)
        self._pose[:] = (x + c * dx - s * dy, y + s * dx + c * dy, th + dth)
        order, starts, present = self._bins_for(frame.scan)
        r = frame.ranges[order]
        r = np.where(np.isnan(r), self.max_range, r)  # invalid readings say nothing: treat as far
        np.clip(r, 0.0, self.max_range, out=r)  # +inf -> max_range, -inf -> 0
        out = self._out
        out[: self.bins] = 1.0
        out[present] = np.minimum.reduceat(r, starts) / self.max_range
        gx, gy = frame.goal[0] - self._pose[0], frame.goal[1] - self._pose[1]
        bearing = math.atan2(gy, gx) - self._pose[2]
        b = self.bins
        out[b] = min(math.hypot(gx, gy), self.goal_clip) / self.goal_clip
        out[b + 1], out[b + 2] = math.sin(bearing), math.cos(bearing)
        out[b + 3] = max(-1.0, min(1.0, last_command[0] / self.v_max))
        out[b + 4] = max(-1.0, min(1.0, last_command[1] / self.omega_max))
        return out


def make_observer(kind: str, v_max: float = 0.5, omega_max: float = 2.0,
                  preprocessor: PreprocessorConfig | None = None) -> Observer:
    """Build the observer named by SimConfig.observation."""
    if kind == "plain":
        return PlainObserver(v_max=v_max, omega_max=omega_max)
    if kind == "preprocessor":
        cfg = preprocessor or PreprocessorConfig()
        if (cfg.v_max, cfg.omega_max) != (v_max, omega_max):
            cfg = dataclasses.replace(cfg, v_max=v_max, omega_max=omega_max)
        return Preprocessor(cfg)
    raise ValueError(f"unknown observation kind {kind!r}: expected 'plain' or 'preprocessor'")


def batch_observer(observers: list[Observer]) -> PreprocessorBatch | None:
    """One batched call for ``observers`` where they are all Preprocessors without laser odometry, else None."""
    if observers and all(isinstance(o, Preprocessor) and not o.spec.config.laser_odometry for o in observers):
        return PreprocessorBatch([o for o in observers if isinstance(o, Preprocessor)])
    return None
