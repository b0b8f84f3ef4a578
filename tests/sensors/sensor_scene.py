"""Synthetic scenes for the sensor tests: a grid maze, a NumPy ray caster and a robot that drives waypoints.

World frame = odometry frame (the robot starts at the origin facing +x); a maze is given as text rows, '#' a wall
cell, anything else free; character (row, col) covers x in [col, col + 1) * cell - offset, y likewise from rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from robonav.sensors.frame import ScanSpec, SensorFrame

DEAD_END = [
    "###########",
    "#.........#",
    "#.#######.#",
    "#.#.....#.#",
    "#.#.###.#.#",
    "#...#...#.#",
    "#####.###.#",
    "#.........#",
    "###########",
]


class Maze:
    """Wall cells of a text maze, placed so that the robot's start cell centre is the world origin."""

    def __init__(self, rows: list[str], start: tuple[int, int], cell: float = 1.0) -> None:
        self.walls = np.array([[ch == "#" for ch in row] for row in rows], bool).T  # [col (x), row (y)]
        self.cell = cell
        self.offset = np.array([(start[0] + 0.5) * cell, (start[1] + 0.5) * cell])  # start (col, row) -> origin

    def centre(self, col: int, row: int) -> tuple[float, float]:
        """World position of the centre of cell (col, row)."""
        return (col + 0.5) * self.cell - self.offset[0], (row + 0.5) * self.cell - self.offset[1]

    def is_wall(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Whether world points lie in a wall cell (outside the maze counts as wall)."""
        i = np.floor((x + self.offset[0]) / self.cell).astype(np.int64)
        j = np.floor((y + self.offset[1]) / self.cell).astype(np.int64)
        inside = (i >= 0) & (i < self.walls.shape[0]) & (j >= 0) & (j < self.walls.shape[1])
        return ~inside | self.walls[np.clip(i, 0, self.walls.shape[0] - 1), np.clip(j, 0, self.walls.shape[1] - 1)]

    def cast(self, pose: np.ndarray, scan: ScanSpec) -> np.ndarray:
        """float32 ranges from ``pose`` (exact grid traversal of every beam); +inf beyond range_max (REP 117)."""
        angles = pose[2] + scan.beam_angles()
        dx, dy = np.cos(angles), np.sin(angles)
        u, v = (pose[0] + self.offset[0]) / self.cell, (pose[1] + self.offset[1]) / self.cell
        i = np.full(angles.shape, math.floor(u))
        j = np.full(angles.shape, math.floor(v))
        step_i, step_j = np.where(dx > 0, 1, -1), np.where(dy > 0, 1, -1)
        with np.errstate(divide="ignore"):
            delta_x, delta_y = 1.0 / np.abs(dx), 1.0 / np.abs(dy)  # ray length (cells) per cell crossed
        next_x = np.where(dx > 0, i + 1 - u, u - i) * delta_x  # ray length to the first vertical line
        next_y = np.where(dy > 0, j + 1 - v, v - j) * delta_y
        dist = np.full(angles.shape, np.inf)
        for _ in range(2 * math.ceil(scan.range_max / self.cell) + 4):
            open_ = np.isinf(dist)
            along_x = next_x < next_y
            t = np.where(along_x, next_x, next_y)
            i = np.where(open_ & along_x, i + step_i, i)
            j = np.where(open_ & ~along_x, j + step_j, j)
            next_x = np.where(open_ & along_x, next_x + delta_x, next_x)
            next_y = np.where(open_ & ~along_x, next_y + delta_y, next_y)
            inside = (i >= 0) & (i < self.walls.shape[0]) & (j >= 0) & (j < self.walls.shape[1])
            wall = ~inside | self.walls[np.clip(i, 0, self.walls.shape[0] - 1), np.clip(j, 0, self.walls.shape[1] - 1)]
            dist = np.where(open_ & wall, t * self.cell, dist)
        dist[dist > scan.range_max] = np.inf
        return dist.astype(np.float32)


def drive(waypoints: list[tuple[float, float]], speed: float = 0.5, period: float = 0.1,
          turn_rate: float = 2.0) -> Iterator[np.ndarray]:
    """Poses (x, y, theta) of a robot that turns in place toward each waypoint, then drives straight to it."""
    pose = np.zeros(3)
    yield pose.copy()
    for wx, wy in waypoints:
        heading = math.atan2(wy - pose[1], wx - pose[0])
        while True:
            err = (heading - pose[2] + math.pi) % (2 * math.pi) - math.pi
            if abs(err) < 1e-9:
                break
            pose[2] += max(-turn_rate * period, min(turn_rate * period, err))
            yield pose.copy()
        while True:
            dist = math.hypot(wx - pose[0], wy - pose[1])
            if dist < 1e-9:
                break
            stride = min(dist, speed * period)
            pose[0] += stride * math.cos(pose[2])
            pose[1] += stride * math.sin(pose[2])
            yield pose.copy()


def delta(prev: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Odometry delta (dx, dy, dtheta) from ``prev`` to ``pose`` in the frame of ``prev``."""
    c, s = math.cos(prev[2]), math.sin(prev[2])
    ex, ey = pose[0] - prev[0], pose[1] - prev[1]
    dth = (pose[2] - prev[2] + math.pi) % (2 * math.pi) - math.pi
    return np.array([c * ex + s * ey, -s * ex + c * ey, dth])


def frames(maze: Maze, poses: list[np.ndarray], scan: ScanSpec, goal: tuple[float, float] = (0.0, 0.0),
           episode_id: int = 0) -> list[SensorFrame]:
    """One SensorFrame per pose: the cast scan and the odometry delta from the previous pose."""
    out, prev = [], poses[0]
    for pose in poses:
        out.append(SensorFrame(maze.cast(pose, scan), scan, delta(prev, pose), np.array(goal), episode_id))
        prev = pose
    return out
