"""The benchmarks' recorded drive: a robot following the depth-first walk of a generated 7x7 maze, scans cast
exactly with 1 cm noise and 1 % NaN dropouts, as SensorFrames (shared by preprocess.py and guidance_budget.py)."""

from __future__ import annotations

import math

import numpy as np

from robonav.sensors import ScanSpec, SensorFrame

__all__ = ["cast", "make_frames", "perfect_maze"]


def perfect_maze(n: int, seed: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Walls [2n+1, 2n+1] (True = wall, 1 m cells) of a depth-first perfect maze, and the depth-first walk
    (with its backtracking) through the passage cells: a route that explores and revisits."""
    rng = np.random.default_rng(seed)
    walls = np.ones((2 * n + 1, 2 * n + 1), bool)
    walk, stack, seen = [(0, 0)], [(0, 0)], {(0, 0)}
    walls[1, 1] = False
    while stack:
        i, j = stack[-1]
        options = [(i + di, j + dj) for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1))
                   if 0 <= i + di < n and 0 <= j + dj < n and (i + di, j + dj) not in seen]
        if options:
            a, b = options[rng.integers(len(options))]
            walls[2 * a + 1, 2 * b + 1] = walls[i + a + 1, j + b + 1] = False
            seen.add((a, b))
            stack.append((a, b))
        else:
            stack.pop()
        if stack:
            walk.append(stack[-1])
    return walls, walk


def cast(walls: np.ndarray, pose: np.ndarray, angles: np.ndarray, range_max: float) -> np.ndarray:
    """Exact ranges from ``pose`` (maze coordinates, 1 m cells) along ``angles`` (robot frame); +inf beyond."""
    a = pose[2] + angles
    dx, dy = np.cos(a), np.sin(a)
    i = np.full(a.shape, math.floor(pose[0]))
    j = np.full(a.shape, math.floor(pose[1]))
    step_i, step_j = np.where(dx > 0, 1, -1), np.where(dy > 0, 1, -1)
    with np.errstate(divide="ignore"):
        delta_x, delta_y = 1.0 / np.abs(dx), 1.0 / np.abs(dy)
    next_x = np.where(dx > 0, i + 1 - pose[0], pose[0] - i) * delta_x
    next_y = np.where(dy > 0, j + 1 - pose[1], pose[1] - j) * delta_y
    dist = np.full(a.shape, np.inf)
    for _ in range(2 * math.ceil(range_max) + 4):
        open_, along_x = np.isinf(dist), next_x < next_y
        t = np.where(along_x, next_x, next_y)
        i, j = np.where(open_ & along_x, i + step_i, i), np.where(open_ & ~along_x, j + step_j, j)
        next_x = np.where(open_ & along_x, next_x + delta_x, next_x)
        next_y = np.where(open_ & ~along_x, next_y + delta_y, next_y)
        dist = np.where(open_ & walls[np.clip(i, 0, walls.shape[0] - 1), np.clip(j, 0, walls.shape[1] - 1)], t, dist)
    dist[dist > range_max] = np.inf
    return dist


def make_frames(beams: int, count: int, seed: int = 0) -> list[SensorFrame]:
    """``count`` frames of a robot following the depth-first walk of a 7x7 maze (turn in place, then drive)."""
    walls, walk = perfect_maze(7, seed)
    scan = ScanSpec.evenly_spaced(beams)
    angles = scan.beam_angles()
    rng = np.random.default_rng(seed + 1)
    pose = np.array([1.5, 1.5, 0.0])
    goal = np.array([12.0, 12.0])  # odometry frame: from the start cell's centre
    out: list[SensorFrame] = []
    previous = pose.copy()

    def emit() -> None:
        nonlocal previous
        c, s = math.cos(previous[2]), math.sin(previous[2])
        ex, ey = pose[0] - previous[0], pose[1] - previous[1]
        dth = (pose[2] - previous[2] + math.pi) % (2 * math.pi) - math.pi
        r = cast(walls, pose, angles, scan.range_max) + rng.normal(0.0, 0.01, beams)
        r[rng.random(beams) < 0.01] = np.nan
        out.append(SensorFrame(r.astype(np.float32), scan, np.array([c * ex + s * ey, c * ey - s * ex, dth]), goal))
        previous = pose.copy()

    k = 1
    while len(out) < count:
        ci, cj = walk[k % len(walk)]
        k += 1
        target = (2 * ci + 1.5, 2 * cj + 1.5)  # through the passage between cells, one 1 m step at a time
        for wx, wy in (((pose[0] + target[0]) / 2, (pose[1] + target[1]) / 2), target):
            heading = math.atan2(wy - pose[1], wx - pose[0])
            while abs(err := (heading - pose[2] + math.pi) % (2 * math.pi) - math.pi) > 1e-9 and len(out) < count:
                pose[2] += max(-0.2, min(0.2, err))  # 2 rad/s
                emit()
            while (dist := math.hypot(wx - pose[0], wy - pose[1])) > 1e-9 and len(out) < count:
                stride = min(dist, 0.05)  # 0.5 m/s
                pose[0] += stride * math.cos(pose[2])
                pose[1] += stride * math.sin(pose[2])
                emit()
    return out
