"""Geodesic distances in grid mazes: goal distance fields, shortest paths, diameters, start/goal draws.

The reward's progress term and SPL both need "how far is the goal along free space". `distance_field`
answers it on a sub-cell grid (``refine`` sub-cells per cell edge, h = cell / refine): an 8-connected
Dijkstra from the goal (axis step h, diagonal step sqrt(2)*h, no diagonal step past a wall corner), inf in
walls. `geodesic_at` reads the field at continuous world points by bilinear interpolation over the finite
neighbours, so the value is continuous in free space and falls along a shortest path.

The 8-connected metric overestimates the Euclidean geodesic by at most 8 % on off-axis stretches and is exact
along corridors, which is what mazes are made of. A straight corridor of L cells reads
L + (sqrt(2)-1)/2 * h from centre to centre (the goal seeds its four surrounding sub-cell centres at their
true distance, h/sqrt(2)); tests pin that number.

Every Numba kernel has a pure-Python twin (``*_reference``) and a parity test; ties in the heap are broken
by the flat index in both, so they agree bit for bit.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
from numba import njit

from robonav.errors import RobonavError
from robonav.sensors.heap import heap_pop as _heap_pop
from robonav.sensors.heap import heap_push as _heap_push
from robonav.sim.maze import Maze

SQRT2 = math.sqrt(2.0)
# Neighbour order (dy, dx): four axis moves, then four diagonals. Kernels and references share it.
_NEIGHBOURS = np.array([[-1, 0], [1, 0], [0, -1], [0, 1], [-1, -1], [-1, 1], [1, -1], [1, 1]], dtype=np.int64)


class GeodesicError(RobonavError, ValueError):
    """A distance query is impossible: the goal lies in a wall or off the grid, bad refine or fraction."""


# ------------------------------------------------------------------------------------------ Numba kernels
@njit(cache=True, nogil=True)
def _dijkstra_grid(free: np.ndarray, seeds: np.ndarray, seed_dist: np.ndarray, step: float,
                   dist: np.ndarray) -> None:
    """8-connected Dijkstra on ``free`` [R, C] from flat ``seeds`` at ``seed_dist``; fills ``dist`` [R, C].

    Axis step ``step``, diagonal step sqrt(2)*step, allowed only when both side cells are free.
    """
    rows, cols = free.shape
    dist[:, :] = np.inf
    flat = dist.reshape(-1)
    capacity = 8 * rows * cols + seeds.shape[0] + 1
    keys = np.empty(capacity, dtype=np.float64)
    items = np.empty(capacity, dtype=np.int64)
    n = 0
    for k in range(seeds.shape[0]):
        s = seeds[k]
        if seed_dist[k] < flat[s]:
            flat[s] = seed_dist[k]
            n = _heap_push(keys, items, n, seed_dist[k], s)
    diagonal = step * SQRT2
    while n > 0:
        d, u, n = _heap_pop(keys, items, n)
        if d > flat[u]:
            continue
        y = u // cols
        x = u - y * cols
        for k in range(8):
            dy = _NEIGHBOURS[k, 0]
            dx = _NEIGHBOURS[k, 1]
            ny = y + dy
            nx = x + dx
            if ny < 0 or ny >= rows or nx < 0 or nx >= cols or not free[ny, nx]:
                continue
            if k >= 4:
                if not free[y, nx] or not free[ny, x]:
                    continue
                nd = d + diagonal
            else:
                nd = d + step
            v = ny * cols + nx
            if nd < flat[v]:
                flat[v] = nd
                n = _heap_push(keys, items, n, nd, v)


@njit(cache=True, nogil=True)
def _nearest_finite(field: np.ndarray, h: float, x: float, y: float) -> float:
    """Value of the finite field sample whose sub-cell centre is nearest to (x, y); inf if none."""
    best = np.inf
    value = np.inf
    rows, cols = field.shape
    for iy in range(rows):
        dy = (iy + 0.5) * h - y
        for ix in range(cols):
            f = field[iy, ix]
            if f < np.inf:
                dx = (ix + 0.5) * h - x
                d2 = dx * dx + dy * dy
                if d2 < best:
                    best = d2
                    value = f
    return value


@njit(cache=True, nogil=True)
def _geodesic_at(field: np.ndarray, h: float, xs: np.ndarray, ys: np.ndarray, out: np.ndarray) -> None:
    rows, cols = field.shape
    for k in range(xs.shape[0]):
        x = xs[k]
        y = ys[k]
        if not (math.isfinite(x) and math.isfinite(y)):
            out[k] = np.nan
            continue
        cy = math.floor(y / h)
        cx = math.floor(x / h)
        if cy < 0 or cy >= rows or cx < 0 or cx >= cols or not field[cy, cx] < np.inf:
            out[k] = _nearest_finite(field, h, x, y)
            continue
        u = x / h - 0.5
        v = y / h - 0.5
        j0 = math.floor(u)
        i0 = math.floor(v)
        fx = u - j0
        fy = v - i0
        total = 0.0
        weight = 0.0
        for di in range(2):
            i = i0 + di
            wy = fy if di == 1 else 1.0 - fy
            if i < 0 or i >= rows:
                continue
            for dj in range(2):
                j = j0 + dj
                wx = fx if dj == 1 else 1.0 - fx
                if j < 0 or j >= cols:
                    continue
                f = field[i, j]
                if f < np.inf:
                    w = wx * wy
                    total += w * f
                    weight += w
        out[k] = total / weight if weight > 0.0 else _nearest_finite(field, h, x, y)


@njit(cache=True, nogil=True)
def _cell_diameter(free: np.ndarray, step: float) -> float:
    """Largest finite shortest-path distance between two free cells of ``free`` [R, C].

    Exact, with far fewer than one Dijkstra per cell: the bounding-diameters method (Takes & Kosters 2011).
    Each Dijkstra from s gives every cell v the bounds max(d(s,v), ecc(s)-d(s,v)) <= ecc(v) <= ecc(s)+d(s,v);
    a cell whose upper bound cannot beat the best eccentricity found so far is dropped. Sources alternate
    between the largest upper bound and the smallest lower bound.
    """
    rows, cols = free.shape
    nodes = np.flatnonzero(free.reshape(-1))
    k_nodes = nodes.shape[0]
    ecc_lo = np.zeros(k_nodes)
    ecc_hi = np.full(k_nodes, np.inf)
    alive = np.ones(k_nodes, dtype=np.bool_)
    dist = np.empty((rows, cols), dtype=np.float64)
    flat = dist.reshape(-1)
    seeds = np.zeros(1, dtype=np.int64)
    zero = np.zeros(1, dtype=np.float64)
    best = 0.0
    pick_high = True
    while True:
        s = -1
        for k in range(k_nodes):
            if alive[k] and (s < 0 or (pick_high and ecc_hi[k] > ecc_hi[s])
                             or (not pick_high and ecc_lo[k] < ecc_lo[s])):
                s = k
        if s < 0:
            return best
        pick_high = not pick_high
        seeds[0] = nodes[s]
        _dijkstra_grid(free, seeds, zero, step, dist)
        ecc = 0.0
        for k in range(k_nodes):
            d = flat[nodes[k]]
            if d < np.inf and d > ecc:
                ecc = d
        alive[s] = False
        if ecc > best:
            best = ecc
        for k in range(k_nodes):
            if not alive[k]:
                continue
            d = flat[nodes[k]]
            if d < np.inf:
                ecc_lo[k] = max(ecc_lo[k], d, ecc - d)
                ecc_hi[k] = min(ecc_hi[k], ecc + d)
            if ecc_hi[k] <= best:
                alive[k] = False


# ------------------------------------------------------------------------------------ pure-Python twins
def dijkstra_grid_reference(free: np.ndarray, seeds: list[int], seed_dist: list[float],
                            step: float) -> np.ndarray:
    """Pure-Python (heapq) twin of the Numba Dijkstra; same moves, same tie-breaking; float64 [R, C]."""
    rows, cols = free.shape
    flat = [math.inf] * (rows * cols)
    heap: list[tuple[float, int]] = []
    for s, d0 in zip(seeds, seed_dist):
        if d0 < flat[s]:
            flat[s] = d0
            heapq.heappush(heap, (d0, s))
    diagonal = step * SQRT2
    while heap:
        d, u = heapq.heappop(heap)
        if d > flat[u]:
            continue
        y, x = divmod(u, cols)
        for k, (dy, dx) in enumerate(_NEIGHBOURS.tolist()):
            ny, nx = y + dy, x + dx
            if not (0 <= ny < rows and 0 <= nx < cols and free[ny, nx]):
                continue
            if k >= 4 and not (free[y, nx] and free[ny, x]):
                continue
            nd = d + (diagonal if k >= 4 else step)
            v = ny * cols + nx
            if nd < flat[v]:
                flat[v] = nd
                heapq.heappush(heap, (nd, v))
    return np.array(flat, dtype=np.float64).reshape(rows, cols)


def geodesic_at_reference(field: np.ndarray, cell: float, refine: int, xs: np.ndarray,
                          ys: np.ndarray) -> np.ndarray:
    """NumPy twin of `geodesic_at` (one point at a time, vectorised fallback search)."""
    h = cell / refine
    rows, cols = field.shape
    finite = np.isfinite(field)
    iy_all, ix_all = np.nonzero(finite)
    out = np.empty(len(xs), dtype=np.float64)

    def nearest(x: float, y: float) -> float:
        if iy_all.size == 0:
            return math.inf
        d2 = ((ix_all + 0.5) * h - x) ** 2 + ((iy_all + 0.5) * h - y) ** 2
        k = int(np.argmin(d2))
        return float(field[iy_all[k], ix_all[k]])

    for k, (x, y) in enumerate(zip(np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64))):
        if not (math.isfinite(x) and math.isfinite(y)):
            out[k] = math.nan
            continue
        cy, cx = math.floor(y / h), math.floor(x / h)
        if not (0 <= cy < rows and 0 <= cx < cols and finite[cy, cx]):
            out[k] = nearest(x, y)
            continue
        u, v = x / h - 0.5, y / h - 0.5
        j0, i0 = math.floor(u), math.floor(v)
        fx, fy = u - j0, v - i0
        total = weight = 0.0
        for i, wy in ((i0, 1.0 - fy), (i0 + 1, fy)):
            for j, wx in ((j0, 1.0 - fx), (j0 + 1, fx)):
                if 0 <= i < rows and 0 <= j < cols and finite[i, j]:
                    total += wx * wy * field[i, j]
                    weight += wx * wy
        out[k] = total / weight if weight > 0.0 else nearest(x, y)
    return out


# ----------------------------------------------------------------------------------------- public API
def _sub_grid(occupancy: np.ndarray, cell: float, goal_xy: tuple[float, float],
              refine: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Free sub-cell grid [rows*refine, cols*refine] and the goal's seeds (flat index, distance)."""
    occ = np.asarray(occupancy, dtype=bool)
    if occ.ndim != 2 or occ.size == 0:
        raise GeodesicError(f"occupancy must be a non-empty 2-D bool grid [iy, ix], got shape {occ.shape}")
    if not (isinstance(refine, (int, np.integer)) and refine >= 1):
        raise GeodesicError(f"refine must be an integer >= 1 (sub-cells per cell edge), got {refine!r}")
    if not (math.isfinite(cell) and cell > 0.0):
        raise GeodesicError(f"cell must be a finite number of metres > 0, got {cell!r}")
    free = np.ascontiguousarray(np.repeat(np.repeat(~occ, refine, axis=0), refine, axis=1))
    rows, cols = free.shape
    h = cell / refine
    gx, gy = float(goal_xy[0]), float(goal_xy[1])
    cy = math.floor(gy / h) if math.isfinite(gy) else -1
    cx = math.floor(gx / h) if math.isfinite(gx) else -1
    if not (0 <= cy < rows and 0 <= cx < cols and free[cy, cx]):
        where = "in a wall" if 0 <= cy < rows and 0 <= cx < cols else "outside the grid"
        raise GeodesicError(
            f"goal_xy ({gx}, {gy}) is {where} (grid {occ.shape[1] * cell:g} m x {occ.shape[0] * cell:g} m, "
            "y north); expected a point in a free cell: pass maze.cell_center(maze.goal)")
    # Seed the (up to four) sub-cell centres around the goal at their Euclidean distance, if reachable
    # from the goal's own sub-cell without cutting a wall corner.
    i0, j0 = math.floor(gy / h - 0.5), math.floor(gx / h - 0.5)
    seeds, seed_dist = [], []
    for i in (i0, i0 + 1):
        for j in (j0, j0 + 1):
            if not (0 <= i < rows and 0 <= j < cols and free[i, j] and free[cy, j] and free[i, cx]):
                continue
            seeds.append(i * cols + j)
            seed_dist.append(math.hypot((j + 0.5) * h - gx, (i + 0.5) * h - gy))
    return free, np.array(seeds, dtype=np.int64), np.array(seed_dist, dtype=np.float64)


