"""The raw sensor frame a robot driver gives, the same from the simulator, the wire and a ROS 2 bridge.

A SensorFrame never carries the true pose: only what a real robot knows (its scan, its wheel odometry, the goal).
Scan semantics follow ROS REP 117: ``+inf`` = no return within range, ``NaN`` = invalid reading,
``-inf`` = too close to measure. Frames and units follow REP 103 (x forward, y left; metres, radians, seconds).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from robonav.errors import UserError


class ScanSpecError(UserError, ValueError):
    """A scan description (or a scan that does not fit it) is malformed."""


@dataclass(frozen=True)
class ScanSpec:
    """LaserScan-style description of a range scanner.

    Beams are either evenly spaced (``angle_min + i * angle_increment``) or given one by one in ``angles``
    (which then wins). Angles are in the robot frame, counter-clockwise from x forward.
    """

    num_beams: int
    """Number of beams in every scan."""
    angle_min: float = -np.pi
    """Angle of beam 0 in radians."""
    angle_increment: float = 2 * np.pi / 128
    """Angle between consecutive beams in radians (ignored when ``angles`` is given)."""
    range_min: float = 0.05
    """Shortest range the sensor measures (m); nearer returns are reported as -inf."""
    range_max: float = 3.5
    """Longest range (m); no return within it is reported as +inf."""
    angles: tuple[float, ...] | None = None
    """Per-beam angles (rad), for scanners that are not evenly spaced."""
    spec_id: int = 0
    """Identifier a scan names so the receiver knows which description applies (robot wire)."""

    def __post_init__(self) -> None:
        if self.num_beams < 1:
            raise ScanSpecError(f"ScanSpec.num_beams must be >= 1, got {self.num_beams}")
        if not (0.0 <= self.range_min < self.range_max) or not np.isfinite(self.range_max):
            raise ScanSpecError(
                f"ScanSpec needs 0 <= range_min < range_max < inf, got range_min={self.range_min}, "
                f"range_max={self.range_max}"
            )
        if self.angles is not None and len(self.angles) != self.num_beams:
            raise ScanSpecError(
                f"ScanSpec.angles has {len(self.angles)} entries, expected num_beams={self.num_beams}"
            )

    @classmethod
    def evenly_spaced(
        cls, num_beams: int, fov: float = 2 * np.pi, range_min: float = 0.05, range_max: float = 3.5,
        spec_id: int = 0,
    ) -> ScanSpec:
        """Beams spread over ``fov`` radians centred on x forward (360 degrees: no beam repeated)."""
        full = fov >= 2 * np.pi - 1e-9
        inc = fov / num_beams if full else (fov / (num_beams - 1) if num_beams > 1 else 0.0)
        return cls(num_beams, -fov / 2, inc, range_min, range_max, None, spec_id)

    def beam_angles(self) -> np.ndarray:
        """Angles of all beams (float64, radians)."""
        if self.angles is not None:
            return np.asarray(self.angles, dtype=np.float64)
        return self.angle_min + self.angle_increment * np.arange(self.num_beams, dtype=np.float64)

    @property
    def fov(self) -> float:
        """Angular span covered by the beams (radians)."""
        a = self.beam_angles()
        if self.angles is None and self.num_beams * abs(self.angle_increment) >= 2 * np.pi - 1e-9:
            return 2 * np.pi
        return float(a.max() - a.min())


@dataclass
class SensorFrame:
    """One tick of raw sensing, as a robot driver emits it. No true pose, ever."""

    ranges: np.ndarray
    """float32 [num_beams] ranges in metres, REP 117 codes (+inf, NaN, -inf) included."""
    scan: ScanSpec
    """Description of the scanner that produced ``ranges``."""
    odom_delta: np.ndarray
    """float64 [3]: (dx, dy, dtheta) of wheel odometry since the previous frame, expressed in the robot frame
    of the previous frame. Zero on the first frame of an episode."""
    goal: np.ndarray
    """float64 [2]: goal position in the odometry frame, whose origin is the robot's pose at episode start."""
    episode_id: int = 0
    """Changes on a new goal or reset: hidden state, memories and odometry origin reset together."""
    stamp: float = 0.0
    """Time of the scan in seconds (robot clock)."""
    seq: int = 0
    """Sequence number of the frame (robot wire)."""
    extras: dict[str, float] = field(default_factory=dict)
    """Driver-specific scalars (never read by the policy path)."""

    def check(self) -> None:
        """Raise ScanSpecError if ``ranges`` does not fit ``scan``."""
        if self.ranges.shape != (self.scan.num_beams,):
            raise ScanSpecError(
                f"SensorFrame.ranges has shape {self.ranges.shape}, expected ({self.scan.num_beams},) "
                f"from its ScanSpec (spec_id {self.scan.spec_id})"
            )


def delta_from_wheel_speeds(
    v_left: float, v_right: float, track_width: float, dt: float
) -> np.ndarray:
    """Pose delta (dx, dy, dtheta) in the previous robot frame from wheel rim speeds over ``dt`` (exact arc)."""
    v = 0.5 * (v_left + v_right)
    w = (v_right - v_left) / track_width
    dth = w * dt
    if abs(dth) < 1e-9:
        return np.array([v * dt, 0.0, dth])
    r = v / w
    return np.array([r * np.sin(dth), r * (1.0 - np.cos(dth)), dth])
