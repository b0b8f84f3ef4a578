"""Laser odometry: scan-to-map matching corrects wheel odometry with the range scan, as a robot's lidar-odometry
front end does. The Preprocessor runs it when ``PreprocessorConfig.laser_odometry`` is on (its memories and goal
then live in the corrected frame); the classical baseline runs the same `ScanMatcher`.

Why: the nominal wheel odometry drifts (a per-episode heading drift of about 0.01 rad per metre driven). When the
privileged expert reaches the goal of a `test` episode, its wheel odometry still puts the goal a median 0.9 m
away (only 16 % of 98 arrivals within the 0.3 m goal radius), so a planner that trusts it cannot reach a goal
given in the odometry frame.

Map: a grid of cells (``resolution``, odometry frame, fixed corner at -extent/2) that each keep the running mean
of the wall points that fell in them and of their unit normals (sign-aligned), and a count. Points come from each
scan at its matched pose: the endpoints of beams with a range, and points every ``resolution / 2`` along the
segment between neighbouring beams' endpoints closer than ``max_gap`` (the same wall, most likely), so a wall
seen at long range is still covered cell by cell. Points are never erased: a wall seen once stays a wall.

Matching: point-to-line ICP with a prior. For each scan point with a normal (`scan_points`), its map
correspondence is the nearest cell mean within ``max_distance`` (3x3 cells around it) whose normal agrees within
30 degrees; the residual is the distance along that normal, so the end of a wall seen so far never pulls the
robot back along the wall. Gauss-Newton minimises ``sum_k huber(r_k) / point_sigma^2 + (pose - prior)^T W
(pose - prior)`` with ``W = diag(1/prior_sigma_xy^2, 1/prior_sigma_xy^2, 1/prior_sigma_theta^2)``; the prior is the
odometry prediction, which keeps the pose where the scan does not constrain it (a long corridor). Correspondences
are found again at every iteration. Uses only the frame a robot driver gives: ranges, beam angles, odometry.

One frame is one Numba call (`_update`: points, match, map update) on buffers the matcher owns: no allocation
per frame once a scan description has been seen. `scan_points`, `insert_reference`, `match_reference` and
`walls_reference` are the NumPy twins the parity tests compare the kernels with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from robonav.sensors.frame import ScanSpec
from robonav.sensors.jit import kernel

__all__ = ["ScanMatchConfig", "ScanMatcher", "ScanMatcherReference", "insert_reference", "match_reference",
           "scan_points", "scan_points_kernel", "walls_reference"]

MEAN_CAP = 20
"""A cell's running means weigh a new point at least 1/MEAN_CAP (they follow a slowly corrected map)."""
_COS30 = math.cos(math.radians(30.0))

# Channels of the map grid [S, S, 5].
C_X, C_Y, C_NX, C_NY, C_COUNT = 0, 1, 2, 3, 4