def distance_field(occupancy: np.ndarray, cell: float, goal_xy: tuple[float, float],
                   refine: int = 4) -> np.ndarray:
    """float64 [rows*refine, cols*refine] [iy, ix]: metres from ``goal_xy`` to each sub-cell centre.

    inf in walls and in free space the goal cannot reach. ``occupancy`` is the wall grid indexed [iy, ix]
    with y north (`Maze.occupancy`).
    """
    free, seeds, seed_dist = _sub_grid(occupancy, cell, goal_xy, refine)
    field = np.empty(free.shape, dtype=np.float64)
    _dijkstra_grid(free, seeds, seed_dist, cell / refine, field)
    return field


def distance_field_reference(occupancy: np.ndarray, cell: float, goal_xy: tuple[float, float],
                             refine: int = 4) -> np.ndarray:
    """Pure-Python (heapq) twin of `distance_field`."""
    free, seeds, seed_dist = _sub_grid(occupancy, cell, goal_xy, refine)
    return dijkstra_grid_reference(free, seeds.tolist(), seed_dist.tolist(), cell / refine)


def goal_field(maze: Maze, refine: int = 4) -> np.ndarray:
    """`distance_field` of ``maze`` from the centre of its goal cell."""
    return distance_field(maze.occupancy, maze.cell, maze.cell_center(maze.goal), refine)


