"""Path guidance: where an A* path on the robot's own obstacle memory leads, as an observation block.

A memory grid says where walls were seen; turning it into "which way now" over a 30 to 60 m route is a planning
problem that truncated BPTT over a few seconds learns slowly and badly (the calibration in FACTS.md plateaued near
60 %). The classical navigator solves it with A* on that same grid, so the Preprocessor can too, and hand the
policy the answer as six numbers. Nothing here is privileged: the map is the Preprocessor's own obstacle memory in
the odometry frame (unknown cells count as free, the optimistic frontier rule), the goal is the frame's goal.

Every ``guidance_every`` steps (or when the path is used up or absent) the guide plans from the robot's cell to
the goal's cell with `robonav.sensors.planner` (the classical baseline's cost map and A*, same settings); every
step it walks the stored path from the point nearest the robot and reports, in the robot frame,

    sin, cos of the bearing to the point ``guidance_lookahead`` m along the path,
    sin, cos of the bearing to the point ``3 * guidance_lookahead`` m along it (the turn after next),
    min(path length, PATH_CLIP) / PATH_CLIP,
    1 if a path was found, else 0 (then both bearings are the goal's and the length is the straight line).

The policy still has to drive: keep clear of walls the map has not caught, back out of a corridor the plan
changes its mind about, and cope with odometry drift that bends the map. The Preprocessor computes this block
inside its Numba kernel without allocating (robonav.sensors.plan), bit for bit as `Guide` does; `Guide` (over the
planner's Numba kernels) and `GuideReference` (over its pure-Python references) are what the parity tests hold it
to.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from robonav.sensors.planner import (
    Window,
    astar,
    astar_expansions,
    astar_reference,
    cost_map,
    cost_map_reference,
    path_points,
    search_window,
)
from robonav.sensors.spec import PreprocessorConfig

__all__ = ["GUIDANCE_SIZE", "PATH_CLIP", "BudgetedGuide", "Guide", "GuideReference"]

GUIDANCE_SIZE = 6
PATH_CLIP = 40.0
"""Path length (m) that maps to 1.0."""
ROBOT_RADIUS = 0.18
LETHAL_MARGIN = 0.05
SOFT_RADIUS = 0.5
SOFT_WEIGHT = 3.0
LETHAL_COST = 1000.0
WINDOW_MARGIN = 2.0
SEARCH_AHEAD = 40
"""Path points searched past the last nearest point for the new nearest one (the robot moves < 1 point/step)."""


class Guide:
    """Plans on an obstacle memory and writes the guidance block (see the module docstring)."""

    _cost_map: Callable[..., np.ndarray] = staticmethod(cost_map)
    _astar: Callable[..., tuple[np.ndarray, float]] = staticmethod(astar)

    def __init__(self, config: PreprocessorConfig) -> None:
        self.config = config
        self.res = config.grid_resolution
        self.reset()

    def reset(self) -> None:
        """Forget the path (a new episode)."""
        self.path: np.ndarray | None = None  # [K, 2] odometry-frame points, robot end first, goal last
        self.index = 0
        self.since_plan = 0
        self.length = 0.0

    def __call__(self, occ: np.ndarray, origin: tuple[float, float], pose: np.ndarray, goal: np.ndarray,
                 out: np.ndarray) -> None:
        """Update from this step's memory ``occ`` (level-0 log-odds units, [x cell, y cell]) and write ``out``."""
        self.since_plan += 1
        if (self.path is None or self.since_plan >= self.config.guidance_every
                or self.index >= len(self.path) - 2):
            self.plan(occ, origin, pose, goal)
        self.write(pose, goal, out)

    def plan(self, occ: np.ndarray, origin: tuple[float, float], pose: np.ndarray, goal: np.ndarray) -> None:
        """A* from the robot's cell to the goal's over the known box grown by WINDOW_MARGIN."""
        w, cost = self._window_cost(occ, origin, pose, goal)
        cells, total = type(self)._astar(cost, self.res, w.start, w.goal)
        self.since_plan = 0
        self.index = 0
        self.path = self._points(cells, total, w, origin, goal)

    def _window_cost(self, occ: np.ndarray, origin: tuple[float, float], pose: np.ndarray,
                     goal: np.ndarray) -> tuple[Window, np.ndarray]:
        """The search window of a plan from ``pose`` to ``goal`` and the cost map over it."""
        res = self.res
        w = search_window(occ, origin, res, (float(pose[0]), float(pose[1])), (float(goal[0]), float(goal[1])),
                          WINDOW_MARGIN)
        cost = type(self)._cost_map(w.view(occ) > 0, res, ROBOT_RADIUS + LETHAL_MARGIN, SOFT_RADIUS, SOFT_WEIGHT,
                                    LETHAL_COST)
        return w, cost

    def _points(self, cells: np.ndarray, total: float, w: Window, origin: tuple[float, float],
                goal: np.ndarray) -> np.ndarray | None:
        """The path's odometry-frame points, None if A* found none."""
        found = math.isfinite(total) and len(cells) > 0
        return path_points(cells, w, origin, self.res, np.asarray(goal, dtype=np.float64)) if found else None

    def _along(self, distance: float) -> np.ndarray:
        """The point ``distance`` m along the path past its point ``index``."""
        path = self.path
        assert path is not None
        k, left = self.index, distance
        while k + 1 < len(path):
            seg = math.hypot(path[k + 1, 0] - path[k, 0], path[k + 1, 1] - path[k, 1])
            if seg >= left:
                return path[k] + (path[k + 1] - path[k]) * (left / seg)
            left -= seg
            k += 1
        return path[k]

    def write(self, pose: np.ndarray, goal: np.ndarray, out: np.ndarray) -> None:
        """Advance to the path point nearest the robot and write the block."""
        x, y, th = float(pose[0]), float(pose[1]), float(pose[2])
        look = self.config.guidance_lookahead
        if self.path is None:
            near = far = np.asarray(goal, dtype=np.float64)
            length, found = math.hypot(goal[0] - x, goal[1] - y), 0.0
        else:
            path = self.path
            ahead = path[self.index:self.index + SEARCH_AHEAD]
            self.index += int(np.argmin(np.hypot(ahead[:, 0] - x, ahead[:, 1] - y)))
            near, far = self._along(look), self._along(3.0 * look)
            rest = path[self.index:]
            length = math.hypot(rest[0, 0] - x, rest[0, 1] - y) + float(
                np.hypot(np.diff(rest[:, 0]), np.diff(rest[:, 1])).sum())
            found = 1.0
        c, s = math.cos(th), math.sin(th)
        for k, (px, py) in enumerate((near, far)):
            ex, ey = float(px) - x, float(py) - y
            lx, ly = c * ex + s * ey, c * ey - s * ex
            r = math.hypot(lx, ly)
            out[2 * k], out[2 * k + 1] = (ly / r, lx / r) if r > 0.0 else (0.0, 1.0)
        out[4] = min(length, PATH_CLIP) / PATH_CLIP
        out[5] = found


