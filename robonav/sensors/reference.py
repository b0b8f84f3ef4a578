"""The specification: a plain NumPy reference of every sensor kernel, and of the whole Preprocessor.

Each function here computes what one Numba kernel computes, vectorised where NumPy allows, with the same
floating-point expressions in the same order (no transcendental function on arrays; scalars use ``math``, as
numba does), so that tests can hold the kernels to it exactly. It keeps no max pyramid: it derives pyramid
levels by block max on demand (``pyramid``), which is what the kernels maintain incrementally.
``ReferencePreprocessor`` has the Preprocessor's interface and is its parity oracle and benchmark baseline.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from robonav.sensors.frame import ScanSpec, ScanSpecError, SensorFrame
from robonav.sensors.guidance import BudgetedGuide, Guide, GuideReference
from robonav.sensors.layout import LUT_OCC, LUT_OFFSET, LUT_VIS, make_luts
from robonav.sensors.scan import ABOVE_MODES, BELOW_MODES, INVALID, NO_RETURN, RANGE, TOO_CLOSE, BeamTableCache
from robonav.sensors.scanmatch import ScanMatcherReference
from robonav.sensors.spec import ObservationSpec, PreprocessorConfig

__all__ = [
    "ReferencePreprocessor", "block_max", "classify", "command_block", "decayed", "goal_block", "hit_cells",
    "integrate_pose", "pyramid", "ray_cells", "sample_patches", "scan_bins", "shift_square", "trail_cells",
    "wrap_angle",
]


def classify(r: np.ndarray, range_min: float, range_max: float, below: int, above: int) -> np.ndarray:
    """REP 117 class of every range (float64 array); see robonav.sensors.scan."""
    code = np.full(r.shape, RANGE, np.int64)
    with np.errstate(invalid="ignore"):
        code[r < range_min] = below
        code[r > range_max] = above
    code[r == np.inf] = NO_RETURN
    code[r == -np.inf] = TOO_CLOSE
    code[np.isnan(r)] = INVALID
    return code


def scan_bins(ranges: np.ndarray, indices: np.ndarray, num_rays: int, range_min: float, range_max: float,
              below: int, above: int, max_range: float, clear_margin: float, num_bins: int,
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(values float32 [K], valid float32 [K], ray_free float64 [num_rays], ray_beam int64 [num_rays]) of one
    scan; ray_beam is the first beam of least free distance in each sector (0 where none informs)."""
    r = ranges.astype(np.float64)
    code = classify(r, range_min, range_max, below, above)
    is_range, no_return = code == RANGE, code == NO_RETURN
    dist = np.where(is_range, np.minimum(r, max_range), np.where(no_return, min(range_max, max_range), 0.0))
    free = np.where(is_range, r - clear_margin, np.where(no_return, range_max, 0.0))
    informs = code != INVALID
    bin_min = np.full(num_bins, np.inf)
    np.minimum.at(bin_min, indices[0][informs], dist[informs])
    ray_free = np.full(num_rays, np.inf)
    np.minimum.at(ray_free, indices[1][informs], free[informs])
    nearest = informs & (free == ray_free[indices[1]])
    ray_beam = np.full(num_rays, r.shape[0], np.int64)
    np.minimum.at(ray_beam, indices[1][nearest], np.flatnonzero(nearest))
    ray_beam[ray_beam == r.shape[0]] = 0
    empty = bin_min == np.inf
    values = np.where(empty, 1.0, bin_min / max_range).astype(np.float32)
    return values, (~empty).astype(np.float32), ray_free, ray_beam


def wrap_angle(a: float) -> float:
    """``a`` wrapped into [-pi, pi)."""
    return (a + math.pi) % (2.0 * math.pi) - math.pi


def integrate_pose(pose: tuple[float, float, float], dx: float, dy: float, dth: float,
                   ) -> tuple[float, float, float] | None:
    """The pose after one odometry delta, or None where the delta is dropped (robonav.sensors.odometry)."""
    x0, y0, th = pose
    c, s = math.cos(th), math.sin(th)
    x, y, t = x0 + (c * dx - s * dy), y0 + (s * dx + c * dy), th + dth
    if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(t)):
        return None
    return x, y, wrap_angle(t)