def geodesic_at(field: np.ndarray, cell: float, refine: int, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Geodesic distance (metres) at world points (xs, ys), float64 [N], read from a `distance_field`.

    Bilinear over the four nearest sub-cell centres, using only finite ones (weights renormalised);
    points in walls, off the grid, or with no finite neighbour get the nearest finite sub-cell's value;
    non-finite inputs give NaN.
    """
    xs_a = np.ascontiguousarray(np.asarray(xs, dtype=np.float64).reshape(-1))
    ys_a = np.ascontiguousarray(np.asarray(ys, dtype=np.float64).reshape(-1))
    if xs_a.shape != ys_a.shape:
        raise GeodesicError(f"xs and ys must have the same length, got {xs_a.shape[0]} and {ys_a.shape[0]}")
    out = np.empty(xs_a.shape[0], dtype=np.float64)
    _geodesic_at(np.ascontiguousarray(field, dtype=np.float64), cell / refine, xs_a, ys_a, out)
    return out


@njit(cache=True, nogil=True)
def _geodesic_batch(fields: np.ndarray, hs: np.ndarray, xs: np.ndarray, ys: np.ndarray, out: np.ndarray) -> None:
    for i in range(xs.shape[0]):
        _geodesic_at(fields[i], hs[i], xs[i:i + 1], ys[i:i + 1], out[i:i + 1])


def geodesic_at_batch(fields: np.ndarray, h: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """`geodesic_at` of env i's point (xs[i], ys[i]) in its field ``fields[i]`` (float64 [N, H, W], each field in
    the corner of an inf-padded plane), sub-cell size ``h[i]`` metres: float64 [N], in one kernel call.
    The inf padding changes nothing: inf samples are skipped by the bilinear read and the nearest-finite search
    alike, and the field's own samples keep their order."""
    xs_a = np.ascontiguousarray(xs, dtype=np.float64)
    ys_a = np.ascontiguousarray(ys, dtype=np.float64)
    out = np.empty(xs_a.shape[0], dtype=np.float64)
    _geodesic_batch(np.ascontiguousarray(fields, dtype=np.float64), np.ascontiguousarray(h, dtype=np.float64),
                    xs_a, ys_a, out)
    return out


