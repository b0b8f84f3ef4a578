"""Odometry: integrate wheel-odometry pose deltas, and the goal and command blocks of the observation.

The odometry frame's origin is the robot's pose at the start of the episode (x forward, y left, REP 103). A
delta (dx, dy, dtheta) is expressed in the robot frame of the previous frame:

    x' = x + cos(theta) dx - sin(theta) dy,   y' = y + sin(theta) dx + cos(theta) dy,   theta' = wrap(theta + dtheta)

with theta wrapped into [-pi, pi). A delta with a non-finite component, or one that would carry the pose out of
the finite floats, is dropped whole (and counted by the Preprocessor): one glitch must not poison the episode.
"""

from __future__ import annotations

import math

import numpy as np

from robonav.sensors.jit import kernel

__all__ = ["PoseDeltas", "clip_unit", "command_block", "goal_block", "integrate_pose", "pose_delta", "wrap_angle"]


@kernel
def wrap_angle(a: float) -> float:
    """``a`` wrapped into [-pi, pi)."""
    return (a + math.pi) % (2.0 * math.pi) - math.pi


@kernel
def integrate_pose(pose: np.ndarray, dx: float, dy: float, dth: float) -> bool:
    """Apply one delta to ``pose`` (float64 [3]: x, y, theta) in place; False (pose unchanged) if dropped."""
    th = pose[2]
    c = math.cos(th)
    s = math.sin(th)
    x = pose[0] + (c * dx - s * dy)
    y = pose[1] + (s * dx + c * dy)
    t = th + dth
    if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(t)):
        return False
    pose[0] = x
    pose[1] = y
    pose[2] = wrap_angle(t)
    return True


def pose_delta(prev: np.ndarray, pose: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The delta (dx, dy, dtheta), in ``prev``'s robot frame, that `integrate_pose` turns ``prev`` into ``pose``
    with (both float64 [3]: x, y, theta in the odometry frame); dtheta wrapped into [-pi, pi)."""
    out = np.empty(3) if out is None else out
    c = math.cos(prev[2])
    s = math.sin(prev[2])
    ex = pose[0] - prev[0]
    ey = pose[1] - prev[1]
    out[0] = c * ex + s * ey
    out[1] = c * ey - s * ex
    out[2] = (pose[2] - prev[2] + math.pi) % (2.0 * math.pi) - math.pi
    return out


class PoseDeltas:
    """Turns an odometry pose stream (the robot wire, nav_msgs/Odometry) into the per-frame deltas a SensorFrame
    carries, relative to the last frame handed to the loop rather than the last one sent: a frame lost on the way
    (or skipped by a loop that takes the newest) loses no motion. On a new episode id the previous pose is the
    origin, so the first frame the loop sees carries the whole pose since the episode's start (the Preprocessor
    starts at the origin and lands on it), even when earlier frames of the episode were lost or the runtime
    restarted mid-episode."""

    def __init__(self) -> None:
        self.pose = np.zeros(3)
        """The pose of the last frame handed out (odometry frame)."""
        self.episode_id: int | None = None

    def delta(self, episode_id: int, pose: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The delta from the last handed-out pose to ``pose`` (from the origin on a new episode id)."""
        if episode_id != self.episode_id:
            self.episode_id = episode_id
            self.pose[:] = 0.0
        out = pose_delta(self.pose, pose, out)
        self.pose[:] = pose
        return out


@kernel
def goal_block(pose: np.ndarray, gx: float, gy: float, goal_clip: float, out: np.ndarray) -> None:
    """Write (min(distance, goal_clip) / goal_clip, sin(bearing), cos(bearing)) of the goal seen from ``pose``
    into ``out`` (float32 [3]). A goal at the robot has bearing 0; one too far to represent reads (1, 0, 1)."""
    th = pose[2]
    c = math.cos(th)
    s = math.sin(th)
    ex = gx - pose[0]
    ey = gy - pose[1]
    lx = c * ex + s * ey
    ly = c * ey - s * ex
    m = max(abs(lx), abs(ly))
    if m == 0.0:
        out[0], out[1], out[2] = 0.0, 0.0, 1.0
    elif not math.isfinite(m):
        out[0], out[1], out[2] = 1.0, 0.0, 1.0
    else:
        ux = lx / m
        uy = ly / m
        n = math.sqrt(ux * ux + uy * uy)
        out[0] = min(m * n, goal_clip) / goal_clip
        out[1] = uy / n
        out[2] = ux / n


@kernel
def clip_unit(x: float) -> float:
    """``x`` clipped to [-1, 1]; NaN becomes 0."""
    if x != x:
        return 0.0
    return min(max(x, -1.0), 1.0)


@kernel
def command_block(v: float, omega: float, v_max: float, omega_max: float, out: np.ndarray) -> None:
    """Write the last command (after safety), normalised and clipped, into ``out`` (float32 [2])."""
    out[0] = clip_unit(v / v_max)
    out[1] = clip_unit(omega / omega_max)