def goal_block(pose: tuple[float, float, float], gx: float, gy: float, goal_clip: float) -> np.ndarray:
    """float32 (min(distance, clip) / clip, sin(bearing), cos(bearing)) of the goal seen from ``pose``."""
    c, s = math.cos(pose[2]), math.sin(pose[2])
    ex, ey = gx - pose[0], gy - pose[1]
    lx, ly = c * ex + s * ey, c * ey - s * ex
    m = max(abs(lx), abs(ly))
    if m == 0.0:
        return np.array([0.0, 0.0, 1.0], np.float32)
    if not math.isfinite(m):
        return np.array([1.0, 0.0, 1.0], np.float32)
    ux, uy = lx / m, ly / m
    n = math.sqrt(ux * ux + uy * uy)
    return np.array([min(m * n, goal_clip) / goal_clip, uy / n, ux / n], np.float32)


def command_block(v: float, omega: float, v_max: float, omega_max: float) -> np.ndarray:
    """float32 (v / v_max, omega / omega_max) clipped to [-1, 1], NaN as 0."""
    return np.nan_to_num(np.clip(np.array([v / v_max, omega / omega_max]), -1.0, 1.0), nan=0.0).astype(np.float32)


def decayed(values: np.ndarray, ticks: np.ndarray, now: int) -> np.ndarray:
    """Values after ``now - ticks`` decay ticks: one unit toward 0 per tick, never past 0 (int64)."""
    v = values.astype(np.int64)
    if now == 0:
        return v  # ticks are never above now, so nothing has decayed
    k = now - ticks.astype(np.int64)
    return np.where(v > 0, np.maximum(v - k, 0), np.minimum(v + k, 0))


def block_max(a: np.ndarray, f: int) -> np.ndarray:
    """Max over each f x f block of ``a`` (sides multiples of f)."""
    return functools.reduce(np.maximum, [a[di::f, dj::f] for di in range(f) for dj in range(f)])


