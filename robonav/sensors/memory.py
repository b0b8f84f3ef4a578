"""Obstacle and trajectory memory: two grids in the odometry frame, each kept as a three-level max pyramid.

Grids. Level 0 is ``grid_cells`` squared cells of ``grid_resolution`` (default 384 x 0.125 m = 48 m, enough
for an 11x11 maze of 1 m cells wherever the robot starts). Level 1 has one cell per fine patch pixel, level 2
one per coarse patch pixel; every cell above level 0 holds the max of the cells below it, kept exact
incrementally: a rise propagates up at once, a fall queues the parent for a recompute at the end of the step
(``flush_queues``). The patches read levels 1 and 2, so a coarse pixel shows a wall one grid cell thin.

Obstacle memory (int8 log-odds units, clamped to [log_odds_min, log_odds_max], 0 = unknown). Each step every
RANGE beam within map_range adds ``hit`` to the cell it ends in; then each clearing ray (scan.py) adds ``miss``
to the cells it crosses (exact grid traversal) up to its free range. A cell is updated at most once per step and
a hit wins: a cell hit in this scan is not cleared by it. INVALID (NaN) beams neither hit nor clear.

Trajectory memory (uint8 visit counts, saturating at 255). Each time the robot's grid cell changes, every cell
within trail_radius of it gains one visit; a robot standing or turning in place adds nothing.

Lazy decay. With ``*_decay_steps = P > 0``, a value moves one unit toward 0 at every step that is a multiple of
P (a global tick), never past 0. Each cell stores its value and the tick of its last write; readers compute the
decayed value from the tick difference, so no step passes over the grid. Because every value decays on the same
ticks, the max of decayed values is the decayed max and the pyramid stays exact without touching it.

Recentring. When the robot comes within ``recentre_margin_cells`` of an edge (far enough that every patch sample
and every beam written stays inside), all levels shift by a whole number of coarse cells that puts the robot's
cell back in the middle. What that loses: every cell that ends up outside the grid, i.e. all memory more than
about half the grid side (24 m by default) from the robot along x or y at that moment, is forgotten for good; a
cell that re-enters the grid later starts unknown. Nothing else changes: no resampling (the shift is exact, so
values and decay ticks move unchanged), and the map stays in the odometry frame (recentring corrects no drift).
A jump farther than the grid (a huge odometry delta) clears both memories.
"""

from __future__ import annotations

import math

import numpy as np

from robonav.sensors.jit import inline_kernel, kernel
from robonav.sensors.layout import NO_MARK, S_MARK_I, S_MARK_J, S_RECENTRES, W_OX, W_OY, W_X, W_Y
from robonav.sensors.scan import RANGE, classify

__all__ = ["clear_free", "decayed", "flush_queues", "mark_hits", "mark_visit", "recentre", "shift_square"]


@inline_kernel
def decayed(value: int, tick: int, now: int) -> int:
    """``value`` after ``now - tick`` decay ticks: one unit toward 0 per tick, never past 0."""
    v = np.int64(value)
    k = np.int64(now) - np.int64(tick)
    if v > 0:
        return max(v - k, 0)
    return min(v + k, 0)


@inline_kernel
def read_cell(vals: np.ndarray, ticks: np.ndarray, idx: int, now: int, decay: bool) -> int:
    """Current value of cell ``idx`` of a pyramid buffer."""
    if decay:
        return decayed(vals[idx], ticks[idx], now)
    return np.int64(vals[idx])


@inline_kernel
def write_cell(vals: np.ndarray, ticks: np.ndarray, idx: int, value: int, now: int, decay: bool) -> None:
    """Store ``value`` as the current value of cell ``idx``."""
    vals[idx] = value
    if decay:
        ticks[idx] = now


