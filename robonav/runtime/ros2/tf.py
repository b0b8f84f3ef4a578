"""The TF math the ROS 2 node needs, in plain NumPy: planar poses from transforms and a scan seen from the base.

A 2D pose is (x, y, yaw) float64 [3] (REP 103: x forward, y left, yaw counter-clockwise). ``compose(a, b)`` is
the pose b, given in frame a, expressed in a's parent frame; ``invert(a)`` the parent's pose in frame a. TF2
looks transforms up (robonav.runtime.ros2.node); these functions only apply them, so they are tested without ROS.

A laser mounted off the base's centre, turned, or upside down sees the world from its own frame.
`MountedScan` re-expresses its scans from the base frame's origin, the way pointcloud_to_laserscan does: each
beam's end point goes through the mount transform (a full 3D rotation, so a laser mounted upside down mirrors
its beams), then falls into the bin of a fixed base-frame beam fan (the laser's beam count and increment, turned
by the mount's heading), nearest return per bin. A +inf beam (no return within range) marks its bin +inf where
no finite return landed there, at the point its range_max ends; a -inf beam (too close) marks the bin of its
direction -inf (it overrides +inf, never a finite return). A bin nothing fell into is NaN (invalid). The fan is
fixed, so the loop sees one ScanSpec while the mount holds. For a mount without offset the mapping is exact.
"""

from __future__ import annotations

import math

import numpy as np

from robonav.sensors.frame import ScanSpec

__all__ = ["MountedScan", "compose", "invert", "pose2d_from_transform", "rotation_matrix", "transform_point"]


def rotation_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    """3x3 rotation of the quaternion (x, y, z, w), normalised first; ValueError for a zero or non-finite one."""
    q = np.array([x, y, z, w], dtype=np.float64)
    n = float(np.sqrt(q @ q))
    if not (math.isfinite(n) and n > 1e-9):
        raise ValueError(f"quaternion (x, y, z, w) = {(x, y, z, w)} is zero or not finite: no rotation")
    x, y, z, w = q / n
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def pose2d_from_transform(translation: tuple[float, float, float],
                          rotation: tuple[float, float, float, float]) -> np.ndarray:
    """(x, y, yaw) of a 3D transform (translation xyz, quaternion xyzw) projected onto the ground plane: yaw is
    the heading of the rotated x axis."""
    r = rotation_matrix(*rotation)
    return np.array([float(translation[0]), float(translation[1]), math.atan2(r[1, 0], r[0, 0])])


def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pose ``b`` (given in frame ``a``) in the frame ``a`` is given in; yaw wrapped to [-pi, pi)."""
    c, s = math.cos(a[2]), math.sin(a[2])
    yaw = (a[2] + b[2] + math.pi) % (2 * math.pi) - math.pi
    return np.array([a[0] + c * b[0] - s * b[1], a[1] + s * b[0] + c * b[1], yaw])


def invert(a: np.ndarray) -> np.ndarray:
    """The pose whose composition with ``a`` is the identity: the parent frame seen from ``a``."""
    c, s = math.cos(a[2]), math.sin(a[2])
    yaw = (-a[2] + math.pi) % (2 * math.pi) - math.pi
    return np.array([-c * a[0] - s * a[1], s * a[0] - c * a[1], yaw])


def transform_point(a: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Point(s) ``p`` [..., 2] given in frame ``a``, in a's parent frame."""
    c, s = math.cos(a[2]), math.sin(a[2])
    p = np.asarray(p, dtype=np.float64)
    return np.stack([a[0] + c * p[..., 0] - s * p[..., 1], a[1] + s * p[..., 0] + c * p[..., 1]], axis=-1)


class MountedScan:
    """Scans of a laser at ``translation``/``rotation`` in the base frame, re-expressed from the base's origin
    (see the module docstring). Built once per laser description; ``__call__`` maps one scan."""

    def __init__(self, laser: ScanSpec, translation: tuple[float, float, float],
                 rotation: tuple[float, float, float, float]) -> None:
        r = rotation_matrix(*rotation)
        self.laser = laser
        self.offset = np.array([float(translation[0]), float(translation[1])])
        self._r2 = r[:2, :2]  # beam directions are in the laser's xy plane: the projection of R onto the ground
        self.mirrored = bool(r[2, 2] < 0)  # upside down: the beams sweep clockwise seen from the base
        a = laser.beam_angles()
        d = self._directions(a)
        base = np.arctan2(d[:, 1], d[:, 0])  # each beam's heading in the base frame (exact without offset)
        n = laser.num_beams
        inc = abs(laser.angle_increment) if laser.angles is None else (float(np.ptp(a)) / max(n - 1, 1))
        self.full = n * inc >= 2 * math.pi - 1e-9
        start = float(base[-1] if self.mirrored else base[0])
        self.inc = inc
        self.start = start
        d_off = float(np.hypot(*self.offset))
        self.spec = ScanSpec(n, (start + math.pi) % (2 * math.pi) - math.pi, inc, max(0.0, laser.range_min - d_off),
                             laser.range_max + d_off, None, laser.spec_id)
        """The base-frame scan description (evenly spaced; range limits widened by the offset)."""
        self._dirs = d
        self._far = self._bin(self._points(np.full(n, laser.range_max)))
        self._near = self._bin(self._points(np.full(n, max(laser.range_min, 1e-6))))

    def _directions(self, angles: np.ndarray) -> np.ndarray:
        return np.stack([np.cos(angles), np.sin(angles)], axis=-1) @ self._r2.T  # [beams, 2]

    def _points(self, ranges: np.ndarray) -> np.ndarray:
        return self.offset + ranges[:, None] * self._dirs  # [beams, 2] end points in the base frame

    def _bin(self, points: np.ndarray) -> np.ndarray:
        """Bin index of each point's heading in the base fan; -1 outside it."""
        ang = np.arctan2(points[:, 1], points[:, 0])
        delta = (ang - self.start) % (2 * math.pi)
        delta = np.where(delta > 2 * math.pi - 0.5 * self.inc, delta - 2 * math.pi, delta)  # just before beam 0
        k = np.rint(delta / self.inc).astype(np.int64)
        n = self.laser.num_beams
        if self.full:
            return k % n
        return np.where((k >= 0) & (k < n), k, -1)

    def __call__(self, ranges: np.ndarray) -> np.ndarray:
        """float32 ranges in the base fan (``self.spec``) of one laser scan (REP 117 codes as described)."""
        r = np.asarray(ranges, dtype=np.float64)
        n = self.laser.num_beams
        out = np.full(n, np.inf)
        finite = np.isfinite(r)
        pts = self._points(np.where(finite, r, 0.0))
        k = self._bin(pts)
        hit = finite & (k >= 0)
        np.minimum.at(out, k[hit], np.hypot(pts[hit, 0], pts[hit, 1]))
        got = np.zeros(n, bool)
        got[k[hit]] = True
        far = np.isposinf(r) & (self._far >= 0)
        near = np.isneginf(r) & (self._near >= 0)
        inf_bins = np.zeros(n, bool)
        inf_bins[self._far[far]] = True
        near_bins = np.zeros(n, bool)
        near_bins[self._near[near]] = True
        out[~got & ~inf_bins] = np.nan
        out[~got & near_bins] = -np.inf
        return out.astype(np.float32)
