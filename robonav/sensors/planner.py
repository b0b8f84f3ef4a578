"""Grid planning for the classical baseline: a cost map from the robot's obstacle memory, and A* over it.

Cost map (`cost_map`): every cell gets the Euclidean distance ``d`` (metres, centre to centre) to the nearest
obstacle cell within ``soft_radius``; its traversal cost per metre is then

    inf                                            d == 0 (the obstacle cell itself)
    lethal_cost                                    0 < d < lethal_radius (the robot's body would touch it)
    1 + soft_weight * (soft_radius - d) / (soft_radius - lethal_radius)    lethal_radius <= d < soft_radius
    1                                              farther

so paths keep to the middle of corridors, and a path through a gap narrower than the body is still found
(at a high price) when there is no other: with noisy maps a closed door is more often a mapping error.

A* (`astar`): 8-connected, no diagonal step past a blocked side cell, a step from cell u to v costs its length
(res or sqrt(2) * res) times the mean cost of u and v; the octile heuristic is admissible and consistent
because every cost is >= 1. Ties in the heap are broken by the flat cell index, so the Numba kernel and the
pure-Python reference (`astar_reference`) expand the same cells and return the same cost.
"""

from __future__ import annotations

import heapq
import math
from typing import NamedTuple

import numpy as np

from robonav.sensors.heap import heap_pop, heap_push
from robonav.sensors.jit import allocating_kernel

__all__ = ["Window", "astar", "astar_expansions", "astar_reference", "cost_map", "cost_map_reference",
           "nonzero_bounds", "path_points", "search_window"]

SQRT2 = math.sqrt(2.0)
BLOCKED_ENDPOINT_COST = 1e6
"""Cost per metre given to a blocked start or goal cell so A* can leave or enter it (finite, so sums stay exact)."""
_STEPS = np.array([[1, 0], [-1, 0], [0, 1], [0, -1], [1, 1], [1, -1], [-1, 1], [-1, -1]], dtype=np.int64)


# ----------------------------------------------------------------------------------------------- cost map
@allocating_kernel
def _cost_map(blocked: np.ndarray, res: float, lethal_radius: float, soft_radius: float, soft_weight: float,
              lethal_cost: float, dist: np.ndarray, cost: np.ndarray) -> None:
    """Fill ``dist`` (metres to the nearest blocked cell, inf beyond ``soft_radius``) and ``cost`` [W, H]."""
    w, h = blocked.shape
    dist[:, :] = np.inf
    k = int(math.floor(soft_radius / res))
    for i in range(w):
        for j in range(h):
            if not blocked[i, j]:
                continue
            for di in range(-k, k + 1):
                ii = i + di
                if ii < 0 or ii >= w:
                    continue
                for dj in range(-k, k + 1):
                    jj = j + dj
                    if jj < 0 or jj >= h:
                        continue
                    d = res * math.sqrt(di * di + dj * dj)
                    if d < soft_radius and d < dist[ii, jj]:
                        dist[ii, jj] = d
    span = soft_radius - lethal_radius
    for i in range(w):
        for j in range(h):
            d = dist[i, j]
            if d == 0.0:
                cost[i, j] = np.inf
            elif d < lethal_radius:
                cost[i, j] = lethal_cost
            elif d < soft_radius:
                cost[i, j] = 1.0 + soft_weight * (soft_radius - d) / span
            else:
                cost[i, j] = 1.0


def cost_map(blocked: np.ndarray, res: float, lethal_radius: float, soft_radius: float, soft_weight: float = 3.0,
             lethal_cost: float = 50.0) -> np.ndarray:
    """Traversal cost per metre, float64 [W, H], of a grid whose ``blocked`` cells are obstacles (see module)."""
    if not 0.0 < lethal_radius < soft_radius:
        raise ValueError(f"cost_map needs 0 < lethal_radius < soft_radius, got {lethal_radius} and {soft_radius}")
    b = np.ascontiguousarray(blocked, dtype=np.bool_)
    dist = np.empty(b.shape)
    cost = np.empty(b.shape)
    _cost_map(b, float(res), float(lethal_radius), float(soft_radius), float(soft_weight), float(lethal_cost), dist,
              cost)
    return cost


