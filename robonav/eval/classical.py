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
   planner for ``mark_ticks`` ticks.

Moving obstacles (people), handled as a tuned Nav2 stack would, from the scan alone:
- a return is *dynamic* when it lands in a cell the obstacle memory once held as clearly free (log-odds at or
  below ``free_log_odds``, and its neighbours too), in front of where the previous scan saw through, or near a
  dynamic return of the last ``track_ticks`` ticks that had a neighbour (a person who stops is still a person; a
  lone spurious return is not one): it is kept out of the
  scan matcher (its map never forgets, and a moving point would pull the pose), out of the obstacle memory and so
  out of the global plan (a person in a corridor is not a wall to plan around);
- the speed is limited (``people_speed``) only for people within ``people_radius`` in the robot's way (a
  corridor ahead as wide as the body plus ``people_lane``) or coming closer;
- when dynamic returns block the way ahead the robot waits; it backs off only while one comes closer than
  ``backoff_gap`` (backing away from someone who has stopped only invites them on); a stall with people close
  ahead is a wait, not a wall to mark;
- after ``wait_ticks`` of waiting it plans around them (inflated by ``people_inflation``) and takes that way
  only when it is at most ``detour_extra`` metres longer than the way through them (in a maze without a loop
  the way round is a long exploration: waiting for the person to move or turn back is quicker); the people
  count as obstacles for the next ``detour_ticks`` ticks.

