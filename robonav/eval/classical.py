"""The classical baseline: optimistic A* over the robot's own obstacle memory, pure pursuit, stuck recovery.

What a robotics user would build with the same sensors as the policy and nothing privileged (`ClassicalPolicy`
reads only each env's SensorFrame; it never touches the simulator):

1. localisation: wheel odometry corrected by scan-to-map matching (robonav.sensors.scanmatch; without it the
   nominal odometry drifts past the goal radius in most episodes); the corrected delta is what each env's own
   Preprocessor integrates, so its pose and obstacle memory share the corrected odometry frame;
2. mapping: the Preprocessor's obstacle memory (log-odds, 0.125 m cells, odometry frame);
3. planning: every ``replan_every`` ticks (and whenever the path is used up or missing), A* on a cost map of the
   known area (robonav.eval.planner), unknown cells counting as free: the path runs toward the goal through
   unexplored space, which makes it frontier exploration aimed at the goal, replanned as walls appear;
4. control: pure pursuit of the path with a lookahead, turning in place when the heading error is large,
   slowing near the goal (straight at the goal while no path exists);
5. recovery: when the robot has not moved for ``stuck_ticks`` ticks although commanded forward (the safety layer
   holds it before something the map misses), it backs off and marks the spot ahead as an obstacle for the
   planner.

Commands go through the env's safety layer like every policy's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from robonav.sensors.frame import SensorFrame
from robonav.sensors.planner import astar, cost_map, path_points, search_window
from robonav.sensors.preprocessor import Preprocessor
from robonav.sensors.scanmatch import ScanMatchConfig, ScanMatcher
from robonav.sensors.spec import PreprocessorConfig

__all__ = ["ClassicalConfig", "ClassicalPolicy"]


@dataclass(frozen=True)
class ClassicalConfig:
    """Settings of the classical baseline (SI units)."""

    robot_radius: float = 0.18
    """Footprint radius (m) the planner keeps from obstacles."""
    v_max: float = 0.5
    """Cruise speed (m/s)."""
    omega_max: float = 2.0
    """Largest turn rate commanded (rad/s)."""
    obstacle_threshold: int = 0
    """A memory cell is an obstacle when its log-odds (stored units) exceed this; unknown (0) counts as free."""
    lethal_margin: float = 0.05
    """Cells nearer than robot_radius + this to an obstacle cost ``lethal_cost`` per metre."""
    soft_radius: float = 0.5
    """Cells nearer than this (m) to an obstacle cost more, rising toward the lethal zone: paths keep to the
    middle of corridors."""
    soft_weight: float = 3.0
    """Extra cost per metre at the edge of the lethal zone."""
    lethal_cost: float = 1000.0
    """Cost per metre inside the lethal zone: a gap the body does not fit (often a hole in the map where grazing
    beams cleared a wall) is a last resort worth a detour of up to this many metres per metre, not a wall."""
    window_margin: float = 2.0
    """The planner searches the box around the known cells, the robot and the goal, grown by this (m)."""
    replan_every: int = 5
    """Ticks between plans."""
    lookahead: float = 0.6
    """Pure-pursuit lookahead along the path (m)."""
    turn_in_place: float = 1.0
    """Heading error (rad) above which the robot turns on the spot."""
    heading_gain: float = 2.5
    """Turn rate per radian of heading error (1/s)."""
    goal_slow_radius: float = 0.6
    """Within this distance (m) of the goal the speed scales down with the distance."""
    stuck_ticks: int = 20
    """Consecutive ticks of commanding forward motion without getting it (the safety layer or a wall holds the
    robot) that count as stuck."""
    stuck_speed: float = 0.25
    """A tick holds the robot when it moves at less than this fraction of the forward speed commanded before."""
    backoff_ticks: int = 8
    """Ticks of reversing when stuck."""
    backoff_speed: float = 0.15
    """Reversing speed (m/s) when stuck."""
    scan_matching: bool = True
    """Correct odometry by scan-to-map matching (off: trust the wheel odometry, the ablation)."""
    scan_match: ScanMatchConfig = field(default_factory=ScanMatchConfig)
    """Settings of the scan matcher."""
    preprocessor: PreprocessorConfig = field(default_factory=PreprocessorConfig)
    """Settings of each env's Preprocessor (its memory grid is the planner's map)."""


def _wrap(a: float) -> float:
    return (a + math.pi) % (2.0 * math.pi) - math.pi


def _compose(pose: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """``pose`` moved by ``delta`` (dx, dy, dtheta in the frame of ``pose``), as the Preprocessor integrates."""
    c, s = math.cos(pose[2]), math.sin(pose[2])
    return np.array([pose[0] + c * delta[0] - s * delta[1], pose[1] + s * delta[0] + c * delta[1],
                     _wrap(pose[2] + delta[2])])


def _relative(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The delta that takes pose ``a`` to pose ``b``, in the frame of ``a`` (inverse of `_compose`)."""
    c, s = math.cos(a[2]), math.sin(a[2])
    dx, dy = b[0] - a[0], b[1] - a[1]
    return np.array([c * dx + s * dy, -s * dx + c * dy, _wrap(b[2] - a[2])])