def cost_map_reference(blocked: np.ndarray, res: float, lethal_radius: float, soft_radius: float,
                       soft_weight: float = 3.0, lethal_cost: float = 50.0) -> np.ndarray:
    """NumPy twin of `cost_map`: the distance to every blocked cell, brute force."""
    b = np.asarray(blocked, dtype=bool)
    w, h = b.shape
    ii, jj = np.meshgrid(np.arange(w), np.arange(h), indexing="ij")
    dist = np.full((w, h), np.inf)
    for i, j in np.argwhere(b):
        d = res * np.sqrt((ii - i) ** 2.0 + (jj - j) ** 2.0)
        dist = np.minimum(dist, np.where(d < soft_radius, d, np.inf))
    soft = 1.0 + soft_weight * (soft_radius - dist) / (soft_radius - lethal_radius)
    cost = np.where(dist < soft_radius, soft, 1.0)
    cost = np.where(dist < lethal_radius, lethal_cost, cost)
    return np.where(dist == 0.0, np.inf, cost)


@allocating_kernel
def _nonzero_bounds(grid: np.ndarray) -> tuple[int, int, int, int]:
    """(i_lo, i_hi, j_lo, j_hi) inclusive bounds of the nonzero cells of ``grid``; (-1, -1, -1, -1) if none."""
    w, h = grid.shape
    i_lo, i_hi, j_lo, j_hi = w, -1, h, -1
    for i in range(w):
        for j in range(h):
            if grid[i, j] != 0:
                i_lo = min(i_lo, i)
                i_hi = max(i_hi, i)
                j_lo = min(j_lo, j)
                j_hi = max(j_hi, j)
    if i_hi < 0:
        return -1, -1, -1, -1
    return i_lo, i_hi, j_lo, j_hi


def nonzero_bounds(grid: np.ndarray) -> tuple[int, int, int, int] | None:
    """Inclusive (i_lo, i_hi, j_lo, j_hi) of the nonzero cells of a 2-D grid, or None if all are zero."""
    bounds = _nonzero_bounds(np.ascontiguousarray(grid))
    return None if bounds[1] < 0 else (int(bounds[0]), int(bounds[1]), int(bounds[2]), int(bounds[3]))


# --------------------------------------------------------------------------------------------------- A*
@allocating_kernel
def _octile(i: int, j: int, gi: int, gj: int, res: float) -> float:
    a = abs(i - gi)
    b = abs(j - gj)
    return res * (max(a, b) + (SQRT2 - 1.0) * min(a, b))


