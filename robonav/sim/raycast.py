"""Exact 2D range queries on grid mazes: a Numba DDA raycaster and its NumPy reference.

PyBullet's ``rayTestBatch`` costs about 2 us per ray here (FACTS.md), which caps the simulator near 4,600
steps/s at 128 beams. Grid mazes are unions of axis-aligned square cells, so a ray can be walked cell by cell
(Amanatides & Woo 1987) exactly, in well under a microsecond. PyBullet rays stay the general path for
arbitrary geometry; tests hold the two to each other on every maze family.

Conventions: ``occ[iy, ix]`` is True for a wall cell covering x in [ix*cell, (ix+1)*cell] and
y in [iy*cell, (iy+1)*cell]; everything outside the grid is wall (the world rings every maze with walls).
A ray that starts inside a wall returns 0. No hit within ``max_range`` returns +inf.

Moving obstacles (robonav.sim.dynamic) are vertical cylinders, so in the scan plane they are circles: the
``*_circles`` forms return the nearest of the wall hit and every circle's exact ray-circle hit (closed disks: a
tangent ray hits; a ray starting inside a circle returns 0, like one starting inside a wall).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, inline="always")
def _is_wall(occ: np.ndarray, ny: int, nx: int, iy: int, ix: int) -> bool:
    if iy < 0 or ix < 0 or iy >= ny or ix >= nx:
        return True
    return occ[iy, ix]


@njit(cache=True, nogil=True)
def _cast_one(occ: np.ndarray, ny: int, nx: int, cell: float, x: float, y: float, angle: float,
              max_range: float) -> float:
    """Distance from (x, y) along ``angle`` to the first wall face, +inf beyond max_range."""
    return _cast_dir(occ, ny, nx, cell, x, y, math.cos(angle), math.sin(angle), max_range)


@njit(cache=True, nogil=True)
def _cast_dir(occ: np.ndarray, ny: int, nx: int, cell: float, x: float, y: float, dx: float, dy: float,
              max_range: float) -> float:
    """`_cast_one` along the unit direction (dx, dy)."""
    gx = x / cell
    gy = y / cell
    ix = int(math.floor(gx))
    iy = int(math.floor(gy))
    if _is_wall(occ, ny, nx, iy, ix):
        return 0.0
    inf = math.inf
    if dx > 0.0:
        step_x = 1
        t_max_x = ((ix + 1) - gx) / dx
        t_delta_x = 1.0 / dx
    elif dx < 0.0:
        step_x = -1
        t_max_x = (ix - gx) / dx
        t_delta_x = -1.0 / dx
    else:
        step_x = 0
        t_max_x = inf
        t_delta_x = inf
    if dy > 0.0:
        step_y = 1
        t_max_y = ((iy + 1) - gy) / dy
        t_delta_y = 1.0 / dy
    elif dy < 0.0:
        step_y = -1
        t_max_y = (iy - gy) / dy
        t_delta_y = -1.0 / dy
    else:
        step_y = 0
        t_max_y = inf
        t_delta_y = inf
    limit = max_range / cell
    while True:
        if t_max_x < t_max_y:
            t = t_max_x
            if t > limit:
                return inf
            ix += step_x
            t_max_x += t_delta_x
            if _is_wall(occ, ny, nx, iy, ix):
                return t * cell
        elif t_max_y < t_max_x:
            t = t_max_y
            if t > limit:
                return inf
            iy += step_y
            t_max_y += t_delta_y
            if _is_wall(occ, ny, nx, iy, ix):
                return t * cell
        else:
            # Through a cell corner exactly: touching either side cell is a hit (closed boxes).
            t = t_max_x
            if t > limit:
                return inf
            if _is_wall(occ, ny, nx, iy, ix + step_x) or _is_wall(occ, ny, nx, iy + step_y, ix):
                return t * cell
            ix += step_x
            iy += step_y
            t_max_x += t_delta_x
            t_max_y += t_delta_y
            if _is_wall(occ, ny, nx, iy, ix):
                return t * cell


@njit(cache=True, nogil=True)
def grid_raycast(occ: np.ndarray, cell: float, xs: np.ndarray, ys: np.ndarray, angles: np.ndarray,
                 max_range: float, out: np.ndarray) -> None:
    """Cast rays i from (xs[i], ys[i]) at world angle angles[i] into one grid; write distances to out[i]."""
    ny, nx = occ.shape
    for i in range(angles.shape[0]):
        out[i] = _cast_one(occ, ny, nx, cell, xs[i], ys[i], angles[i], max_range)


@njit(cache=True, nogil=True)
def grid_raycast_batch(occs: np.ndarray, shapes: np.ndarray, cells: np.ndarray, xs: np.ndarray,
                       ys: np.ndarray, angles: np.ndarray, counts: np.ndarray, max_range: float,
                       out: np.ndarray) -> None:
    """Many mazes at once: env e uses grid ``occs[e, :shapes[e,0], :shapes[e,1]]`` with cell ``cells[e]``.

    ``xs, ys, angles, out`` are [E, B]; only the first ``counts[e]`` rays of row e are cast (beam counts may
    differ per env under randomization); the rest of the row is left untouched.
    """
    for e in range(occs.shape[0]):
        ny = shapes[e, 0]
        nx = shapes[e, 1]
        occ = occs[e]
        c = cells[e]
        for i in range(counts[e]):
            out[e, i] = _cast_one(occ, ny, nx, c, xs[e, i], ys[e, i], angles[e, i], max_range)


@njit(cache=True, nogil=True, inline="always")
def _cast_circles(circles: np.ndarray, near: np.ndarray, m: int, x: float, y: float, dx: float, dy: float,
                  best: float) -> float:
    """Nearest of ``best`` and the hits of a ray from (x, y) along unit (dx, dy) on circles ``near[:m]``."""
    for q in range(m):
        k = near[q]
        fx = x - circles[k, 0]
        fy = y - circles[k, 1]
        r = circles[k, 2]
        cc = fx * fx + fy * fy - r * r
        if cc <= 0.0:
            return 0.0
        b = fx * dx + fy * dy
        if b >= 0.0:
            continue  # outside and heading away
        disc = b * b - cc
        if disc < 0.0:
            continue
        t = -b - math.sqrt(disc)
        if t < best:
            best = t
    return best


@njit(cache=True, nogil=True)
def grid_raycast_batch_circles(occs: np.ndarray, shapes: np.ndarray, cells: np.ndarray, xs: np.ndarray,
                               ys: np.ndarray, angles: np.ndarray, counts: np.ndarray, max_range: float,
                               circles: np.ndarray, ncircles: np.ndarray, out: np.ndarray) -> None:
    """`grid_raycast_batch` with moving obstacles: env e also sees circles ``circles[e, :ncircles[e]]`` (x, y, r).

    Per env, only circles that some ray can reach are tested: those within max_range (plus their radius and the
    spread of the ray origins, which motion skew moves along the tick) of the first ray's origin.
    """
    near = np.empty(circles.shape[1], dtype=np.int64)
    for e in range(occs.shape[0]):
        ny = shapes[e, 0]
        nx = shapes[e, 1]
        occ = occs[e]
        c = cells[e]
        n = counts[e]
        circ = circles[e]
        m = 0
        if ncircles[e] > 0 and n > 0:
            x0, y0 = xs[e, 0], ys[e, 0]
            spread = 0.0
            for i in range(1, n):
                spread = max(spread, abs(xs[e, i] - x0) + abs(ys[e, i] - y0))
            for k in range(ncircles[e]):
                reach = max_range + circ[k, 2] + spread
                ddx, ddy = circ[k, 0] - x0, circ[k, 1] - y0
                if ddx * ddx + ddy * ddy <= reach * reach:
                    near[m] = k
                    m += 1
        for i in range(n):
            dx = math.cos(angles[e, i])
            dy = math.sin(angles[e, i])
            d = _cast_dir(occ, ny, nx, c, xs[e, i], ys[e, i], dx, dy, max_range)
            if m > 0:
                d = _cast_circles(circ, near, m, xs[e, i], ys[e, i], dx, dy, d)
                if d > max_range:
                    d = math.inf
            out[e, i] = d


def circle_raycast_reference(circles: np.ndarray, xs: np.ndarray, ys: np.ndarray, angles: np.ndarray,
                             max_range: float) -> np.ndarray:
    """NumPy reference for the circles alone: nearest ray-circle hit of every ray, +inf beyond max_range.

    Solves |o + t d - c|^2 = r^2 for all rays x circles at once (the smaller root; 0 from inside a circle).
    """
    c = np.asarray(circles, np.float64).reshape(-1, 3)
    x = np.asarray(xs, np.float64)[:, None]
    y = np.asarray(ys, np.float64)[:, None]
    dx = np.cos(np.asarray(angles, np.float64))[:, None]
    dy = np.sin(np.asarray(angles, np.float64))[:, None]
    fx, fy = x - c[None, :, 0], y - c[None, :, 1]
    b = fx * dx + fy * dy
    cc = fx * fx + fy * fy - c[None, :, 2] ** 2
    disc = b * b - cc
    with np.errstate(invalid="ignore"):
        t = -b - np.sqrt(disc)
    t = np.where((disc >= 0) & (t >= 0), t, np.inf)
    t = np.where(cc <= 0, 0.0, t)
    best = t.min(axis=1) if c.shape[0] else np.full(len(x), np.inf)
    return np.where(best <= max_range, best, np.inf)


def grid_raycast_reference(occ: np.ndarray, cell: float, xs: np.ndarray, ys: np.ndarray,
                           angles: np.ndarray, max_range: float) -> np.ndarray:
    """NumPy reference: slab intersection of every ray with every wall box (and the outer ring), min over boxes.

    An independent algorithm from the DDA walk (no stepping), vectorised over rays x boxes.
    """
    ny, nx = occ.shape
    iy, ix = np.nonzero(occ)
    # Outer ring of wall cells, one cell thick, makes "outside is wall" explicit for the reference.
    ring_x = np.concatenate([np.arange(-1, nx + 1), np.arange(-1, nx + 1), np.full(ny, -1), np.full(ny, nx)])
    ring_y = np.concatenate([np.full(nx + 2, -1), np.full(nx + 2, ny), np.arange(ny), np.arange(ny)])
    bx = np.concatenate([ix, ring_x]).astype(np.float64) * cell
    by = np.concatenate([iy, ring_y]).astype(np.float64) * cell
    x = np.asarray(xs, np.float64)[:, None]
    y = np.asarray(ys, np.float64)[:, None]
    dx = np.cos(np.asarray(angles, np.float64))[:, None]
    dy = np.sin(np.asarray(angles, np.float64))[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        tx1 = (bx[None, :] - x) / dx
        tx2 = (bx[None, :] + cell - x) / dx
        ty1 = (by[None, :] - y) / dy
        ty2 = (by[None, :] + cell - y) / dy
    # Parallel rays: inside the slab -> (-inf, inf), outside -> empty.
    in_x = (x >= bx[None, :]) & (x <= bx[None, :] + cell)
    in_y = (y >= by[None, :]) & (y <= by[None, :] + cell)
    txmin = np.where(dx == 0, np.where(in_x, -np.inf, np.inf), np.minimum(tx1, tx2))
    txmax = np.where(dx == 0, np.where(in_x, np.inf, -np.inf), np.maximum(tx1, tx2))
    tymin = np.where(dy == 0, np.where(in_y, -np.inf, np.inf), np.minimum(ty1, ty2))
    tymax = np.where(dy == 0, np.where(in_y, np.inf, -np.inf), np.maximum(ty1, ty2))
    tmin = np.maximum(txmin, tymin)
    tmax = np.minimum(txmax, tymax)
    hit = (tmax >= tmin) & (tmax >= 0)
    t = np.where(hit, np.maximum(tmin, 0.0), np.inf).min(axis=1)
    return np.where(t <= max_range, t, np.inf)
