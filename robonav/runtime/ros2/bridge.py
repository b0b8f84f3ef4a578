"""The ROS 2 bridge: LaserScan, Odometry and a goal pose in, Twist or TwistStamped out; the control loop's Driver.

The message mapping is plain Python on duck-typed messages (anything with the ROS attribute names: rclpy's, or
rosbags' for recorded bags), so it is tested without ROS; rclpy is imported only in robonav.runtime.ros2.node.

`Ros2Bridge` is fed by the node's callbacks (``on_scan``, ``on_odom``, ``on_goal``, on the executor's thread) and
read by the loop (``latest_frame``, on the main thread); one lock guards what they share and is held only to swap
references. Each new goal starts an episode whose origin is the newest odometry pose at that moment: the frame's
goal and odometry are expressed in that origin's frame (SensorFrame). A goal in another frame than the odometry
frame is resolved through ``goal_transform`` (TF2 in the node) when it arrives; a scan from a laser frame other
than the base frame is re-expressed from the base's origin through ``laser_mount`` (robonav.runtime.ros2.tf). Once
the robot is within ``goal_radius`` of the goal, every command becomes a stop and ``status`` is told, once per
goal; ``cancel()`` (an action's cancel) does the same until the next goal. A message that does not map is counted
(``refused``, ``last_reason``) and logged, never raised into the executor. ``health_report()`` is what the node
publishes on /diagnostics (robonav.runtime.ros2.diagnostics); ``goal_outcome`` is what its action server reports.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from robonav.errors import UserError
from robonav.runtime.ros2.diagnostics import LoopHealth
from robonav.runtime.ros2.tf import MountedScan, transform_point
from robonav.sensors.frame import ScanSpec, SensorFrame
from robonav.sensors.odometry import PoseDeltas, pose_delta

__all__ = ["GoalFrameError", "LaserScanError", "PoseError", "Ros2Bridge", "Ros2MessageError", "fill_command",
           "fill_twist", "goal_from_pose_stamped", "pose_from_odometry", "scan_from_laserscan", "status_message",
           "yaw_from_quaternion"]

GoalTransform = Callable[[str], "np.ndarray | None"]
"""(x, y, yaw) of a frame in the odometry frame, now, or None where TF has no transform (yet)."""
LaserMount = Callable[[str], "tuple[tuple[float, float, float], tuple[float, float, float, float]] | None"]
"""(translation xyz, rotation xyzw) of a laser frame in the base frame, or None where TF has none (yet)."""

log = logging.getLogger(__name__)

T = TypeVar("T")


class Ros2MessageError(UserError, ValueError):
    """A ROS 2 message the bridge cannot map (the bridge counts it as refused)."""


class LaserScanError(Ros2MessageError):
    """A sensor_msgs/LaserScan that describes no usable scan (empty, bad angles, bad range limits)."""


class PoseError(Ros2MessageError):
    """An odometry or goal pose that is not finite, or whose orientation is not a rotation."""


class GoalFrameError(Ros2MessageError):
    """A goal in a frame with no transform to the odometry frame (or in another frame, without TF)."""


def scan_from_laserscan(msg: Any, spec_id: int = 0) -> tuple[ScanSpec, np.ndarray]:
    """The ScanSpec and float32 ranges of a sensor_msgs/LaserScan.

    REP 117 codes pass through (+inf: no return within range, NaN: invalid, -inf: too close). A finite reading
    outside [range_min, range_max] is mapped by the same rule: below range_min -> -inf, above range_max -> +inf.
    Raises LaserScanError for an empty scan, a non-finite or non-positive angle_increment, beams that do not end
    at angle_max (within half an increment), or range limits outside 0 <= range_min < range_max < inf.
    """
    ranges = np.array(msg.ranges, dtype=np.float32)  # a copy: the frame owns it
    n = ranges.size
    if ranges.ndim != 1 or n == 0:
        raise LaserScanError(f"LaserScan: ranges must be a non-empty 1-D sequence, got shape {ranges.shape}; "
                             "check the scanner driver")
    a0, inc, a1 = float(msg.angle_min), float(msg.angle_increment), float(msg.angle_max)
    if not (math.isfinite(inc) and inc > 0.0 and math.isfinite(a0) and math.isfinite(a1)):
        raise LaserScanError(
            f"LaserScan: expected finite angles and angle_increment > 0, got angle_min={a0}, angle_max={a1}, "
            f"angle_increment={inc}; a scanner with decreasing angles must be reversed (ranges and angles) first")
    end = a0 + (n - 1) * inc
    if abs(end - a1) > 0.5 * inc + 1e-6:
        raise LaserScanError(
            f"LaserScan: {n} beams from angle_min={a0} by angle_increment={inc} end at {end}, expected about "
            f"angle_max={a1} (within half an increment); the scan's description does not fit its ranges")
    r0, r1 = float(msg.range_min), float(msg.range_max)
    if not (0.0 <= r0 < r1 < math.inf):
        raise LaserScanError(f"LaserScan: expected 0 <= range_min < range_max < inf, got range_min={r0}, "
                             f"range_max={r1}; check the scanner driver's range settings")
    with np.errstate(invalid="ignore"):  # NaN compares False: it stays NaN
        ranges[np.isfinite(ranges) & (ranges < r0)] = -np.inf
        ranges[np.isfinite(ranges) & (ranges > r1)] = np.inf
    return ScanSpec(n, a0, inc, r0, r1, None, spec_id), ranges


def yaw_from_quaternion(x: float, y: float, z: float, w: float) -> float:
    """Heading (rotation about z) of the quaternion (x, y, z, w) in [-pi, pi); need not be normalised."""
    yaw = math.atan2(2.0 * (w * z + x * y), w * w + x * x - y * y - z * z)
    return (yaw + math.pi) % (2.0 * math.pi) - math.pi


def pose_from_odometry(msg: Any) -> np.ndarray:
    """(x, y, yaw) float64 [3] of a nav_msgs/Odometry in its odometry frame (z, roll and pitch are ignored);
    PoseError for a non-finite position or an orientation quaternion that is zero or not finite."""
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    xyzw = (float(q.x), float(q.y), float(q.z), float(q.w))
    out = np.array([float(p.x), float(p.y), 0.0])
    norm = math.sqrt(sum(c * c for c in xyzw))
    if not (np.isfinite(out).all() and math.isfinite(norm) and norm > 1e-6):
        raise PoseError(f"Odometry: expected a finite position and a non-zero finite orientation quaternion, got "
                        f"position ({out[0]}, {out[1]}), orientation (x, y, z, w) = {xyzw}; check the odometry "
                        "source")
    out[2] = yaw_from_quaternion(*xyzw)
    return out


def goal_from_pose_stamped(msg: Any, odom_frame: str, transform: GoalTransform | None = None) -> np.ndarray:
    """(x, y) float64 [2] in ``odom_frame`` of a geometry_msgs/PoseStamped goal (its orientation is not used).
    A goal in another frame goes through ``transform`` (its frame's pose in the odometry frame); GoalFrameError
    where there is none, PoseError for a non-finite position."""
    frame_id = msg.header.frame_id
    p = msg.pose.position
    out = np.array([float(p.x), float(p.y)])
    if not np.isfinite(out).all():
        raise PoseError(f"goal pose: expected a finite position, got ({out[0]}, {out[1]})")
    if frame_id in (odom_frame, ""):
        return out
    if transform is None:
        raise GoalFrameError(
            f"goal pose: expected header.frame_id {odom_frame!r} (the odometry frame), got {frame_id!r}, and TF "
            f"is off: transform the goal into {odom_frame!r} first, or run with use_tf:=true")
    pose = transform(frame_id)
    if pose is None:
        raise GoalFrameError(f"goal pose: no transform from {frame_id!r} to {odom_frame!r} in TF when the goal "
                             "arrived; check that the map -> odom transform is published (a localiser) and resend")
    return transform_point(pose, out)


def fill_twist(twist: Any, v: float, omega: float) -> Any:
    """Set a geometry_msgs/Twist to linear.x = v, angular.z = omega, every other component 0; returns it."""
    lin, ang = twist.linear, twist.angular
    lin.x, lin.y, lin.z = float(v), 0.0, 0.0
    ang.x, ang.y, ang.z = 0.0, 0.0, float(omega)
    return twist


def fill_command(msg: Any, v: float, omega: float, stamp: Any = None, frame_id: str = "") -> Any:
    """Fill a Twist, or a TwistStamped (``msg.twist``; header from ``stamp`` and ``frame_id``); returns it."""
    twist = getattr(msg, "twist", None)
    if twist is None:
        return fill_twist(msg, v, omega)
    fill_twist(twist, v, omega)
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    return msg


def status_message(string_type: Any, event: dict[str, Any]) -> Any:
    """A std_msgs/String (``string_type``) holding ``event`` as one JSON object (keys sorted): what the status
    topic carries. JSON, not action_msgs/GoalStatus: events carry fields no standard message has (the refusal's
    reason, the distance at arrival, the counts), and read with ``ros2 topic echo`` or any language."""
    return string_type(data=json.dumps(event, sort_keys=True))


def _stamp(msg: Any) -> float:
    s = msg.header.stamp
    return float(s.sec) + float(s.nanosec) * 1e-9


class Ros2Bridge:
    """The Driver protocol (robonav.runtime.driver) over ROS 2 callbacks; see the module docstring.

    ``send`` publishes a command (the node passes its cmd_vel publisher's ``publish``); ``twist_factory`` makes an
    empty Twist or TwistStamped (then ``now()`` stamps its header, frame ``base_frame``); ``odom_frame`` is the
    frame goals are resolved to (through ``goal_transform`` where given); ``laser_mount`` places a laser frame
    other than ``base_frame``; ``goal_radius`` (m): arrival; ``status(dict)`` hears of goals accepted, refused and
    reached. ``log_every``: after the first problem of a kind (scan, odom, goal, command, send), at most one log
    line per that many seconds for the kind.
    """

    def __init__(self, send: Callable[[Any], object], *, twist_factory: Callable[[], Any], odom_frame: str = "odom",
                 base_frame: str = "base_link", goal_transform: GoalTransform | None = None,
                 laser_mount: LaserMount | None = None, goal_radius: float = 0.0,
                 status: Callable[[dict[str, Any]], object] | None = None, now: Callable[[], Any] | None = None,
                 log_every: float = 1.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.send = send
        self.odom_frame = odom_frame
        self.base_frame = base_frame
        self.twist_factory = twist_factory
        self.goal_transform = goal_transform
        self.laser_mount = laser_mount
        self.goal_radius = goal_radius
        self.status = status
        self.now = now
        self.log_every = log_every
        self.monotonic = monotonic
        self.health = LoopHealth()
        """Tick and answer timing for /diagnostics (fed by ``on_tick`` and ``publish``)."""
        self.holding = False
        """Whether the current goal was canceled (commands are stops until a new goal)."""
        self.distance: float | None = None
        """Metres from the newest frame's pose to the goal (None before the first frame of a goal)."""
        self.arrived = False
        """Whether the robot is within goal_radius of the current goal (commands are stops until a new goal)."""
        self.arrivals = 0
        """Goals reached."""
        self._mounts: dict[tuple[str, ScanSpec], MountedScan | None] = {}
        self.scans = 0
        """LaserScan messages mapped."""
        self.odoms = 0
        """Odometry messages mapped."""
        self.goals = 0
        """Goals accepted (each starts an episode)."""
        self.frames = 0
        """SensorFrames handed out (the newest frame's seq)."""
        self.refused = 0
        """Messages that failed mapping (dropped)."""
        self.last_reason: str | None = None
        """Why the newest refused message failed (or the newest command or send problem)."""
        self.sent = 0
        """Twists sent (commands and stops)."""
        self.send_errors = 0
        """Sends that raised (the robot's own timeout covers the lost command)."""
        self.episode_id = 0
        """Current episode: 0 before the first goal, then +1 per goal."""
        self.closed = False
        self._lock = threading.Lock()
        self._odom: np.ndarray | None = None  # newest odometry pose; replaced, never mutated
        self._goal: np.ndarray | None = None  # newest goal (odometry frame)
        self._origin: np.ndarray | None = None  # odometry pose at the episode start
        self._goal_rel: np.ndarray | None = None  # goal in the origin's frame
        self._spec: ScanSpec | None = None
        self._pending: tuple[np.ndarray, ScanSpec, float, np.ndarray | None] | None = None  # newest unread scan
        self._frame: SensorFrame | None = None
        self._deltas = PoseDeltas()  # used by latest_frame only (the loop's thread)
        self._logged_at: dict[str, float] = {}
        self._seen: dict[str, float | None] = {"scan": None, "odom": None}  # monotonic time of the newest message
        self._taken_at: float | None = None  # perf_counter when the loop took the frame it answers next

    # -- the executor's side ------------------------------------------------------------------------------------
    def on_scan(self, msg: Any) -> None:
        """A sensor_msgs/LaserScan: becomes the pending scan, paired with the newest odometry pose."""
        spec_id = self._spec.spec_id if self._spec is not None else 0
        got = self._map("scan", lambda: self._mounted(msg, *scan_from_laserscan(msg, spec_id)))
        if got is None:
            return
        spec, ranges, stamp = got
        with self._lock:
            if spec == self._spec:
                spec = self._spec  # the same object while the description holds (the loop compares by identity)
            elif self._spec is not None:  # a changed description gets a new id
                spec = dataclasses.replace(spec, spec_id=self._spec.spec_id + 1)
            self._spec = spec
            self._pending = (ranges, spec, stamp, self._odom)
            self.scans += 1
        self._seen["scan"] = self.monotonic()

    def _mounted(self, msg: Any, spec: ScanSpec, ranges: np.ndarray) -> tuple[ScanSpec, np.ndarray, float]:
        """The scan re-expressed from the base frame where its laser frame is another (LaserScanError without a
        transform yet)."""
        frame_id = msg.header.frame_id
        if self.laser_mount is None or frame_id in (self.base_frame, ""):
            return spec, ranges, _stamp(msg)
        key = (frame_id, spec)
        if key not in self._mounts:
            mount = self.laser_mount(frame_id)
            if mount is None:
                raise LaserScanError(f"LaserScan: no transform from {frame_id!r} to {self.base_frame!r} in TF; "
                                     "publish the laser's mount (robot_state_publisher or a static transform)")
            self._mounts[key] = MountedScan(spec, *mount)
        mounted = self._mounts[key]
        assert mounted is not None
        return mounted.spec, mounted(ranges), _stamp(msg)

    def on_odom(self, msg: Any) -> None:
        """A nav_msgs/Odometry: the newest pose (and the origin of a goal that waited for one)."""
        pose = self._map("odom", lambda: pose_from_odometry(msg))
        if pose is None:
            return
        with self._lock:
            self._odom = pose
            if self._goal is not None and self._origin is None:
                self._start_episode()
            self.odoms += 1
        self._seen["odom"] = self.monotonic()

    def on_goal(self, msg: Any) -> int | None:
        """A geometry_msgs/PoseStamped goal (in any frame TF resolves to the odometry frame): a new episode.
        Returns the goal's number (``goals`` after it), or None where it was refused."""
        goal = self._map("goal", lambda: goal_from_pose_stamped(msg, self.odom_frame, self.goal_transform))
        if goal is None:
            self._tell({"state": "refused", "reason": self.last_reason})
            return None
        with self._lock:
            self._goal = goal
            self._origin = self._goal_rel = None
            self.arrived = self.holding = False
            self.distance = None
            if self._odom is not None:
                self._start_episode()
            self.goals += 1
            number = self.goals
        self._tell({"state": "active", "goal": [float(goal[0]), float(goal[1])], "frame_id": self.odom_frame})
        return number

    def cancel(self) -> None:
        """Cancel the current goal: a stop now, and stops until the next goal (the status topic says canceled)."""
        with self._lock:
            if self.goals == 0 or self.holding:
                return
            self.holding = True
        self._send(0.0, 0.0)
        self._tell({"state": "canceled", "episode": self.episode_id})

    def goal_outcome(self, number: int) -> str:
        """Where goal ``number`` (from on_goal) stands: 'active', 'arrived', 'canceled', 'preempted' (a newer goal
        came) or 'closed' (the node is shutting down)."""
        with self._lock:
            if self.closed:
                return "closed"
            if self.goals != number:
                return "preempted"
            if self.holding:
                return "canceled"
            return "arrived" if self.arrived else "active"

    def _start_episode(self) -> None:
        """New episode from the newest odometry pose (lock held)."""
        assert self._odom is not None and self._goal is not None
        self._origin = self._odom
        self._goal_rel = pose_delta(self._origin, np.array([self._goal[0], self._goal[1], 0.0]))[:2].copy()
        self.episode_id += 1

    # -- the loop's side (the Driver protocol) ------------------------------------------------------------------
    def frame_ready(self) -> bool:
        """Whether latest_frame() would hand out a new frame now; takes nothing (the loop's align waits on it)."""
        with self._lock:
            return not (self._pending is None or self._goal_rel is None or self._origin is None or self._odom is None)

    def latest_frame(self) -> SensorFrame | None:
        """A new SensorFrame if a scan arrived since the last call (and odometry and a goal are known), else the
        previous frame (None before the first)."""
        with self._lock:
            if self._pending is None or self._goal_rel is None or self._origin is None or self._odom is None:
                return self._frame
            ranges, spec, stamp, pose = self._pending
            self._pending = None
            pose = self._odom if pose is None else pose
            origin, goal, episode = self._origin, self._goal_rel, self.episode_id
        relative = pose_delta(origin, pose)  # the scan's pose in the episode's frame
        delta = self._deltas.delta(episode, relative)
        self.frames += 1
        self._frame = SensorFrame(ranges, spec, delta, goal.copy(), episode, stamp, self.frames)
        self._taken_at = time.perf_counter()
        distance = self.distance = math.hypot(goal[0] - relative[0], goal[1] - relative[1])
        if not self.arrived and distance < self.goal_radius:
            self.arrived = True
            self.arrivals += 1
            self._tell({"state": "arrived", "episode": episode, "distance": distance})
        return self._frame

    @property
    def origin(self) -> np.ndarray | None:
        """The current episode's origin: the odometry pose (x, y, yaw) when its goal arrived (None before)."""
        return self._origin

    def _tell(self, status: dict[str, Any]) -> None:
        if self.status is None:
            return
        try:
            self.status({**status, "goals": self.goals, "arrivals": self.arrivals})
        except Exception as e:  # a failed status publish must not stop the loop
            self._note("send", f"status publish failed: {e!r}")

    def publish(self, v: float, omega: float, answers_seq: int) -> None:
        """Send a command (v m/s, omega rad/s); a non-finite command, or any once the goal is reached, is sent as a
        stop. ``answers_seq`` is not sent (a Twist has no field for it)."""
        if not (math.isfinite(v) and math.isfinite(omega)):
            self._note("command", f"non-finite command ({v}, {omega}) sent as a stop")
            v = omega = 0.0
        if self.arrived or self.holding:
            v = omega = 0.0
        self._send(v, omega)
        if self._taken_at is not None:
            self.health.answered(time.perf_counter() - self._taken_at)
            self._taken_at = None

    def on_tick(self, now: float, on_time: bool, stopped: bool) -> None:
        """The loop's on_tick (robonav.runtime.run chains it): tick timing for /diagnostics."""
        self.health.tick(now, on_time, stopped)

    def health_report(self) -> dict[str, Any]:
        """The loop's window (LoopHealth.window), the age of the newest scan and odometry (s, None before the
        first) and the goal's state: what /diagnostics says (robonav.runtime.ros2.diagnostics)."""
        now = self.monotonic()
        age = {k: None if t is None else now - t for k, t in self._seen.items()}
        with self._lock:
            state = ("idle" if self.goals == 0 else "canceled" if self.holding else
                     "arrived" if self.arrived else "active")
            goal = {"state": state, "goals": self.goals, "arrivals": self.arrivals, "episode": self.episode_id,
                    "distance_m": self.distance}
        return {"loop": self.health.window(),
                "scan": {"age_s": age["scan"], "received": self.scans, "messages_refused": self.refused},
                "odom": {"age_s": age["odom"], "received": self.odoms},
                "goal": goal}

    def stop(self) -> None:
        """Send a zero Twist."""
        self._taken_at = None  # a refused frame is answered by a stop: no answer time
        self._send(0.0, 0.0)

    def close(self) -> None:
        """Send a last stop, then send nothing more; idempotent."""
        if not self.closed:
            self._send(0.0, 0.0)
            self.closed = True

    def _send(self, v: float, omega: float) -> None:
        if self.closed:
            return
        try:
            stamp = self.now() if self.now is not None else None
            self.send(fill_command(self.twist_factory(), v, omega, stamp, self.base_frame))
            self.sent += 1
        except Exception as e:  # a failed publish must not stop the loop
            self.send_errors += 1
            self._note("send", f"send failed: {e!r}")

    def _map(self, kind: str, mapping: Callable[[], T]) -> T | None:
        """``mapping()``, or None after counting and logging its error (never raised into the executor)."""
        try:
            return mapping()
        except Exception as e:
            with self._lock:
                self.refused += 1
            self._note(kind, f"{kind} message refused: {e}")
            return None

    def _note(self, kind: str, message: str) -> None:
        self.last_reason = message
        now = time.monotonic()
        last = self._logged_at.get(kind)
        if last is None or now - last >= self.log_every:
            self._logged_at[kind] = now
            log.warning("Ros2Bridge (%d refused, %d send errors): %s", self.refused, self.send_errors, message)