class _Navigator:
    """One env's localisation, map, plan and controller state."""

    def __init__(self, cfg: ClassicalConfig) -> None:
        self.cfg = cfg
        self.pre = Preprocessor(cfg.preprocessor)
        self.matcher = ScanMatcher(cfg.scan_match) if cfg.scan_matching else None
        self.reset()

    def reset(self) -> None:
        self.pre.reset()
        if self.matcher is not None:
            self.matcher.reset()
        self.episode: int | None = None
        self.command = np.zeros(2)
        self.path: np.ndarray | None = None  # [K, 2] odometry-frame points, robot end first
        self.path_index = 0
        self.since_plan = 0
        self.held = 0  # consecutive ticks the robot did not move as commanded
        self.last: tuple[float, float, float] | None = None  # (x, y, stamp) of the previous tick
        self.backoff = 0
        self.marks: list[tuple[float, float]] = []  # odometry-frame points the planner treats as obstacles

    # -- localisation ---------------------------------------------------------------------------------------
    def localise(self, frame: SensorFrame) -> None:
        """Feed the frame (odometry corrected by scan matching) to the Preprocessor."""
        if frame.episode_id != self.episode:
            self.reset()
            self.episode = frame.episode_id
        if self.matcher is not None:
            before = self.pre.pose  # the origin on an episode's first frame
            predicted = _compose(before, np.asarray(frame.odom_delta, dtype=np.float64))
            matched = self.matcher.update(predicted, frame.ranges, frame.scan.beam_angles(), frame.scan.range_min,
                                          frame.scan.range_max)
            frame = replace(frame, odom_delta=_relative(before, matched))
        self.pre(frame, self.command)

    # -- planning -------------------------------------------------------------------------------------------
    def plan(self, goal: np.ndarray) -> None:
        """A* from the robot to the goal over the memory's known box (see the module docstring)."""
        cfg = self.cfg
        res = cfg.preprocessor.grid_resolution
        occ, _ = self.pre.memory(0)  # [x cell, y cell] log-odds units
        n = occ.shape[0]
        ox, oy = self.pre.grid_origin
        pose = self.pre.pose

        def cell(x: float, y: float) -> tuple[int, int]:
            return (min(max(math.floor((x - ox) / res), 0), n - 1), min(max(math.floor((y - oy) / res), 0), n - 1))

        w = search_window(occ, (ox, oy), res, (pose[0], pose[1]), (goal[0], goal[1]), cfg.window_margin)
        lo_i, lo_j = w.lo_i, w.lo_j
        blocked = w.view(occ) > cfg.obstacle_threshold
        if self.matcher is not None:
            blocked |= self.matcher.walls((ox + lo_i * res, oy + lo_j * res), res, blocked.shape)
        cost = cost_map(blocked, res, cfg.robot_radius + cfg.lethal_margin, cfg.soft_radius, cfg.soft_weight,
                        cfg.lethal_cost)
        k = math.ceil(cfg.robot_radius / res)
        for mx, my in self.marks:  # where the robot got stuck: a square of lethal cost around each
            mi, mj = cell(mx, my)
            a, b = max(mi - lo_i - k, 0), max(mi - lo_i + k + 1, 0)
            c, d = max(mj - lo_j - k, 0), max(mj - lo_j + k + 1, 0)
            np.maximum(cost[a:b, c:d], cfg.lethal_cost, out=cost[a:b, c:d])
        cells, total = astar(cost, res, w.start, w.goal)
        self.since_plan = 0
        self.path_index = 0
        found = math.isfinite(total) and len(cells) > 0
        self.path = path_points(cells, w, (ox, oy), res, goal) if found else None

    # -- control --------------------------------------------------------------------------------------------
    def _target(self, pose: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """The pure-pursuit point: ``lookahead`` metres along the path past the path point nearest the robot."""
        path = self.path
        if path is None or len(path) < 2:
            return goal
        ahead = path[self.path_index:self.path_index + 40]
        self.path_index += int(np.argmin(np.hypot(ahead[:, 0] - pose[0], ahead[:, 1] - pose[1])))
        left = self.cfg.lookahead
        k = self.path_index
        point = path[k]
        while k + 1 < len(path):
            seg = float(np.hypot(*(path[k + 1] - path[k])))
            if seg >= left:
                return path[k] + (path[k + 1] - path[k]) * (left / seg)
            left -= seg
            k += 1
            point = path[k]
        return point

    def _stuck(self, pose: np.ndarray, stamp: float) -> bool:
        """True after ``stuck_ticks`` ticks in a row of commanding forward motion and not moving."""
        last, self.last = self.last, (float(pose[0]), float(pose[1]), stamp)
        if last is None or stamp <= last[2] or self.command[0] < 0.1:
            self.held = 0
            return False
        speed = math.hypot(pose[0] - last[0], pose[1] - last[1]) / (stamp - last[2])
        self.held = self.held + 1 if speed < self.cfg.stuck_speed * self.command[0] else 0
        return self.held >= self.cfg.stuck_ticks

    def act(self, frame: SensorFrame) -> np.ndarray:
        """Command (v, omega) for this frame."""
        cfg = self.cfg
        self.localise(frame)
        pose = self.pre.pose
        goal = np.asarray(frame.goal, dtype=np.float64)
        if self.backoff > 0:
            self.backoff -= 1
            self.command = np.array([-cfg.backoff_speed, 0.0])
            if self.backoff == 0:
                self.plan(goal)
            return self.command
        if self._stuck(pose, frame.stamp):
            ahead = pose[:2] + (cfg.robot_radius + 0.2) * np.array([math.cos(pose[2]), math.sin(pose[2])])
            self.marks.append((float(ahead[0]), float(ahead[1])))
            self.held = 0
            self.backoff = cfg.backoff_ticks
            self.command = np.array([-cfg.backoff_speed, 0.0])
            return self.command
        self.since_plan += 1
        if self.path is None or self.since_plan >= cfg.replan_every or self.path_index >= len(self.path) - 2:
            self.plan(goal)
        target = self._target(pose, goal)
        err = _wrap(math.atan2(target[1] - pose[1], target[0] - pose[0]) - pose[2])
        dist = float(np.hypot(goal[0] - pose[0], goal[1] - pose[1]))
        omega = float(np.clip(cfg.heading_gain * err, -cfg.omega_max, cfg.omega_max))
        if abs(err) > cfg.turn_in_place:
            v = 0.0
        else:
            v = cfg.v_max * math.cos(err) ** 2 * min(1.0, 0.2 + dist / cfg.goal_slow_radius)
        self.command = np.array([v, omega])
        return self.command


class ClassicalPolicy:
    """Frontier-seeking A* navigator for every env of a run; implements robonav.eval.runner.Policy.

    Reads only ``frames`` (the raw SensorFrames a robot driver gives); ``obs`` and ``sim`` are ignored.
    """

    def __init__(self, num_envs: int, config: ClassicalConfig | None = None) -> None:
        self.config = config or ClassicalConfig()
        self.navigators = [_Navigator(self.config) for _ in range(num_envs)]

    def reset(self, env_ids: np.ndarray) -> None:
        """Forget the map, pose, plan and recovery state of ``env_ids``."""
        for i in np.asarray(env_ids, dtype=np.int64).reshape(-1):
            self.navigators[int(i)].reset()

    def act(self, obs: np.ndarray, frames: list[SensorFrame | None], sim: object = None) -> np.ndarray:
        """Commands [N, 2] from each env's latest frame (zero for an env without one)."""
        out = np.zeros((len(self.navigators), 2))
        for i, nav in enumerate(self.navigators):
            frame = frames[i]
            if frame is not None:
                out[i] = nav.act(frame)
        return out