def scan_points(ranges: np.ndarray, angles: np.ndarray, range_min: float, range_max: float,
                max_gap: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Endpoints of a REP 117 scan in the robot frame and what the matcher needs to know about them (the NumPy
    twin of `scan_points_kernel`).

    Returns (px, py, nx, ny, link) over the beams with a range, in beam order: ``link[k]`` when point k and the
    next one come from neighbouring beams (the last and first too for a full circle) and lie within ``max_gap``
    of each other; (nx, ny) is the unit normal of the line through the two linked neighbours of point k, zero
    where point k lacks one of them or the three points bend by more than 30 degrees (a corner).
    """
    r = np.asarray(ranges, dtype=np.float64)
    a = np.asarray(angles, dtype=np.float64)
    ok = np.isfinite(r) & (r >= range_min) & (r <= range_max)
    beams = np.flatnonzero(ok)
    px, py = r[ok] * np.cos(a[ok]), r[ok] * np.sin(a[ok])
    count, total = len(beams), len(r)
    if count == 0:
        empty = np.zeros(0)
        return empty, empty, empty, empty, np.zeros(0, dtype=bool)
    nxt = np.roll(np.arange(count), -1)
    adjacent = beams[nxt] == beams + 1
    if total > 2 and abs(abs(a[1] - a[0]) * total - 2 * math.pi) < 1e-6:  # a full circle: beam n-1 meets beam 0
        adjacent |= (beams == total - 1) & (beams[nxt] == 0)
    tx, ty = px[nxt] - px, py[nxt] - py  # segment k -> k+1
    link = adjacent & (np.hypot(tx, ty) < max_gap) & (count > 1)
    prev = np.roll(np.arange(count), 1)
    ax, ay = tx[prev], ty[prev]  # segment k-1 -> k
    straight = ax * tx + ay * ty > _COS30 * np.hypot(ax, ay) * np.hypot(tx, ty)
    use = link & link[prev] & straight
    lx, ly = ax + tx, ay + ty
    norm = np.hypot(lx, ly)
    norm[~use | (norm == 0)] = np.inf
    return px, py, -ly / norm, lx / norm, link


# ------------------------------------------------------------------------------------------------ kernels
@kernel
def scan_points_kernel(ranges: np.ndarray, cos_a: np.ndarray, sin_a: np.ndarray, range_min: float,
                       range_max: float, max_gap: float, full_circle: bool, beams: np.ndarray, px: np.ndarray,
                       py: np.ndarray, nx: np.ndarray, ny: np.ndarray, link: np.ndarray) -> int:
    """`scan_points` into preallocated buffers (each at least as long as ``ranges``); returns the point count.
    ``cos_a``, ``sin_a``: of the beam angles; ``full_circle``: beam n-1 neighbours beam 0."""
    total = ranges.shape[0]
    count = 0
    for k in range(total):
        r = float(ranges[k])
        if math.isfinite(r) and r >= range_min and r <= range_max:
            px[count] = r * cos_a[k]
            py[count] = r * sin_a[k]
            beams[count] = k
            count += 1
    for k in range(count):
        q = k + 1 if k + 1 < count else 0
        adjacent = beams[q] == beams[k] + 1 or (full_circle and beams[k] == total - 1 and beams[q] == 0)
        link[k] = adjacent and count > 1 and math.hypot(px[q] - px[k], py[q] - py[k]) < max_gap
    for k in range(count):
        p = k - 1 if k > 0 else count - 1
        q = k + 1 if k + 1 < count else 0
        ax = px[k] - px[p]
        ay = py[k] - py[p]
        tx = px[q] - px[k]
        ty = py[q] - py[k]
        nx[k] = 0.0
        ny[k] = 0.0
        if link[k] and link[p] and ax * tx + ay * ty > _COS30 * math.hypot(ax, ay) * math.hypot(tx, ty):
            norm = math.hypot(ax + tx, ay + ty)
            if norm != 0.0:
                nx[k] = -(ay + ty) / norm
                ny[k] = (ax + tx) / norm
    return count


@kernel
def _add(grid: np.ndarray, res: float, ox: float, oy: float, x: float, y: float, nx: float, ny: float) -> None:
    """Fold one wall point with unit normal (nx, ny) into its cell's running means."""
    i = int(math.floor((x - ox) / res))
    j = int(math.floor((y - oy) / res))
    if i < 0 or j < 0 or i >= grid.shape[0] or j >= grid.shape[1]:
        return
    count = grid[i, j, C_COUNT] + 1.0
    grid[i, j, C_COUNT] = count
    f = 1.0 / min(count, MEAN_CAP)
    if grid[i, j, C_NX] * nx + grid[i, j, C_NY] * ny < 0.0:
        nx = -nx
        ny = -ny
    grid[i, j, C_X] += f * (x - grid[i, j, C_X])
    grid[i, j, C_Y] += f * (y - grid[i, j, C_Y])
    grid[i, j, C_NX] += f * (nx - grid[i, j, C_NX])
    grid[i, j, C_NY] += f * (ny - grid[i, j, C_NY])


@kernel
def _insert(grid: np.ndarray, res: float, ox: float, oy: float, xs: np.ndarray, ys: np.ndarray, nxs: np.ndarray,
            nys: np.ndarray, link: np.ndarray) -> None:
    """Add a scan's world points (in beam order) with their normals, and points every res/2 along each linked
    segment (normal: the segment's) to the map."""
    n = xs.shape[0]
    for p in range(n):
        if nxs[p] != 0.0 or nys[p] != 0.0:
            _add(grid, res, ox, oy, xs[p], ys[p], nxs[p], nys[p])
        if link[p]:
            q = (p + 1) % n
            ex = xs[q] - xs[p]
            ey = ys[q] - ys[p]
            length = math.sqrt(ex * ex + ey * ey)
            if length == 0.0:
                continue
            pieces = int(math.ceil(length / (0.5 * res)))
            for m in range(1, pieces):
                f = m / pieces
                _add(grid, res, ox, oy, xs[p] + f * ex, ys[p] + f * ey, -ey / length, ex / length)


@kernel
def _correspond(grid: np.ndarray, res: float, ox: float, oy: float, wx: float, wy: float, mx: float, my: float,
                max_distance: float) -> tuple[bool, float, float, float, float]:
    """Nearest cell mean to (wx, wy) within max_distance (3x3 cells) whose normal agrees with (mx, my) within
    30 degrees: (found, x, y, unit normal x, y)."""
    ci = int(math.floor((wx - ox) / res))
    cj = int(math.floor((wy - oy) / res))
    best = max_distance * max_distance
    found = False
    qx = qy = qnx = qny = 0.0
    for i in range(ci - 1, ci + 2):
        if i < 0 or i >= grid.shape[0]:
            continue
        for j in range(cj - 1, cj + 2):
            if j < 0 or j >= grid.shape[1] or grid[i, j, C_COUNT] == 0.0:
                continue
            dx = wx - grid[i, j, C_X]
            dy = wy - grid[i, j, C_Y]
            d2 = dx * dx + dy * dy
            if d2 >= best:
                continue
            nx = grid[i, j, C_NX]
            ny = grid[i, j, C_NY]
            norm = math.sqrt(nx * nx + ny * ny)
            if norm == 0.0 or abs(nx * mx + ny * my) < _COS30 * norm:
                continue
            best = d2
            found = True
            qx = grid[i, j, C_X]
            qy = grid[i, j, C_Y]
            qnx = nx / norm
            qny = ny / norm
    return found, qx, qy, qnx, qny


@kernel
def _solve3(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Solve the symmetric positive definite 3x3 system ``a x = b`` (Cramer's rule; no LAPACK in the kernel)."""
    c00 = a[1, 1] * a[2, 2] - a[1, 2] * a[2, 1]
    c01 = a[1, 0] * a[2, 2] - a[1, 2] * a[2, 0]
    c02 = a[1, 0] * a[2, 1] - a[1, 1] * a[2, 0]
    det = a[0, 0] * c00 - a[0, 1] * c01 + a[0, 2] * c02
    x0 = (b[0] * c00 - a[0, 1] * (b[1] * a[2, 2] - a[1, 2] * b[2]) + a[0, 2] * (b[1] * a[2, 1] - a[1, 1] * b[2])) / det
    x1 = (a[0, 0] * (b[1] * a[2, 2] - a[1, 2] * b[2]) - b[0] * c01 + a[0, 2] * (a[1, 0] * b[2] - b[1] * a[2, 0])) / det
    x2 = (a[0, 0] * (a[1, 1] * b[2] - b[1] * a[2, 1]) - a[0, 1] * (a[1, 0] * b[2] - b[1] * a[2, 0]) + b[0] * c02) / det
    return x0, x1, x2


@kernel
def _match(grid: np.ndarray, res: float, ox: float, oy: float, px: np.ndarray, py: np.ndarray, nx: np.ndarray,
           ny: np.ndarray, pose: np.ndarray, point_w: float, huber: float, max_distance: float, prior_xy: float,
           prior_theta: float, iterations: int, h: np.ndarray, b: np.ndarray) -> int:
    """Refine ``pose`` (float64 [3], in place, starting at the prior) for robot-frame points (px, py) with unit
    normals (nx, ny) (zero: unused); ``h`` [3, 3] and ``b`` [3] are work buffers. Returns the number of
    correspondences of the last iteration."""
    x0 = pose[0]
    y0 = pose[1]
    t0 = pose[2]
    used = 0
    for _ in range(iterations):
        c = math.cos(pose[2])
        s = math.sin(pose[2])
        h[:, :] = 0.0
        b[:] = 0.0
        used = 0
        for k in range(px.shape[0]):
            if nx[k] == 0.0 and ny[k] == 0.0:
                continue
            wx = pose[0] + c * px[k] - s * py[k]
            wy = pose[1] + s * px[k] + c * py[k]
            found, qx, qy, qnx, qny = _correspond(grid, res, ox, oy, wx, wy, c * nx[k] - s * ny[k],
                                                  s * nx[k] + c * ny[k], max_distance)
            if not found:
                continue
            used += 1
            r = qnx * (wx - qx) + qny * (wy - qy)
            w = point_w if abs(r) <= huber else point_w * huber / abs(r)
            j0 = qnx
            j1 = qny
            j2 = qnx * (-s * px[k] - c * py[k]) + qny * (c * px[k] - s * py[k])
            b[0] -= w * j0 * r
            b[1] -= w * j1 * r
            b[2] -= w * j2 * r
            h[0, 0] += w * j0 * j0
            h[0, 1] += w * j0 * j1
            h[0, 2] += w * j0 * j2
            h[1, 1] += w * j1 * j1
            h[1, 2] += w * j1 * j2
            h[2, 2] += w * j2 * j2
        h[1, 0] = h[0, 1]
        h[2, 0] = h[0, 2]
        h[2, 1] = h[1, 2]
        h[0, 0] += prior_xy
        h[1, 1] += prior_xy
        h[2, 2] += prior_theta
        b[0] -= prior_xy * (pose[0] - x0)
        b[1] -= prior_xy * (pose[1] - y0)
        b[2] -= prior_theta * (pose[2] - t0)
        sx, sy, st = _solve3(h, b)
        pose[0] += sx
        pose[1] += sy
        pose[2] += st
        if abs(sx) + abs(sy) < 1e-6 and abs(st) < 1e-6:
            break
    return used


@kernel
def _update(grid: np.ndarray, res: float, ox: float, oy: float, ranges: np.ndarray, cos_a: np.ndarray,
            sin_a: np.ndarray, range_min: float, range_max: float, max_gap: float, full_circle: bool,
            pose: np.ndarray, point_w: float, huber: float, max_distance: float, prior_xy: float, prior_theta: float,
            iterations: int, min_points: int, beams: np.ndarray, pts: np.ndarray, link: np.ndarray, h: np.ndarray,
            b: np.ndarray) -> int:
    """One frame: scan points, match near the prediction ``pose`` (float64 [3], replaced by the matched pose; kept
    with fewer than ``min_points`` correspondences), add the scan at that pose to the map. ``pts`` [8, beams] holds
    robot-frame points and normals (rows 0-3) and their world twins (rows 4-7). Returns the correspondences."""
    px, py, nx, ny = pts[0], pts[1], pts[2], pts[3]
    count = scan_points_kernel(ranges, cos_a, sin_a, range_min, range_max, max_gap, full_circle, beams, px, py, nx,
                               ny, link)
    if count == 0:
        return 0
    x0 = pose[0]
    y0 = pose[1]
    t0 = pose[2]
    used = _match(grid, res, ox, oy, px[:count], py[:count], nx[:count], ny[:count], pose, point_w, huber,
                  max_distance, prior_xy, prior_theta, iterations, h, b)
    if used < min_points:
        pose[0] = x0
        pose[1] = y0
        pose[2] = t0
    c = math.cos(pose[2])
    s = math.sin(pose[2])
    wx, wy, wnx, wny = pts[4], pts[5], pts[6], pts[7]
    for k in range(count):
        wx[k] = pose[0] + c * px[k] - s * py[k]
        wy[k] = pose[1] + s * px[k] + c * py[k]
        wnx[k] = c * nx[k] - s * ny[k]
        wny[k] = s * nx[k] + c * ny[k]
    _insert(grid, res, ox, oy, wx[:count], wy[:count], wnx[:count], wny[:count], link[:count])
    return used


@kernel
def _correct(prev: np.ndarray, delta: np.ndarray, pose: np.ndarray) -> None:
    """``pose`` = ``prev`` moved by ``delta`` (as `integrate_pose` does) on entry to a match; after it, ``delta``
    becomes the delta from ``prev`` to the matched ``pose`` (see `ScanMatcher.correct`)."""
    c = math.cos(prev[2])
    s = math.sin(prev[2])
    ex = pose[0] - prev[0]
    ey = pose[1] - prev[1]
    delta[0] = c * ex + s * ey
    delta[1] = c * ey - s * ex
    delta[2] = math.atan2(math.sin(pose[2] - prev[2]), math.cos(pose[2] - prev[2]))


@kernel
def _walls(grid: np.ndarray, res: float, ox: float, oy: float, wox: float, woy: float, wres: float,
           out: np.ndarray) -> None:
    """Mark ``out`` [W, H] (cells ``wres`` from corner (wox, woy)) where a map cell's mean point lies."""
    w, h = out.shape
    # Map cells overlapping the window, one more on each side (a float32 mean may sit on its cell's edge).
    i_lo = max(int(math.floor((wox - ox) / res)) - 1, 0)
    j_lo = max(int(math.floor((woy - oy) / res)) - 1, 0)
    i_hi = min(int(math.ceil((wox + w * wres - ox) / res)) + 1, grid.shape[0])
    j_hi = min(int(math.ceil((woy + h * wres - oy) / res)) + 1, grid.shape[1])
    for i in range(i_lo, i_hi):
        for j in range(j_lo, j_hi):
            if grid[i, j, C_COUNT] > 0.0:
                a = int(math.floor((grid[i, j, C_X] - wox) / wres))
                b = int(math.floor((grid[i, j, C_Y] - woy) / wres))
                if 0 <= a < w and 0 <= b < h:
                    out[a, b] = True


# ----------------------------------------------------------------------------------------- NumPy twins
def insert_reference(grid: np.ndarray, res: float, origin: tuple[float, float], xs: np.ndarray, ys: np.ndarray,
                     nxs: np.ndarray, nys: np.ndarray, link: np.ndarray) -> None:
    """Plain-Python twin of the map update (in place)."""
    ox, oy = origin

    def add(x: float, y: float, nx: float, ny: float) -> None:
        i, j = math.floor((x - ox) / res), math.floor((y - oy) / res)
        if not (0 <= i < grid.shape[0] and 0 <= j < grid.shape[1]):
            return
        cell = grid[i, j]  # [5] view
        cell[C_COUNT] += 1.0
        f = 1.0 / min(cell[C_COUNT], MEAN_CAP)
        if cell[C_NX] * nx + cell[C_NY] * ny < 0.0:
            nx, ny = -nx, -ny
        cell[:4] += f * (np.array([x, y, nx, ny]) - cell[:4])

    n = len(xs)
    for p in range(n):
        if nxs[p] != 0.0 or nys[p] != 0.0:
            add(xs[p], ys[p], nxs[p], nys[p])
        if link[p]:
            q = (p + 1) % n
            ex, ey = xs[q] - xs[p], ys[q] - ys[p]
            length = math.hypot(ex, ey)
            if length == 0.0:
                continue
            pieces = math.ceil(length / (0.5 * res))
            for m in range(1, pieces):
                add(xs[p] + m / pieces * ex, ys[p] + m / pieces * ey, -ey / length, ex / length)


def walls_reference(grid: np.ndarray, res: float, origin: tuple[float, float], wall_origin: tuple[float, float],
                    wall_res: float, shape: tuple[int, int]) -> np.ndarray:
    """NumPy twin of `ScanMatcher.walls`: every used cell's mean point, binned into the other grid."""
    del res, origin  # the mean points carry their own position
    out = np.zeros(shape, dtype=bool)
    used = grid[..., C_COUNT] > 0
    a = np.floor((grid[..., C_X][used].astype(np.float64) - wall_origin[0]) / wall_res).astype(np.int64)
    b = np.floor((grid[..., C_Y][used].astype(np.float64) - wall_origin[1]) / wall_res).astype(np.int64)
    inside = (a >= 0) & (a < shape[0]) & (b >= 0) & (b < shape[1])
    out[a[inside], b[inside]] = True
    return out


def match_reference(grid: np.ndarray, res: float, origin: tuple[float, float], px: np.ndarray, py: np.ndarray,
                    nx: np.ndarray, ny: np.ndarray, prior: np.ndarray, point_w: float, huber: float,
                    max_distance: float, prior_xy: float, prior_theta: float,
                    iterations: int) -> tuple[np.ndarray, int]:
    """NumPy twin of the ICP refinement (correspondences by brute force over the 3x3 cells); returns the pose and
    the correspondences of the last iteration."""
    ox, oy = origin
    pose = np.array(prior, dtype=np.float64)
    w_prior = np.diag([prior_xy, prior_xy, prior_theta])
    res_k: list[float] = []
    for _ in range(iterations):
        c, s = math.cos(pose[2]), math.sin(pose[2])
        rows, res_k, weights = [], [], []
        for k in np.flatnonzero((nx != 0.0) | (ny != 0.0)):
            w = np.array([pose[0] + c * px[k] - s * py[k], pose[1] + s * px[k] + c * py[k]])
            m = np.array([c * nx[k] - s * ny[k], s * nx[k] + c * ny[k]])
            ci, cj = math.floor((w[0] - ox) / res), math.floor((w[1] - oy) / res)
            best, pick = max_distance**2, None
            for i in range(max(ci - 1, 0), min(ci + 2, grid.shape[0])):
                for j in range(max(cj - 1, 0), min(cj + 2, grid.shape[1])):
                    cell = grid[i, j].astype(np.float64)
                    n = cell[2:4]
                    d2 = float(np.sum((w - cell[:2]) ** 2))
                    if cell[C_COUNT] == 0 or d2 >= best or np.linalg.norm(n) == 0:
                        continue
                    if abs(n @ m) < _COS30 * np.linalg.norm(n):
                        continue
                    best, pick = d2, (cell[:2], n / np.linalg.norm(n))
            if pick is None:
                continue
            q, n = pick
            r = float(n @ (w - q))
            rows.append([n[0], n[1], n @ np.array([-s * px[k] - c * py[k], c * px[k] - s * py[k]])])
            res_k.append(r)
            weights.append(point_w if abs(r) <= huber else point_w * huber / abs(r))
        jac = np.array(rows).reshape(-1, 3)  # [K, 3]
        wk = np.array(weights)
        rk = np.array(res_k)
        hess = jac.T @ (wk[:, None] * jac) + w_prior
        step = np.linalg.solve(hess, -jac.T @ (wk * rk) - w_prior @ (pose - prior))
        pose += step
        if abs(step[0]) + abs(step[1]) < 1e-6 and abs(step[2]) < 1e-6:
            break
    return pose, len(res_k)


@dataclass(frozen=True)
class ScanMatchConfig:
    """Settings of the scan matcher (metres, radians)."""

    resolution: float = 0.1
    """Side of a map cell."""
    extent: float = 48.0
    """Side of the square map, centred on the odometry origin (an 11x11 maze fits wherever the robot starts)."""
    max_distance: float = 0.15
    """Farthest a scan point may lie from its map correspondence."""
    point_sigma: float = 0.02
    """Standard deviation of a point's distance to its wall (range noise plus map error)."""
    huber: float = 0.03
    """Residuals beyond this count linearly, not quadratically (a wrong correspondence pulls less)."""
    prior_sigma_xy: float = 0.01
    """Standard deviation of the odometry prediction's position over one tick."""
    prior_sigma_theta: float = 0.2
    """Standard deviation of the odometry prediction's heading over one tick: loose, since walls fix the heading
    well and a tight value lets the odometry's heading drift through."""
    iterations: int = 8
    """Gauss-Newton iterations per scan at most."""
    min_points: int = 10
    """Fewer correspondences than this: keep the odometry prediction."""
    max_gap: float = 0.35
    """Neighbouring beams' endpoints closer than this belong to the same wall (`scan_points`)."""


class ScanMatcher:
    """One robot's scan-to-map matcher: ``pose = matcher.update(predicted_pose, ranges, angles, rmin, rmax)``, or
    ``delta = matcher.correct(pose, odom_delta, ranges, scan)`` for an integrator of deltas (the Preprocessor)."""

    def __init__(self, config: ScanMatchConfig | None = None) -> None:
        c = self.config = config or ScanMatchConfig()
        self.res = c.resolution
        size = int(math.ceil(c.extent / c.resolution))
        self.origin = (-0.5 * size * c.resolution, -0.5 * size * c.resolution)
        self.grid = np.zeros((size, size, 5), dtype=np.float32)  # [i, j, (x, y, nx, ny, count)]
        self.max_distance, self.huber, self.point_w = c.max_distance, c.huber, 1.0 / c.point_sigma**2
        self.prior_xy, self.prior_theta = 1.0 / c.prior_sigma_xy**2, 1.0 / c.prior_sigma_theta**2
        self.iterations, self.min_points, self.max_gap = c.iterations, c.min_points, c.max_gap
        self.matched_points = 0
        """Correspondences in the last match (0 before the map has anything)."""
        self._pose = np.zeros(3)  # prediction in, matched pose out
        self._delta = np.zeros(3)
        self._h, self._b = np.zeros((3, 3)), np.zeros(3)
        self._angles = np.zeros(0)
        self._use_angles(np.zeros(0))

    def _use_angles(self, angles: np.ndarray) -> None:
        """Beam tables and point buffers for a scan of ``angles`` (a new scan description: allocates)."""
        a = np.array(angles, dtype=np.float64)
        n = a.shape[0]
        self._angles, self._cos, self._sin = a, np.cos(a), np.sin(a)
        self._full = bool(n > 2 and abs(abs(a[1] - a[0]) * n - 2 * math.pi) < 1e-6)
        self._beams = np.zeros(n, dtype=np.int64)
        self._pts = np.zeros((8, n))  # [px, py, nx, ny, wx, wy, wnx, wny] x beams
        self._link = np.zeros(n, dtype=np.bool_)

    def reset(self) -> None:
        """Forget the map (a new episode: a new odometry frame)."""
        self.grid.fill(0.0)
        self.matched_points = 0

    def _run(self, ranges: np.ndarray, range_min: float, range_max: float) -> None:
        ox, oy = self.origin
        self.matched_points = _update(
            self.grid, self.res, ox, oy, ranges, self._cos, self._sin, float(range_min), float(range_max),
            self.max_gap, self._full, self._pose, self.point_w, self.huber, self.max_distance, self.prior_xy,
            self.prior_theta, self.iterations, self.min_points, self._beams, self._pts, self._link, self._h, self._b)

    def update(self, predicted: np.ndarray, ranges: np.ndarray, angles: np.ndarray, range_min: float,
               range_max: float) -> np.ndarray:
        """Match the scan (REP 117 ranges at robot-frame ``angles``) near ``predicted`` (x, y, theta), add it to
        the map at the matched pose, and return that pose (the matcher's buffer: copy it to keep it past the next
        call). With fewer than ``min_points`` correspondences the prediction is kept."""
        if angles.shape != self._angles.shape or not np.array_equal(angles, self._angles):
            self._use_angles(angles)
        self._pose[:] = predicted
        self._run(ranges, range_min, range_max)
        return self._pose

    def correct(self, pose: np.ndarray, delta: tuple[float, float, float], ranges: np.ndarray,
                scan: ScanSpec) -> np.ndarray:
        """The odometry ``delta`` (dx, dy, dtheta in ``pose``'s robot frame) corrected by matching the scan at
        ``pose`` moved by it: the delta from ``pose`` to the matched pose (the matcher's buffer, float64 [3]).
        Allocates nothing once ``scan`` has been seen."""
        if scan is not self._scan_spec:
            self._use_angles(scan.beam_angles())
            self._scan_spec = scan
        self._delta[0], self._delta[1], self._delta[2] = delta
        c, s = math.cos(pose[2]), math.sin(pose[2])
        self._pose[0] = pose[0] + c * delta[0] - s * delta[1]
        self._pose[1] = pose[1] + s * delta[0] + c * delta[1]
        self._pose[2] = pose[2] + delta[2]
        self._run(ranges, scan.range_min, scan.range_max)
        _correct(pose, self._delta, self._pose)
        return self._delta

    _scan_spec: ScanSpec | None = None

    def walls(self, origin: tuple[float, float], resolution: float, shape: tuple[int, int]) -> np.ndarray:
        """bool [W, H]: the cells of another grid (corner ``origin``, cell ``resolution``) that hold the mean point
        of a map cell, i.e. a wall seen so far (the map never forgets one; an obstacle memory may clear a wall
        again with grazing beams)."""
        out = np.zeros(shape, dtype=np.bool_)
        _walls(self.grid, self.res, *self.origin, float(origin[0]), float(origin[1]), float(resolution), out)
        return out


class ScanMatcherReference:
    """`ScanMatcher.correct` over the NumPy twins (for the ReferencePreprocessor and the parity tests)."""

    def __init__(self, config: ScanMatchConfig | None = None) -> None:
        self.m = ScanMatcher(config)  # its settings and its map's shape; the kernels are not used

    def reset(self) -> None:
        """Forget the map."""
        self.m.reset()

    def correct(self, pose: tuple[float, float, float], delta: tuple[float, float, float], ranges: np.ndarray,
                scan: ScanSpec) -> tuple[float, float, float]:
        """The corrected delta, as `ScanMatcher.correct` computes it."""
        m = self.m
        x, y, th = pose
        c, s = math.cos(th), math.sin(th)
        predicted = np.array([x + c * delta[0] - s * delta[1], y + s * delta[0] + c * delta[1], th + delta[2]])
        px, py, nx, ny, link = scan_points(ranges, scan.beam_angles(), scan.range_min, scan.range_max, m.max_gap)
        matched = predicted
        if px.size:
            matched, used = match_reference(m.grid, m.res, m.origin, px, py, nx, ny, predicted, m.point_w, m.huber,
                                            m.max_distance, m.prior_xy, m.prior_theta, m.iterations)
            if used < m.min_points:
                matched = predicted
            cm, sm = math.cos(matched[2]), math.sin(matched[2])
            insert_reference(m.grid, m.res, m.origin, matched[0] + cm * px - sm * py, matched[1] + sm * px + cm * py,
                             cm * nx - sm * ny, sm * nx + cm * ny, link)
        ex, ey = matched[0] - x, matched[1] - y
        dth = matched[2] - th
        return c * ex + s * ey, c * ey - s * ex, math.atan2(math.sin(dth), math.cos(dth))