def pyramid(level0: np.ndarray, f1: int, f2: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Levels 0, 1, 2 of a max pyramid: block max by f1, then by f2."""
    level1 = block_max(level0, f1)
    return level0, level1, block_max(level1, f2)


def hit_cells(ranges: np.ndarray, directions: np.ndarray, code: np.ndarray, map_range: float, x: float, y: float,
              c: float, s: float, ox: float, oy: float, res: float, n: int) -> np.ndarray:
    """Flat indices (unique) of the grid cells RANGE beams within map_range end in."""
    r = ranges.astype(np.float64)
    keep = (code == RANGE) & (r <= map_range)
    r, bc, bs = r[keep], directions[0][keep], directions[1][keep]
    hu = (x + r * (c * bc - s * bs) - ox) / res
    hv = (y + r * (s * bc + c * bs) - oy) / res
    inside = (hu >= 0.0) & (hu < n) & (hv >= 0.0) & (hv < n)
    return np.unique(np.floor(hu[inside]).astype(np.int64) * n + np.floor(hv[inside]).astype(np.int64))


def _crossings(start: int, u: float, d: np.ndarray, count: int) -> np.ndarray:
    """[rays, count] ray parameters of the 1st..count-th grid lines crossed (inf where d == 0)."""
    k = np.arange(1, count + 1, dtype=np.int64)[None, :]
    boundary = np.where(d[:, None] > 0.0, start + k, start - k + 1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # a near-axis ray: t overflows to inf
        t = (boundary - u) / d[:, None]
    return np.where(d[:, None] == 0.0, np.inf, t)


def ray_cells(u: float, v: float, dx: np.ndarray, dy: np.ndarray, lc: np.ndarray, n: int) -> np.ndarray:
    """Flat indices (unique) of every grid cell the rays cross from (u, v) (cells) along (dx, dy) over lengths
    ``lc`` (cells), stopping at the grid edge; at a corner the x line comes first (robonav.sensors.memory)."""
    i0, j0 = math.floor(u), math.floor(v)
    count = int(math.ceil(lc.max())) + 2 if lc.size else 0
    tx, ty = _crossings(i0, u, dx, count), _crossings(j0, v, dy, count)
    t = np.concatenate([tx, ty], axis=1)  # [rays, 2 * count]: x lines first, so ties put x first
    order = np.argsort(t, axis=1, kind="stable")
    t_sorted = np.take_along_axis(t, order, axis=1)
    is_x = order < count
    taken = t_sorted < lc[:, None]
    step_i = np.where(is_x & taken, np.where(dx > 0.0, 1, -1)[:, None], 0)
    step_j = np.where(~is_x & taken, np.where(dy > 0.0, 1, -1)[:, None], 0)
    ci = np.concatenate([np.full((lc.size, 1), i0), i0 + np.cumsum(step_i, axis=1)], axis=1)
    cj = np.concatenate([np.full((lc.size, 1), j0), j0 + np.cumsum(step_j, axis=1)], axis=1)
    valid = np.concatenate([np.ones((lc.size, 1), bool), taken], axis=1)
    valid &= (ci >= 0) & (ci < n) & (cj >= 0) & (cj < n)
    return np.unique(ci[valid] * n + cj[valid])


def trail_cells(ci: int, cj: int, trail_radius: float, res: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) of the grid cells that gain a visit when the robot enters cell (ci, cj): those within trail_radius."""
    t = math.floor(trail_radius / res + 1e-9)
    di, dj = np.meshgrid(np.arange(-t, t + 1), np.arange(-t, t + 1), indexing="ij")
    i, j = ci + di, cj + dj
    near = (di * di + dj * dj).astype(np.float64) <= (trail_radius / res) ** 2
    keep = near & (i >= 0) & (i < n) & (j >= 0) & (j < n)
    return i[keep], j[keep]


def sample_patches(occ_level: np.ndarray | None, vis_level: np.ndarray | None, corner: tuple[int, int], n: int,
                   u0: float, v0: float, c: float, s: float, pixels: int, luts: np.ndarray,
                   ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(obstacle, trajectory) float32 [pixels, pixels] patches (robonav.sensors.patches), None for a level not
    given. The level arrays may be a window of a level of side ``n`` whose cell [0, 0] is level cell ``corner``;
    the window must hold every cell of the grid that the patch reads."""
    half = (pixels - 1) * 0.5
    a = (np.arange(pixels) - half)[:, None]
    b = (np.arange(pixels) - half)[None, :]
    best_occ = np.zeros((pixels, pixels), np.int64)
    best_vis = np.zeros((pixels, pixels), np.int64)
    if u0 > -2.0 * pixels and u0 < n + 2.0 * pixels and v0 > -2.0 * pixels and v0 < n + 2.0 * pixels:
        best_occ[:] = -(1 << 30)
        i0 = np.floor(u0 + (c * a - s * b) - 0.5).astype(np.int64)
        j0 = np.floor(v0 + (s * a + c * b) - 0.5).astype(np.int64)
        for i in (i0, i0 + 1):
            for j in (j0, j0 + 1):
                inside = (i >= 0) & (i < n) & (j >= 0) & (j < n)
                wi, wj = i[inside] - corner[0], j[inside] - corner[1]
                for level, best in ((occ_level, best_occ), (vis_level, best_vis)):
                    if level is not None:
                        best[~inside] = np.maximum(best[~inside], 0)
                        best[inside] = np.maximum(best[inside], level[wi, wj])
    occ = luts[LUT_OCC][best_occ + LUT_OFFSET] if occ_level is not None else None
    return occ, (luts[LUT_VIS][best_vis] if vis_level is not None else None)


def shift_square(a: np.ndarray, si: int, sj: int) -> np.ndarray:
    """New [n, n] array: cell (i, j) takes a[i + si, j + sj], 0 where that lies outside."""
    n = a.shape[0]
    out = np.zeros_like(a)
    if abs(si) < n and abs(sj) < n:
        out[max(0, -si):n - max(0, si), max(0, -sj):n - max(0, sj)] = a[max(0, si):n + min(0, si),
                                                                          max(0, sj):n + min(0, sj)]
    return out


class ReferencePreprocessor:
    """The Preprocessor in plain NumPy (same interface, same results, about 100 times slower)."""

    def __init__(self, spec: ObservationSpec | PreprocessorConfig | None = None) -> None:
        spec = ObservationSpec() if spec is None else spec
        self.spec = ObservationSpec(spec) if isinstance(spec, PreprocessorConfig) else spec
        self.dim = self.spec.size
        self.low, self.high = self.spec.bounds()
        c = self.spec.config
        self._luts = make_luts(self.spec)
        self._tables = BeamTableCache(c.num_bins, c.clear_rays)
        self._episode: int | None = None
        self._guide: Guide | None = None
        if c.guidance:  # a budgeted plan's reference runs the planner's Numba A*, which counts its expansions
            self._guide = BudgetedGuide(c) if c.guidance_budget else GuideReference(c)
        self._matcher = ScanMatcherReference() if c.laser_odometry else None
        self.reset()

    def reset(self) -> None:
        """Pose to the odometry origin, both memories empty."""
        c = self.spec.config
        if self._guide is not None:
            self._guide.reset()
        if self._matcher is not None:
            self._matcher.reset()
        n = c.grid_cells
        self.occ, self.occ_ticks = np.zeros((n, n), np.int64), np.zeros((n, n), np.int64)
        self.vis, self.vis_ticks = np.zeros((n, n), np.int64), np.zeros((n, n), np.int64)
        self.pose_tuple = (0.0, 0.0, 0.0)
        half = n // 2 * c.grid_resolution
        self.origin = (-half, -half)
        self.step = self.recentres = self.dropped = 0
        self.last_mark: tuple[int, int] | None = None
        self._episode = None

    def _now(self, period: int) -> int:
        return self.step // period if period > 0 else 0

    def memory(self, level: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(obstacle log-odds units, visit counts) of pyramid ``level``, decayed to the current step."""
        c = self.spec.config
        f1, f2 = c.mid_factor, c.coarse_factor // c.mid_factor
        occ = decayed(self.occ, self.occ_ticks, self._now(c.obstacle_decay_steps))
        vis = decayed(self.vis, self.vis_ticks, self._now(c.visit_decay_steps))
        return pyramid(occ, f1, f2)[level], pyramid(vis, f1, f2)[level]

    def _window(self, level: int, u0: float, v0: float, pixels: int,
                ) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
        """(corner, obstacle, visits) of the level cells a patch around (u0, v0) level cells can read: the
        pyramid computed only there (the patch reaches at most pixels / sqrt(2) + 1 cells from the robot)."""
        c = self.spec.config
        f1, f2 = c.mid_factor, c.coarse_factor // c.mid_factor
        f = (1, f1, f1 * f2)[level]
        n = c.grid_cells // f
        reach = math.ceil(pixels * math.sqrt(0.5)) + 2
        lo_i, hi_i = max(0, math.floor(u0) - reach), max(0, min(n, math.floor(u0) + reach + 1))
        lo_j, hi_j = max(0, math.floor(v0) - reach), max(0, min(n, math.floor(v0) + reach + 1))
        hi_i, hi_j = max(hi_i, lo_i), max(hi_j, lo_j)
        rows, cols = slice(lo_i * f, hi_i * f), slice(lo_j * f, hi_j * f)
        out = []
        for values, ticks, period in ((self.occ, self.occ_ticks, c.obstacle_decay_steps),
                                      (self.vis, self.vis_ticks, c.visit_decay_steps)):
            window = decayed(values[rows, cols], ticks[rows, cols], self._now(period))
            for factor in (f1, f2)[:level]:
                window = block_max(window, factor)
            out.append(window)
        return (lo_i, lo_j), out[0], out[1]

    def _recentre(self) -> None:
        c = self.spec.config
        n, f, res, margin = c.grid_cells, c.coarse_factor, c.grid_resolution, c.recentre_margin_cells
        x, y, _ = self.pose_tuple
        u, v = (x - self.origin[0]) / res, (y - self.origin[1]) / res
        if u >= margin and u < n - margin and v >= margin and v < n - margin:
            return
        qi = np.floor((np.floor(u) - n // 2 + f // 2) / f)
        qj = np.floor((np.floor(v) - n // 2 + f // 2) / f)
        self.origin = (self.origin[0] + (qi * f) * res, self.origin[1] + (qj * f) * res)
        self.recentres += 1
        if abs(qi * f) >= n or abs(qj * f) >= n:
            for name in ("occ", "occ_ticks", "vis", "vis_ticks"):
                getattr(self, name)[:] = 0
            self.last_mark = None
            return
        si, sj = int(qi) * f, int(qj) * f
        for name in ("occ", "occ_ticks", "vis", "vis_ticks"):
            setattr(self, name, shift_square(getattr(self, name), si, sj))
        if self.last_mark is not None:
            self.last_mark = (self.last_mark[0] - si, self.last_mark[1] - sj)

    def __call__(self, frame: SensorFrame, last_command: Sequence[float] | np.ndarray) -> np.ndarray:
        """Process one frame; returns a new float32 [D] observation."""
        if frame.episode_id != self._episode:
            self.reset()
            self._episode = frame.episode_id
        table = self._tables.get(frame.scan)
        ranges = np.asarray(frame.ranges, np.float32)
        if ranges.shape != (table.directions.shape[1],):
            raise ScanSpecError(f"SensorFrame.ranges has shape {ranges.shape}, expected "
                                f"({table.directions.shape[1]},) from its ScanSpec")
        gx, gy = (float(g) for g in frame.goal)
        if not (math.isfinite(gx) and math.isfinite(gy)):
            raise ValueError(f"SensorFrame.goal must be finite, got {frame.goal!r}")
        cfg, spec = self.spec.config, self.spec
        self.step += 1
        dx, dy, dth = (float(d) for d in frame.odom_delta)
        if self._matcher is not None:  # laser odometry: the delta the scan match says
            dx, dy, dth = self._matcher.correct(self.pose_tuple, (dx, dy, dth), ranges, frame.scan)
        moved = integrate_pose(self.pose_tuple, dx, dy, dth)
        if moved is None:
            self.dropped += 1
        else:
            self.pose_tuple = moved
        self._recentre()
        x, y, th = self.pose_tuple
        c, s = math.cos(th), math.sin(th)
        (ox, oy), res, n = self.origin, cfg.grid_resolution, cfg.grid_cells
        scan: ScanSpec = frame.scan
        below, above = BELOW_MODES[cfg.below_range_min], ABOVE_MODES[cfg.above_range_max]
        obs = np.zeros(spec.size, np.float32)
        values, valid, ray_free, ray_beam = scan_bins(ranges, table.indices, table.num_rays, scan.range_min,
                                                      scan.range_max, below, above, cfg.max_range, cfg.clear_margin,
                                                      cfg.num_bins)
        obs[spec.block("scan").slice], obs[spec.block("scan_valid").slice] = values, valid
        u, v = (x - ox) / res, (y - oy) / res
        robot_inside = u >= 0.0 and u < n and v >= 0.0 and v < n
        if cfg.obstacle_fine or cfg.obstacle_coarse:
            now = self._now(cfg.obstacle_decay_steps)
            code = classify(ranges.astype(np.float64), scan.range_min, scan.range_max, below, above)
            hits = hit_cells(ranges, table.directions, code, cfg.map_range, x, y, c, s, ox, oy, res, n)
            cleared = np.zeros(0, np.int64)
            if robot_inside:
                length = np.minimum(ray_free, cfg.map_range)
                rays = (length > 0.0) & (ray_free < np.inf)
                rc, rs = table.directions[0, ray_beam[rays]], table.directions[1, ray_beam[rays]]
                cleared = ray_cells(u, v, c * rc - s * rs, s * rc + c * rs, length[rays] / res, n)
                cleared = np.setdiff1d(cleared, hits)
            lo, hi = cfg.log_odds_units("log_odds_min"), cfg.log_odds_units("log_odds_max")
            for cells, delta in ((hits, cfg.log_odds_units("hit_log_odds")),
                                 (cleared, cfg.log_odds_units("miss_log_odds"))):
                flat, ticks = self.occ.reshape(-1), self.occ_ticks.reshape(-1)
                flat[cells] = np.clip(decayed(flat[cells], ticks[cells], now) + delta, lo, hi)
                ticks[cells] = now
        if (cfg.trajectory_fine or cfg.trajectory_coarse) and robot_inside:
            cell = (math.floor(u), math.floor(v))
            if cell != self.last_mark:
                now = self._now(cfg.visit_decay_steps)
                i, j = trail_cells(cell[0], cell[1], cfg.trail_radius, res, n)
                self.vis[i, j] = np.minimum(decayed(self.vis[i, j], self.vis_ticks[i, j], now) + 1, 255)
                self.vis_ticks[i, j] = now
                self.last_mark = cell
        for level, pixels, size, suffix in ((1, cfg.fine_pixels, cfg.mid_factor, "fine"),
                                            (2, cfg.coarse_pixels, cfg.coarse_factor, "coarse")):
            want_occ, want_vis = spec.has("obstacle_" + suffix), spec.has("trajectory_" + suffix)
            if not (want_occ or want_vis):
                continue
            cell_size = res * size
            u0, v0 = (x - ox) / cell_size, (y - oy) / cell_size
            corner, occ_level, vis_level = self._window(level, u0, v0, pixels)
            occ_patch, vis_patch = sample_patches(occ_level if want_occ else None, vis_level if want_vis else None,
                                                  corner, n // size, u0, v0, c, s, pixels, self._luts)
            if occ_patch is not None:
                obs[spec.block("obstacle_" + suffix).slice] = occ_patch.reshape(-1)
            if vis_patch is not None:
                obs[spec.block("trajectory_" + suffix).slice] = vis_patch.reshape(-1)
        obs[spec.block("goal").slice] = goal_block(self.pose_tuple, gx, gy, cfg.goal_clip)
        obs[spec.block("command").slice] = command_block(float(last_command[0]), float(last_command[1]), cfg.v_max,
                                                         cfg.omega_max)
        if self._guide is not None:  # plans on the stored (undecayed) obstacle units, as the kernel's memory holds
            out = np.zeros(6)
            self._guide(self.occ, self.origin, self.pose, np.array([gx, gy]), out)
            obs[spec.block("guidance").slice] = out
        return obs

    @property
    def pose(self) -> np.ndarray:
        """(x, y, theta) in the odometry frame."""
        return np.array(self.pose_tuple)

    @property
    def grid_origin(self) -> tuple[float, float]:
        """Odometry-frame position (m) of grid cell (0, 0)."""
        return float(self.origin[0]), float(self.origin[1])