def shortest_path_length(maze: Maze, refine: int = 4) -> float:
    """Metres from the start cell's centre to the goal cell's centre, read from the goal's distance field."""
    x, y = maze.cell_center(maze.start)
    return float(geodesic_at(goal_field(maze, refine), maze.cell, refine, np.array([x]), np.array([y]))[0])


def cell_distances(maze: Maze, source: tuple[int, int]) -> np.ndarray:
    """float64 [rows, cols] in FILE coordinates (row 0 north): metres from cell ``source`` to every cell
    centre at cell resolution (8-connected, no corner cutting), inf in walls and unreachable cells."""
    if not maze.is_free(source):
        raise GeodesicError(f"source cell {source} of maze {maze.name!r} is not a free cell of the "
                            f"{maze.rows}x{maze.cols} grid; pick a row, col from maze.free_cells()")
    free = np.ascontiguousarray(~maze.walls)
    dist = np.empty(free.shape, dtype=np.float64)
    seed = np.array([source[0] * maze.cols + source[1]], dtype=np.int64)
    _dijkstra_grid(free, seed, np.zeros(1), maze.cell, dist)
    return dist


_DIAMETERS: dict[str, float] = {}
_DIAMETER_CACHE_SIZE = 65536


def geodesic_diameter(maze: Maze) -> float:
    """Largest shortest-path distance (metres) between two free cells, at cell resolution; cached by hash."""
    key = maze.hash()
    if key not in _DIAMETERS:
        if len(_DIAMETERS) >= _DIAMETER_CACHE_SIZE:
            _DIAMETERS.clear()
        _DIAMETERS[key] = float(_cell_diameter(np.ascontiguousarray(~maze.walls), maze.cell))
    return _DIAMETERS[key]