class GuideReference(Guide):
    """`Guide` over the planner's pure-Python references (slow; for parity tests)."""

    _cost_map = staticmethod(cost_map_reference)
    _astar = staticmethod(astar_reference)


class BudgetedGuide(Guide):
    """`Guide` with at most ``guidance_budget`` A* expansions per step (the reference of the kernel's budgeted
    plan). A plan that `Guide` would start at step t is the same A* on step t's memory, and it expands the same
    cells in the same order, so it ends in step t + ceil(expanded / budget) - 1; until then the previous path is
    followed (or the goal's bearing written, if there is none). The plan period counts from t."""

    def __init__(self, config: PreprocessorConfig) -> None:
        if config.guidance_budget < 1:
            raise ValueError(f"BudgetedGuide needs guidance_budget >= 1, got {config.guidance_budget}: use Guide")
        super().__init__(config)

    def reset(self) -> None:
        super().reset()
        self.pending: np.ndarray | None = None  # the plan being searched: its path (None: no path)
        self.steps_left = 0  # steps until it ends, this one included; 0: no plan pending

    def __call__(self, occ: np.ndarray, origin: tuple[float, float], pose: np.ndarray, goal: np.ndarray,
                 out: np.ndarray) -> None:
        self.since_plan += 1
        if self.steps_left == 0 and (self.path is None or self.since_plan >= self.config.guidance_every
                                     or self.index >= len(self.path) - 2):
            w, cost = self._window_cost(occ, origin, pose, goal)
            cells, total, expanded = astar_expansions(cost, self.res, w.start, w.goal)
            self.pending = self._points(cells, total, w, origin, goal)
            self.steps_left = -(-expanded // self.config.guidance_budget)
            self.since_plan = 0
        if self.steps_left > 0:
            self.steps_left -= 1
            if self.steps_left == 0:
                self.path, self.pending, self.index = self.pending, None, 0
        self.write(pose, goal, out)
