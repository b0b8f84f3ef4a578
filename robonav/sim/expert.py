"""A privileged expert: follows the geodesic distance field using the TRUE pose and the true map.

For demos, tests of the simulator, and (later) behaviour-cloning warm starts. A deployed policy never sees what
this expert sees. It looks along many directions for the farthest point the whole robot body can reach in a
straight line (three parallel rays: centre and both flanks), picks the reachable point with the smallest
geodesic distance to the goal (string pulling), and turns toward it; large heading errors turn in place.
"""

from __future__ import annotations

import numpy as np

from robonav.sim.core import REFINE, MazeSim
from robonav.sim.geodesic import geodesic_at
from robonav.sim.raycast import grid_raycast

_DIRS = np.linspace(-np.pi, np.pi, 48, endpoint=False)


class GeodesicExpert:
    """Acts for every env of a MazeSim from its privileged state: ``expert(sim) -> actions [N, 2]``."""

    def __init__(self, horizon: float = 2.0, gain: float = 2.5, margin: float = 0.04) -> None:
        self.horizon, self.gain, self.margin = horizon, gain, margin

    def _target_heading(self, sim: MazeSim, i: int) -> float | None:
        x, y, _ = sim.pose[i]
        cell = float(sim._cells[i])
        h, w = sim._shapes[i]
        occ = sim._occ[i, :h, :w]
        radius = sim.params[i].radius if sim.params[i] is not None else sim.cfg.robot.radius  # type: ignore[union-attr]
        for flank in (radius + self.margin, 0.5 * radius, 0.0):
            k = len(_DIRS)
            nx, ny = -np.sin(_DIRS), np.cos(_DIRS)
            xs = np.concatenate([np.full(k, x), x + flank * nx, x - flank * nx])
            ys = np.concatenate([np.full(k, y), y + flank * ny, y - flank * ny])
            clear = np.empty(3 * k)
            grid_raycast(occ, cell, xs, ys, np.tile(_DIRS, 3), self.horizon + 1.0, clear)
            reach = np.minimum(clear.reshape(3, k).min(axis=0) - radius - self.margin, self.horizon)
            ok = reach > 0.05
            if not ok.any():
                continue
            px, py = x + reach * np.cos(_DIRS), y + reach * np.sin(_DIRS)
            score = geodesic_at(sim.fields[i], cell, REFINE, px, py)
            score[~ok] = np.inf
            if np.isfinite(score).any():
                return float(_DIRS[int(np.argmin(score))])
        return None

    def __call__(self, sim: MazeSim) -> np.ndarray:
        rc = sim.cfg.robot
        out = np.zeros((sim.num_envs, 2))
        for i in range(sim.num_envs):
            x, y, th = sim.pose[i]
            gx, gy = sim.goal_xy[i]
            want = self._target_heading(sim, i)
            if want is None or np.hypot(gx - x, gy - y) < 0.5:
                want = float(np.arctan2(gy - y, gx - x))
            err = float(np.arctan2(np.sin(want - th), np.cos(want - th)))
            if abs(err) > 0.8 * np.pi:  # target behind: always turn left, so a student never averages left/right
                err = abs(err)
            out[i, 1] = np.clip(self.gain * err, -rc.omega_max, rc.omega_max)
            out[i, 0] = rc.v_max * max(0.0, np.cos(err)) ** 3
        return out