@allocating_kernel
def _astar(cost: np.ndarray, res: float, si: int, sj: int, gi: int, gj: int, g: np.ndarray, parent: np.ndarray,
           path: np.ndarray) -> tuple[int, float, int]:
    """A* from (si, sj) to (gi, gj) on ``cost`` [W, H]; writes the path's cells into ``path`` [K, 2] and returns
    (number of cells, cost, cells expanded), or (0, inf, cells expanded) when the goal cannot be reached."""
    w, h = cost.shape
    g[:, :] = np.inf
    parent[:, :] = -1
    flat_g = g.reshape(-1)
    flat_parent = parent.reshape(-1)
    capacity = 8 * w * h + 1
    keys = np.empty(capacity)
    items = np.empty(capacity, dtype=np.int64)
    start = si * h + sj
    goal = gi * h + gj
    flat_g[start] = 0.0
    n = heap_push(keys, items, 0, _octile(si, sj, gi, gj, res), start)
    closed = np.zeros(w * h, dtype=np.bool_)
    expanded = 0
    while n > 0:
        _, u, n = heap_pop(keys, items, n)
        if closed[u]:
            continue
        closed[u] = True
        expanded += 1
        if u == goal:
            break
        i = u // h
        j = u - i * h
        cu = cost[i, j]
        for k in range(8):
            di = _STEPS[k, 0]
            dj = _STEPS[k, 1]
            ni = i + di
            nj = j + dj
            if ni < 0 or ni >= w or nj < 0 or nj >= h:
                continue
            cv = cost[ni, nj]
            if cv == np.inf:
                continue
            if k >= 4:
                if cost[i + di, j] == np.inf or cost[i, j + dj] == np.inf:
                    continue
                step = SQRT2 * res
            else:
                step = res
            v = ni * h + nj
            nd = flat_g[u] + step * 0.5 * (cu + cv)
            if nd < flat_g[v]:
                flat_g[v] = nd
                flat_parent[v] = u
                n = heap_push(keys, items, n, nd + _octile(ni, nj, gi, gj, res), v)
    if not closed[goal]:
        return 0, np.inf, expanded
    count = 0
    u = goal
    while u != -1:
        count += 1
        u = flat_parent[u]
    u = goal
    for k in range(count - 1, -1, -1):
        path[k, 0] = u // h
        path[k, 1] = u - (u // h) * h
        u = flat_parent[u]
    return count, flat_g[goal], expanded


def _check_cell(name: str, cell: tuple[int, int], shape: tuple[int, ...]) -> tuple[int, int]:
    i, j = int(cell[0]), int(cell[1])
    if not (0 <= i < shape[0] and 0 <= j < shape[1]):
        raise ValueError(f"astar {name} cell {cell} lies outside the {shape[0]}x{shape[1]} cost map")
    return i, j


def astar(cost: np.ndarray, res: float, start: tuple[int, int], goal: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Cheapest 8-connected path from ``start`` to ``goal`` on ``cost`` [W, H] (cost per metre, inf = blocked).

    Returns (cells int64 [K, 2] from start to goal, cost); (empty [0, 2], inf) when there is none. The start and
    goal cells are searched from and to even if their own cost is inf.
    """
    cells, total, _ = astar_expansions(cost, res, start, goal)
    return cells, total


def astar_expansions(cost: np.ndarray, res: float, start: tuple[int, int],
                     goal: tuple[int, int]) -> tuple[np.ndarray, float, int]:
    """`astar`, and how many cells it expanded (the goal included; every reachable cell when there is no path)."""
    c = np.array(cost, dtype=np.float64, order="C")
    si, sj = _check_cell("start", start, c.shape)
    gi, gj = _check_cell("goal", goal, c.shape)
    for i, j in ((si, sj), (gi, gj)):
        if not np.isfinite(c[i, j]):
            c[i, j] = BLOCKED_ENDPOINT_COST  # enterable, never preferred
    g = np.empty(c.shape)
    parent = np.empty(c.shape, dtype=np.int64)
    path = np.empty((c.size, 2), dtype=np.int64)
    count, total, expanded = _astar(c, float(res), si, sj, gi, gj, g, parent, path)
    return path[:count].copy(), float(total), int(expanded)


def astar_reference(cost: np.ndarray, res: float, start: tuple[int, int],
                    goal: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Pure-Python (heapq) twin of `astar`, same tie-breaking."""
    c = np.array(cost, dtype=np.float64)
    w, h = c.shape
    for i, j in (start, goal):
        if not np.isfinite(c[i, j]):
            c[i, j] = BLOCKED_ENDPOINT_COST
    gi, gj = goal

    def octile(i: int, j: int) -> float:
        a, b = abs(i - gi), abs(j - gj)
        return res * (max(a, b) + (SQRT2 - 1.0) * min(a, b))

    best = {start[0] * h + start[1]: 0.0}
    parent: dict[int, int] = {}
    heap = [(octile(*start), start[0] * h + start[1])]
    closed = set()
    goal_flat = gi * h + gj
    while heap:
        _, u = heapq.heappop(heap)
        if u in closed:
            continue
        closed.add(u)
        if u == goal_flat:
            break
        i, j = divmod(u, h)
        for k, (di, dj) in enumerate(_STEPS.tolist()):
            ni, nj = i + di, j + dj
            if not (0 <= ni < w and 0 <= nj < h) or not np.isfinite(c[ni, nj]):
                continue
            if k >= 4 and not (np.isfinite(c[i + di, j]) and np.isfinite(c[i, j + dj])):
                continue
            nd = best[u] + (SQRT2 * res if k >= 4 else res) * 0.5 * (c[i, j] + c[ni, nj])
            v = ni * h + nj
            if nd < best.get(v, math.inf):
                best[v] = nd
                parent[v] = u
                heapq.heappush(heap, (nd + octile(ni, nj), v))
    if goal_flat not in closed:
        return np.zeros((0, 2), dtype=np.int64), math.inf
    cells = [goal_flat]
    while cells[-1] in parent:
        cells.append(parent[cells[-1]])
    return np.array([divmod(u, h) for u in reversed(cells)], dtype=np.int64), best[goal_flat]


# ------------------------------------------------------------------------------------ planning on a memory grid
class Window(NamedTuple):
    """The box of a memory grid a plan searches: cells [lo_i, hi_i] x [lo_j, hi_j] (inclusive), and the start
    and goal cells in window coordinates."""

    lo_i: int
    lo_j: int
    hi_i: int
    hi_j: int
    start: tuple[int, int]
    goal: tuple[int, int]

    def view(self, grid: np.ndarray) -> np.ndarray:
        """The window's part of ``grid`` (a view)."""
        return grid[self.lo_i:self.hi_i + 1, self.lo_j:self.hi_j + 1]


def search_window(occ: np.ndarray, origin: tuple[float, float], res: float, start: tuple[float, float],
                  goal: tuple[float, float], margin: float) -> Window:
    """The box around the known (nonzero) cells of ``occ``, the start and the goal, grown by ``margin`` metres and
    clipped to the grid; start and goal (odometry-frame metres) are clamped onto the grid."""
    n = occ.shape[0]
    ox, oy = origin

    def cell(x: float, y: float) -> tuple[int, int]:
        return (min(max(math.floor((x - ox) / res), 0), n - 1), min(max(math.floor((y - oy) / res), 0), n - 1))

    ri, rj = cell(float(start[0]), float(start[1]))
    gi, gj = cell(float(goal[0]), float(goal[1]))
    lo_i, hi_i, lo_j, hi_j = min(ri, gi), max(ri, gi), min(rj, gj), max(rj, gj)
    known = nonzero_bounds(occ)
    if known is not None:
        lo_i, hi_i = min(lo_i, known[0]), max(hi_i, known[1])
        lo_j, hi_j = min(lo_j, known[2]), max(hi_j, known[3])
    m = math.ceil(margin / res)
    lo_i, lo_j = max(lo_i - m, 0), max(lo_j - m, 0)
    hi_i, hi_j = min(hi_i + m, n - 1), min(hi_j + m, n - 1)
    return Window(lo_i, lo_j, hi_i, hi_j, (ri - lo_i, rj - lo_j), (gi - lo_i, gj - lo_j))


def path_points(cells: np.ndarray, window: Window, origin: tuple[float, float], res: float,
                goal: np.ndarray) -> np.ndarray:
    """Odometry-frame points [K + 1, 2] of an A* path's window cells (cell centres), ending exactly on ``goal``."""
    pts = np.empty((len(cells) + 1, 2))
    pts[:-1, 0] = origin[0] + (cells[:, 0] + window.lo_i + 0.5) * res
    pts[:-1, 1] = origin[1] + (cells[:, 1] + window.lo_j + 0.5) * res
    pts[-1] = goal
    return pts