@kernel
def raise_parents(vals: np.ndarray, ticks: np.ndarray, n0: int, f1: int, f2: int, i: int, j: int, value: int,
                  now: int, decay: bool) -> None:
    """Level-0 cell (i, j) rose to ``value``: lift its level-1 and level-2 parents to at least that."""
    n1 = n0 // f1
    n2 = n1 // f2
    i1 = i // f1
    j1 = j // f1
    p1 = n0 * n0 + i1 * n1 + j1
    if read_cell(vals, ticks, p1, now, decay) >= value:
        return
    write_cell(vals, ticks, p1, value, now, decay)
    p2 = n0 * n0 + n1 * n1 + (i1 // f2) * n2 + j1 // f2
    if read_cell(vals, ticks, p2, now, decay) < value:
        write_cell(vals, ticks, p2, value, now, decay)


@inline_kernel
def update_obstacle(occ: np.ndarray, ticks: np.ndarray, marks: np.ndarray, n0: int, f1: int, f2: int, i: int,
                    j: int, delta: int, lo: int, hi: int, step: int, now: int, decay: bool, queued: int) -> int:
    """Add ``delta`` to obstacle cell (i, j) unless it was updated this step; returns the level-1 queue length."""
    idx = i * n0 + j
    if marks[idx] == step:
        return queued
    marks[idx] = step
    old = read_cell(occ, ticks, idx, now, decay)
    new = min(max(old + delta, lo), hi)
    if new == old:
        return queued
    write_cell(occ, ticks, idx, new, now, decay)
    if new > old:
        raise_parents(occ, ticks, n0, f1, f2, i, j, new, now, decay)
        return queued
    n1 = n0 // f1
    n2 = n1 // f2
    p = (i // f1) * n1 + j // f1
    if marks[n0 * n0 + p] == step or old < read_cell(occ, ticks, n0 * n0 + p, now, decay):
        return queued  # already queued, or the cell was not its parent's max
    marks[n0 * n0 + p] = step
    marks[n0 * n0 + n1 * n1 + n2 * n2 + queued] = p
    return queued + 1


@kernel
def mark_hits(ranges: np.ndarray, directions: np.ndarray, range_min: float, range_max: float, below: int,
              above: int, map_range: float, x: float, y: float, c: float, s: float, ox: float, oy: float,
              res: float, occ: np.ndarray, ticks: np.ndarray, marks: np.ndarray, n0: int, f1: int, f2: int,
              hit: int, lo: int, hi: int, step: int, now: int, decay: bool) -> None:
    """Add ``hit`` to the cell of every RANGE beam end within ``map_range`` (robot at x, y; heading cos c, sin s)."""
    for b in range(ranges.shape[0]):
        r = np.float64(ranges[b])
        if classify(r, range_min, range_max, below, above) != RANGE or r > map_range:
            continue
        bc = directions[0, b]
        bs = directions[1, b]
        hu = (x + r * (c * bc - s * bs) - ox) / res
        hv = (y + r * (s * bc + c * bs) - oy) / res
        if hu >= 0.0 and hu < n0 and hv >= 0.0 and hv < n0:
            update_obstacle(occ, ticks, marks, n0, f1, f2, int(math.floor(hu)), int(math.floor(hv)), hit, lo, hi,
                            step, now, decay, 0)


@inline_kernel
def crossing(start: int, k: int, u: float, d: float) -> float:
    """Ray parameter (cells) of the k-th grid line crossed from cell ``start`` at position ``u``, direction ``d``."""
    if d > 0.0:
        return (np.float64(start + k) - u) / d
    if d < 0.0:
        return (np.float64(start - k + 1) - u) / d
    return math.inf


@kernel
def clear_free(directions: np.ndarray, num_rays: int, ray_free: np.ndarray, ray_beam: np.ndarray, map_range: float,
               x: float, y: float, c: float, s: float, ox: float, oy: float, res: float, occ: np.ndarray,
               ticks: np.ndarray, marks: np.ndarray, n0: int, f1: int, f2: int, miss: int, lo: int, hi: int,
               step: int, now: int, decay: bool, queued: int) -> int:
    """Add ``miss`` to every cell each clearing ray crosses: from the robot's cell along beam ``ray_beam[ray]``
    up to min(ray_free[ray], map_range); a ray with ray_free +inf (no informative beam) clears nothing.

    Exact traversal: a ray visits its start cell and then one cell per grid line it crosses before its end; at a
    corner the x line is taken first. Returns the level-1 queue length.
    """
    u = (x - ox) / res
    v = (y - oy) / res
    if not (u >= 0.0 and u < n0 and v >= 0.0 and v < n0):
        return queued
    i0 = int(math.floor(u))
    j0 = int(math.floor(v))
    for ray in range(num_rays):
        if ray_free[ray] == math.inf:
            continue  # no beam of this sector informs (all NaN): clear nothing
        length = min(ray_free[ray], map_range)
        if not length > 0.0:
            continue
        lc = length / res
        rc = directions[0, ray_beam[ray]]
        rs = directions[1, ray_beam[ray]]
        dx = c * rc - s * rs
        dy = s * rc + c * rs
        si = 1 if dx > 0.0 else -1
        sj = 1 if dy > 0.0 else -1
        kx = 1
        ky = 1
        tx = crossing(i0, kx, u, dx)
        ty = crossing(j0, ky, v, dy)
        i = i0
        j = j0
        while True:
            queued = update_obstacle(occ, ticks, marks, n0, f1, f2, i, j, miss, lo, hi, step, now, decay, queued)
            if tx <= ty:
                if tx >= lc:
                    break
                i += si
                kx += 1
                tx = crossing(i0, kx, u, dx)
            else:
                if ty >= lc:
                    break
                j += sj
                ky += 1
                ty = crossing(j0, ky, v, dy)
            if i < 0 or i >= n0 or j < 0 or j >= n0:
                break
    return queued


@kernel
def recompute(vals: np.ndarray, ticks: np.ndarray, base: int, n: int, child_base: int, child_n: int, f: int,
              p: int, now: int, decay: bool) -> int:
    """Set cell ``p`` of the level at ``base`` (side n) to the max of its f x f children; returns the new value."""
    i = p // n
    j = p % n
    best = -(1 << 30)
    for a in range(i * f, i * f + f):
        for b in range(j * f, j * f + f):
            value = read_cell(vals, ticks, child_base + a * child_n + b, now, decay)
            if value > best:
                best = value
    write_cell(vals, ticks, base + p, best, now, decay)
    return best


@kernel
def flush_queues(occ: np.ndarray, ticks: np.ndarray, marks: np.ndarray, n0: int, f1: int, f2: int, step: int,
                 now: int, decay: bool, queued: int) -> None:
    """Recompute the queued level-1 cells, queue the level-2 parents whose max they were, recompute those."""
    n1 = n0 // f1
    n2 = n1 // f2
    base1 = n0 * n0
    base2 = base1 + n1 * n1
    queue1 = base2 + n2 * n2
    queue2 = queue1 + n1 * n1
    queued2 = 0
    for q in range(queued):
        p = np.int64(marks[queue1 + q])
        old = read_cell(occ, ticks, base1 + p, now, decay)
        new = recompute(occ, ticks, base1, n1, 0, n0, f1, p, now, decay)
        if new < old:
            p2 = (p // n1 // f2) * n2 + (p % n1) // f2
            if marks[base2 + p2] != step and old >= read_cell(occ, ticks, base2 + p2, now, decay):
                marks[base2 + p2] = step
                marks[queue2 + queued2] = p2
                queued2 += 1
    for q in range(queued2):
        recompute(occ, ticks, base2, n2, base1, n1, f2, np.int64(marks[queue2 + q]), now, decay)


@kernel
def mark_visit(vis: np.ndarray, ticks: np.ndarray, n0: int, f1: int, f2: int, ci: int, cj: int, trail_cells: int,
               trail_r2: float, now: int, decay: bool) -> None:
    """One visit for every cell within the trail radius (squared, in cells) of cell (ci, cj)."""
    for di in range(-trail_cells, trail_cells + 1):
        for dj in range(-trail_cells, trail_cells + 1):
            i = ci + di
            j = cj + dj
            if np.float64(di * di + dj * dj) > trail_r2 or i < 0 or i >= n0 or j < 0 or j >= n0:
                continue
            idx = i * n0 + j
            old = read_cell(vis, ticks, idx, now, decay)
            if old < 255:
                write_cell(vis, ticks, idx, old + 1, now, decay)
                raise_parents(vis, ticks, n0, f1, f2, i, j, old + 1, now, decay)


@kernel
def shift_square(a: np.ndarray, base: int, n: int, si: int, sj: int) -> None:
    """In place: cell (i, j) of the n x n square at ``base`` takes old cell (i + si, j + sj), 0 where outside."""
    i_first, i_last, i_step = (0, n, 1) if si >= 0 else (n - 1, -1, -1)
    j_first, j_last, j_step = (0, n, 1) if sj >= 0 else (n - 1, -1, -1)
    for i in range(i_first, i_last, i_step):
        src_i = i + si
        for j in range(j_first, j_last, j_step):
            src_j = j + sj
            if src_i >= 0 and src_i < n and src_j >= 0 and src_j < n:
                a[base + i * n + j] = a[base + src_i * n + src_j]
            else:
                a[base + i * n + j] = 0


@kernel
def shift_pyramid(a: np.ndarray, n0: int, f1: int, f2: int, si: int, sj: int) -> None:
    """Shift all three levels of a pyramid buffer by (si, sj) level-0 cells (multiples of f1 * f2)."""
    n1 = n0 // f1
    n2 = n1 // f2
    shift_square(a, 0, n0, si, sj)
    shift_square(a, n0 * n0, n1, si // f1, sj // f1)
    shift_square(a, n0 * n0 + n1 * n1, n2, si // (f1 * f2), sj // (f1 * f2))


@kernel
def recentre(work_f: np.ndarray, state_i: np.ndarray, occ: np.ndarray, occ_ticks: np.ndarray, vis: np.ndarray,
             vis_ticks: np.ndarray, n0: int, f1: int, f2: int, margin: int, res: float) -> bool:
    """If the robot is within ``margin`` cells of an edge, shift both pyramids (whole coarse cells) so that its
    cell is back in the middle, and move the grid origin to match. Returns whether it recentred."""
    u = (work_f[W_X] - work_f[W_OX]) / res
    v = (work_f[W_Y] - work_f[W_OY]) / res
    if u >= margin and u < n0 - margin and v >= margin and v < n0 - margin:
        return False
    f = f1 * f2
    half = n0 // 2
    qi = np.floor((np.floor(u) - half + f // 2) / f)  # coarse cells to shift by (float: u may be huge)
    qj = np.floor((np.floor(v) - half + f // 2) / f)
    work_f[W_OX] += (qi * f) * res
    work_f[W_OY] += (qj * f) * res
    state_i[S_RECENTRES] += 1
    if abs(qi * f) >= n0 or abs(qj * f) >= n0:
        occ[:] = 0
        occ_ticks[:] = 0
        vis[:] = 0
        vis_ticks[:] = 0
        state_i[S_MARK_I] = NO_MARK
        state_i[S_MARK_J] = NO_MARK
        return True
    si = int(qi) * f
    sj = int(qj) * f
    shift_pyramid(occ, n0, f1, f2, si, sj)
    shift_pyramid(vis, n0, f1, f2, si, sj)
    shift_pyramid(occ_ticks, n0, f1, f2, si, sj)
    shift_pyramid(vis_ticks, n0, f1, f2, si, sj)
    if state_i[S_MARK_I] != NO_MARK:
        state_i[S_MARK_I] -= si
        state_i[S_MARK_J] -= sj
    return True