Commands go through the env's safety layer like every policy's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from robonav.sensors.frame import SensorFrame
from robonav.sensors.planner import Window, astar, cost_map, path_points, search_window
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
    mark_ticks: int = 150
    """Ticks a stuck mark stays an obstacle for the planner (what held the robot may have been a person)."""
    free_log_odds: float = -1.5
    """A memory cell at or below this log-odds has been seen clearly free: a return in it is dynamic."""
    people_radius: float = 1.2
    """Dynamic returns nearer than this (m) beyond the robot's body, in its way or coming closer, limit its speed
    to ``people_speed``."""
    people_speed: float = 0.3
    """Speed limit (m/s) near people in the way."""
    people_lane: float = 0.35
    """Half-width (m) beyond the body of the corridor ahead that counts as the robot's way."""
    approach_speed: float = 0.1
    """A person whose gap to the robot shrinks faster than this (m/s) is coming closer."""
    track_ticks: int = 50
    """Ticks a dynamic return keeps the returns near it (within ``track_radius``) dynamic."""
    track_radius: float = 0.25
    """Distance (m) from a recent dynamic return within which a return is dynamic too."""
    moved_margin: float = 0.2
    """A return this much (m) in front of where the previous scan saw through is dynamic."""
    wait_gap: float = 0.45
    """The robot waits while a dynamic return lies ahead (within 50 degrees of its heading) nearer than this (m)
    beyond its body."""
    backoff_gap: float = 0.2
    """It reverses while one comes closer ahead nearer than this (m) beyond its body."""
    wait_ticks: int = 20
    """Ticks of waiting before it tries to plan around the people in the way."""
    detour_ticks: int = 50
    """Ticks the people in the way count as obstacles for the planner after a wait."""
    detour_extra: float = 6.0
    """A way around the people is taken only when it costs at most this many metres more than the way through."""
    people_inflation: float = 0.3
    """Radius (m) around each dynamic return that is an obstacle when planning around people (a body's size)."""
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
        self.marks: list[tuple[float, float, int]] = []  # odometry-frame points the planner treats as obstacles
        self.tick = 0
        self.seen_free: np.ndarray | None = None  # [x cell, y cell] of the memory grid: once clearly free
        self.free_core: np.ndarray | None = None  # seen_free cells whose 8 neighbours are seen_free too
        self.seen_origin = (math.nan, math.nan)
        self.people = np.zeros((0, 2))  # this scan's dynamic returns, robot frame
        self.people_odom = np.zeros((0, 2))  # the same, odometry frame
        self.previous: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (pose, ranges, angles) of last scan
        self.waited = 0
        self.detour_until = -1
        self.track: list[tuple[int, np.ndarray]] = []  # (tick, [K, 2] odometry-frame dynamic returns) of late ticks
        self.last_gap = math.inf  # the previous tick's gap to the nearest person ahead (m)
        self.dt = 0.1  # seconds between the last two frames
        self.stamp = math.inf  # the last frame's time stamp

    # -- localisation ---------------------------------------------------------------------------------------
    def localise(self, frame: SensorFrame) -> None:
        """Feed the frame (odometry corrected by scan matching) to the Preprocessor."""
        if frame.episode_id != self.episode:
            self.reset()
            self.episode = frame.episode_id
        before = self.pre.pose  # the origin on an episode's first frame
        predicted = _compose(before, np.asarray(frame.odom_delta, dtype=np.float64))
        angles = frame.scan.beam_angles()
        raw = np.asarray(frame.ranges, dtype=np.float64)
        ranges = self._split_dynamic(predicted, raw, angles, frame.scan.range_max)
        pose = predicted
        if self.matcher is not None:
            pose = self.matcher.update(predicted, ranges, angles, frame.scan.range_min, frame.scan.range_max)
            frame = replace(frame, odom_delta=_relative(before, pose))
        self.previous = (pose, raw, angles)
        if len(self.people):  # people stay out of the map: the local rules below avoid them
            frame = replace(frame, ranges=ranges.astype(np.float32))
        self.pre(frame, self.command)

    def _split_dynamic(self, pose: np.ndarray, ranges: np.ndarray, angles: np.ndarray,
                       range_max: float) -> np.ndarray:
        """Find this scan's dynamic returns (``self.people``, robot frame); return the ranges without them (NaN).

        Dynamic: in a cell seen clearly free before (`free_core`), or in front of where the previous scan saw
        through (all three previous beams around its bearing reached ``moved_margin`` farther)."""
        self.people = np.zeros((0, 2))
        ok = np.isfinite(ranges)
        if not ok.any():
            return ranges
        px, py = ranges[ok] * np.cos(angles[ok]), ranges[ok] * np.sin(angles[ok])
        c, s = math.cos(pose[2]), math.sin(pose[2])
        wx, wy = pose[0] + c * px - s * py, pose[1] + s * px + c * py
        dyn = np.zeros(len(px), dtype=bool)
        seen = self.free_core
        if seen is not None:
            res = self.cfg.preprocessor.grid_resolution
            i = np.floor((wx - self.seen_origin[0]) / res).astype(np.int64)
            j = np.floor((wy - self.seen_origin[1]) / res).astype(np.int64)
            n = seen.shape[0]
            inside = (i >= 0) & (i < n) & (j >= 0) & (j < n)
            dyn[inside] = seen[i[inside], j[inside]]
        if self.previous is not None and len(angles) > 2:
            p0, r0, a0 = self.previous
            if len(a0) == len(angles):
                far = np.where(np.isnan(r0), -math.inf, np.where(np.isinf(r0), range_max, r0))
                c0, s0 = math.cos(p0[2]), math.sin(p0[2])
                dx, dy = wx - p0[0], wy - p0[1]
                d = np.hypot(dx, dy)
                bearing = np.arctan2(-s0 * dx + c0 * dy, c0 * dx + s0 * dy)
                inc = float(a0[1] - a0[0])
                k = np.rint((bearing - a0[0]) / inc).astype(np.int64)
                full = abs(inc * len(a0) - 2 * math.pi) < 1e-6
                k = np.mod(k, len(a0)) if full else k
                valid = (k >= 1) & (k < len(a0) - 1) if not full else np.ones(len(k), dtype=bool)
                kk = np.clip(k, 0, len(a0) - 1)
                lo = np.minimum(np.minimum(far[(kk - 1) % len(a0)], far[kk]), far[(kk + 1) % len(a0)])
                dyn |= valid & (lo > d + self.cfg.moved_margin)
        core = dyn.copy()  # only returns found by the two rules above extend the track: it cannot creep along a wall
        self.track = [(t, pts) for t, pts in self.track if t > self.tick - self.cfg.track_ticks]
        if self.track:
            near = np.concatenate([pts for _, pts in self.track])  # [K, 2]
            for a in range(0, len(near), 256):  # bounded memory: [returns, 256] distances at a time
                chunk = near[a:a + 256]
                d2 = (wx[:, None] - chunk[None, :, 0]) ** 2 + (wy[:, None] - chunk[None, :, 1]) ** 2
                dyn |= (d2 <= self.cfg.track_radius ** 2).any(axis=1)
        if core.sum() >= 2:  # a body gives neighbouring returns; a lone one (sensor noise) seeds no track
            cx, cy = wx[core], wy[core]
            d2 = (cx[:, None] - cx[None, :]) ** 2 + (cy[:, None] - cy[None, :]) ** 2  # [K, K]
            body = (d2 <= self.cfg.track_radius ** 2).sum(axis=1) >= 2  # itself and one more
            if body.any():
                self.track.append((self.tick, np.stack([cx[body], cy[body]], axis=1)))
        if not dyn.any():
            return ranges
        self.people = np.stack([px[dyn], py[dyn]], axis=1)
        self.people_odom = np.stack([wx[dyn], wy[dyn]], axis=1)
        out = ranges.copy()
        out[np.flatnonzero(ok)[dyn]] = np.nan
        return out

    def _update_seen_free(self, occ: np.ndarray) -> None:
        """Add the memory's clearly free cells to ``seen_free`` (restarted when the grid recentres)."""
        origin = self.pre.grid_origin
        if self.seen_free is None or origin != self.seen_origin:
            self.seen_free = np.zeros(occ.shape, dtype=bool)
            self.seen_origin = origin
        self.seen_free |= occ <= self._free_units
        # Dynamic returns must land in a clearly free cell whose 8 neighbours are clearly free too: a wall's own
        # returns fall, with range noise, into the free cell in front of its face, never into such a one.
        core = self.seen_free.copy()
        core[1:, :] &= self.seen_free[:-1, :]
        core[:-1, :] &= self.seen_free[1:, :]
        core2 = core.copy()
        core2[:, 1:] &= core[:, :-1]
        core2[:, :-1] &= core[:, 1:]
        self.free_core = core2

    @property
    def _free_units(self) -> int:
        return round(self.cfg.free_log_odds / self.cfg.preprocessor.log_odds_quantum)

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

        self._update_seen_free(occ)
        w = search_window(occ, (ox, oy), res, (pose[0], pose[1]), (goal[0], goal[1]), cfg.window_margin)
        lo_i, lo_j = w.lo_i, w.lo_j
        blocked = w.view(occ) > cfg.obstacle_threshold
        assert self.free_core is not None
        free = w.view(self.free_core)
        if self.tick >= self.detour_until:  # people are not walls: plan through them (see the module docstring)
            blocked &= ~free
        if self.matcher is not None:  # a person the matcher took for a wall before the cell was seen free is not one
            blocked |= self.matcher.walls((ox + lo_i * res, oy + lo_j * res), res, blocked.shape) & ~free
        self.marks = [mk for mk in self.marks if mk[2] > self.tick]
        cells, total = self._search(blocked, w, cell)
        if self.tick < self.detour_until and len(self.people_odom):  # around the people in the way, if not far
            around = blocked.copy()
            r = cfg.people_inflation
            for x, y in self.people_odom:
                i0, j0 = math.floor((x - r - ox) / res) - lo_i, math.floor((y - r - oy) / res) - lo_j
                i1, j1 = math.floor((x + r - ox) / res) - lo_i + 1, math.floor((y + r - oy) / res) - lo_j + 1
                ii = np.arange(max(i0, 0), min(i1, around.shape[0]))
                jj = np.arange(max(j0, 0), min(j1, around.shape[1]))
                cx, cy = ox + (ii + lo_i + 0.5) * res, oy + (jj + lo_j + 0.5) * res
                disc = (cx[:, None] - x) ** 2 + (cy[None, :] - y) ** 2 <= r * r  # [len(ii), len(jj)]
                around[np.ix_(ii, jj)] |= disc
            cells2, total2 = self._search(around, w, cell)
            if math.isfinite(total2) and total2 <= total + cfg.detour_extra:
                cells, total = cells2, total2
        self.since_plan = 0
        self.path_index = 0
        found = math.isfinite(total) and len(cells) > 0
        self.path = path_points(cells, w, (ox, oy), res, goal) if found else None

    def _search(self, blocked: np.ndarray, w: Window,
                cell: Callable[[float, float], tuple[int, int]]) -> tuple[np.ndarray, float]:
        """A* over the cost map of ``blocked`` (window ``w``) with the stuck marks added: (cells, cost)."""
        cfg = self.cfg
        res = cfg.preprocessor.grid_resolution
        cost = cost_map(blocked, res, cfg.robot_radius + cfg.lethal_margin, cfg.soft_radius, cfg.soft_weight,
                        cfg.lethal_cost)
        k = math.ceil(cfg.robot_radius / res)
        for mx, my, _ in self.marks:  # where the robot got stuck: a square of lethal cost around each
            mi, mj = cell(mx, my)
            a, b = max(mi - w.lo_i - k, 0), max(mi - w.lo_i + k + 1, 0)
            c, d = max(mj - w.lo_j - k, 0), max(mj - w.lo_j + k + 1, 0)
            np.maximum(cost[a:b, c:d], cfg.lethal_cost, out=cost[a:b, c:d])
        return astar(cost, res, w.start, w.goal)

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

    def _person_ahead(self, reach: float) -> bool:
        """A dynamic return lies in the front half nearer than ``reach`` (m) beyond the body."""
        p = self.people
        return bool(((p[:, 0] > 0) & (np.hypot(p[:, 0], p[:, 1]) < reach + self.cfg.robot_radius)).any())

    def act(self, frame: SensorFrame) -> np.ndarray:
        """Command (v, omega) for this frame."""
        cfg = self.cfg
        if frame.stamp > self.stamp:
            self.dt = frame.stamp - self.stamp
        self.stamp = frame.stamp
        self.localise(frame)
        self.tick += 1
        pose = self.pre.pose
        goal = np.asarray(frame.goal, dtype=np.float64)
        if self.backoff > 0:
            self.backoff -= 1
            self.command = np.array([-cfg.backoff_speed, 0.0])
            if self.backoff == 0:
                self.plan(goal)
            return self.command
        stuck = self._stuck(pose, frame.stamp)
        if stuck and self._person_ahead(0.8):
            self.held = 0  # held up by a person, not a wall: the rules for people below make it wait
        elif stuck:
            ahead = pose[:2] + (cfg.robot_radius + 0.2) * np.array([math.cos(pose[2]), math.sin(pose[2])])
            self.marks.append((float(ahead[0]), float(ahead[1]), self.tick + cfg.mark_ticks))
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
        v, omega = self._mind_people(goal, v, omega)
        self.command = np.array([v, omega])
        return self.command

    def _mind_people(self, goal: np.ndarray, v: float, omega: float) -> tuple[float, float]:
        """Speed limit near people; wait, back off or plan around them when they block the way ahead."""
        cfg = self.cfg
        people = self.people
        if len(people) == 0:
            self.waited = 0
            self.last_gap = math.inf
            return v, omega
        d = np.hypot(people[:, 0], people[:, 1])
        ahead = (people[:, 0] > 0) & (np.abs(np.arctan2(people[:, 1], people[:, 0])) < math.radians(50))
        gap = d[ahead].min() - cfg.robot_radius if ahead.any() else math.inf
        # Closing on the robot faster than its own driving explains: the person walks toward it.
        closing = (self.last_gap - gap) / self.dt - max(self.command[0], 0.0)
        self.last_gap = gap
        approaching = math.isfinite(closing) and closing > cfg.approach_speed
        lane = (people[:, 0] > 0) & (np.abs(people[:, 1]) < cfg.robot_radius + cfg.people_lane)
        near = d < cfg.people_radius + cfg.robot_radius  # slowing for someone behind would let them walk into it
        if (near & lane).any() or (approaching and gap < cfg.people_radius):
            v = min(v, cfg.people_speed)
        if gap >= cfg.wait_gap or v <= 0.0:
            self.waited = 0
            return v, omega
        self.waited += 1
        if self.waited >= cfg.wait_ticks and self.tick >= self.detour_until:
            self.detour_until = self.tick + cfg.detour_ticks
            self.waited = 0
            self.plan(goal)
        if gap < cfg.backoff_gap and approaching:
            return -cfg.backoff_speed, 0.0
        return 0.0, omega


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