def geodesic_diameter_reference(maze: Maze) -> float:
    """Pure-Python twin of `geodesic_diameter` (all pairs with the heapq Dijkstra; small mazes only)."""
    free = ~maze.walls
    best = 0.0
    for r, c in maze.free_cells().tolist():
        dist = dijkstra_grid_reference(free, [r * maze.cols + c], [0.0], maze.cell)
        best = max(best, float(dist[np.isfinite(dist)].max()))
    return best


def sample_start_goal(maze: Maze, rng: np.random.Generator,
                      min_fraction: float = 0.5) -> tuple[tuple[int, int], tuple[int, int]]:
    """A (start, goal) pair of free cells, uniform over ordered pairs at least ``min_fraction`` of the
    geodesic diameter apart (cell-resolution metric). Rejection sampling: draw a start uniformly, accept it
    with probability (#far goals)/(#free cells), then draw one of its far goals uniformly."""
    if not (0.0 <= min_fraction <= 1.0):
        raise GeodesicError(f"min_fraction must lie in [0, 1] (share of the geodesic diameter), "
                            f"got {min_fraction!r}")
    cells = maze.free_cells()
    threshold = min_fraction * geodesic_diameter(maze) - 1e-9
    while True:
        r, c = (int(v) for v in cells[rng.integers(len(cells))])
        dist = cell_distances(maze, (r, c))
        far = np.argwhere((dist >= threshold) & np.isfinite(dist))
        far = far[(far[:, 0] != r) | (far[:, 1] != c)]
        if len(far) and rng.random() * len(cells) < len(far):
            gr, gc = far[rng.integers(len(far))]
            return (r, c), (int(gr), int(gc))
