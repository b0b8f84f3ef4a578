"""Moving obstacles: people-sized cylinders that walk a maze's free cells (the ``dynamic`` condition).

A mover walks from cell centre to the centre of a 4-neighbouring free cell (the segment between them lies in free
space), choosing at each centre a random next cell other than the one it came from, and turning back only in a
dead end. At a centre it may pause (``pause_prob``), and in a corridor cell (two free neighbours) it may stop
for long (``block_prob``), blocking the corridor. Two kinds, drawn per mover and episode: *oblivious* movers
ignore the robot until they touch it, *polite* ones stop while the robot is ahead of them within
``stop_distance``; either kind held up by the robot for ``give_way`` seconds in all on its way to the next
cell turns back (the time adds up over contacts, so a robot that backs off and is followed is not pushed for
ever: the count restarts only at a waypoint or on turning back).

Determinism: every episode's movers come from their own stream, ``default_rng([episode seed, DYNAMIC_STREAM])``,
so the maze, start, goal and noise streams are the same with or without movers. In the tick each mover carries
its own splitmix64 state, so what one env's movers do never depends on another env.

All envs' movers live in padded arrays [N, M] and advance in one Numba call (`step_movers`); the Python side
runs only at episode start (`Crowd.spawn`). Positions are in each maze's frame, like the robot's pose.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from robonav.errors import UserError
from robonav.sim.config import DynamicConfig
from robonav.sim.maze import Maze

__all__ = ["DYNAMIC_STREAM", "MOVER_MODEL", "Crowd", "DynamicError", "mover_count", "spawn_cells", "step_movers"]

DYNAMIC_STREAM = 0x6D6F76
"""Second word of the movers' seed sequence (``[episode seed, DYNAMIC_STREAM]``): a stream of their own."""

MOVER_MODEL = 2
"""Version of the movers' behaviour, recorded with results measured among movers: raised whenever a change makes
the same episode seed play out differently, so a result of an older model is known stale (1: the give-way time
restarted whenever contact broke; 2: it adds up between waypoints)."""

TOUCH_GAP = 0.0
"""An oblivious mover stops when the gap to the robot is at or below this (m): it walks until it bumps."""

_DIRS = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], dtype=np.int64)  # (dix, diy): east, north, west, south


class DynamicError(UserError, ValueError):
    """Moving obstacles cannot be placed as configured (density too high for the maze, no room to spawn)."""


def mover_count(cfg: DynamicConfig, maze: Maze, rng: np.random.Generator) -> int:
    """Movers for one episode: density x free area, rounded up or down at random so the mean is exact.

    The density is ``cfg.density``, or drawn uniformly up to ``cfg.density_max`` when that is set; the refusal
    of a crowd the maze cannot hold is judged on the highest density, so it never depends on the draw."""
    peak = cfg.peak_density
    if peak <= 0:
        return 0
    area = float((~maze.occupancy).sum()) * maze.cell * maze.cell
    if math.ceil(peak * area) > cfg.max_movers:
        key = "density" if cfg.density_max is None else "density_max"
        raise DynamicError(
            f"sim.dynamic.{key} {peak:g} asks for {peak * area:.1f} movers in maze {maze.name or maze.hash()} "
            f"({area:.0f} m^2 free), more than sim.dynamic.max_movers {cfg.max_movers}: give a density of at most "
            f"{cfg.max_movers / area:.4g} for this maze, or raise max_movers")
    density = cfg.density if cfg.density_max is None else float(rng.uniform(cfg.density, cfg.density_max))
    want = density * area
    return int(math.floor(want)) + int(rng.random() < want - math.floor(want))


def spawn_cells(maze: Maze, clearance: float) -> np.ndarray:
    """int [K, 2] (ix, iy) of free cells whose centre is at least ``clearance`` from the start and the goal."""
    occ = maze.occupancy
    iy, ix = np.nonzero(~occ)
    cx, cy = (ix + 0.5) * maze.cell, (iy + 0.5) * maze.cell
    ok = np.ones(len(ix), dtype=bool)
    for rc in (maze.start, maze.goal):
        x, y = maze.cell_center(rc)
        ok &= np.hypot(cx - x, cy - y) >= clearance
    return np.stack([ix[ok], iy[ok]], axis=1).astype(np.int64)


# -- the tick ------------------------------------------------------------------------------------------------

@njit(cache=True, nogil=True, inline="always")
def _next_u64(state: np.ndarray, e: int, k: int) -> float:
    """splitmix64 step of mover (e, k)'s state; a uniform float in [0, 1)."""
    z = (state[e, k] + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    state[e, k] = z
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return float(z >> np.uint64(11)) / 9007199254740992.0


@njit(cache=True, nogil=True, inline="always")
def _free(occ: np.ndarray, ny: int, nx: int, iy: int, ix: int) -> bool:
    return 0 <= iy < ny and 0 <= ix < nx and not occ[iy, ix]


@njit(cache=True, nogil=True)
def _arrive(occ: np.ndarray, ny: int, nx: int, cur: np.ndarray, tgt: np.ndarray, wait: np.ndarray,
            held: np.ndarray, state: np.ndarray, e: int, k: int, pause_prob: float, pause_lo: float, pause_hi: float,
            block_prob: float, block_lo: float, block_hi: float, dirs: np.ndarray) -> None:
    """Mover (e, k) reached its target cell: choose the next one (never back, unless a dead end) and maybe stop."""
    fx, fy = cur[e, k, 0], cur[e, k, 1]
    ix, iy = tgt[e, k, 0], tgt[e, k, 1]
    cur[e, k, 0], cur[e, k, 1] = ix, iy
    held[e, k] = 0.0
    n_free = 0
    n_choice = 0
    for d in range(4):
        jx, jy = ix + dirs[d, 0], iy + dirs[d, 1]
        if _free(occ, ny, nx, jy, jx):
            n_free += 1
            if jx != fx or jy != fy:
                n_choice += 1
    if n_choice == 0:
        tgt[e, k, 0], tgt[e, k, 1] = fx, fy  # dead end: turn back
    else:
        pick = min(int(_next_u64(state, e, k) * n_choice), n_choice - 1)
        for d in range(4):
            jx, jy = ix + dirs[d, 0], iy + dirs[d, 1]
            if _free(occ, ny, nx, jy, jx) and (jx != fx or jy != fy):
                if pick == 0:
                    tgt[e, k, 0], tgt[e, k, 1] = jx, jy
                    break
                pick -= 1
    u = _next_u64(state, e, k)
    if n_free == 2 and u < block_prob:
        wait[e, k] = block_lo + (block_hi - block_lo) * _next_u64(state, e, k)
    elif u < block_prob + pause_prob:
        wait[e, k] = pause_lo + (pause_hi - pause_lo) * _next_u64(state, e, k)


@njit(cache=True, nogil=True)
def step_movers(pos: np.ndarray, vel: np.ndarray, cur: np.ndarray, tgt: np.ndarray, wait: np.ndarray,
                held: np.ndarray, state: np.ndarray, radius: np.ndarray, speed: np.ndarray, polite: np.ndarray,
                count: np.ndarray, occs: np.ndarray, shapes: np.ndarray, cells: np.ndarray, robot: np.ndarray,
                robot_radius: np.ndarray, period: float, stop_distance: float, give_way: float, pause_prob: float,
                pause_lo: float, pause_hi: float, block_prob: float, block_lo: float, block_hi: float,
                dirs: np.ndarray) -> None:
    """Advance every env's first ``count[e]`` movers by one period; ``vel`` gets this tick's constant velocity.

    ``pos, vel`` [N, M, 2] (m, m/s); ``cur, tgt`` [N, M, 2] int (ix, iy) cell last reached and cell walked to;
    ``wait`` and ``held`` [N, M] seconds; ``state`` [N, M] uint64; ``robot`` [N, 3] true poses at tick start.
    A mover walks ``speed * period`` a tick (turning at waypoints within the tick, so its speed is the chord's)
    and ends the tick exactly at ``pos + vel * period``.
    """
    for e in range(pos.shape[0]):
        ny, nx = shapes[e, 0], shapes[e, 1]
        occ = occs[e]
        c = cells[e]
        for k in range(count[e]):
            vel[e, k, 0] = 0.0
            vel[e, k, 1] = 0.0
            if wait[e, k] > 0.0:
                wait[e, k] -= period
                continue
            tx = (tgt[e, k, 0] + 0.5) * c
            ty = (tgt[e, k, 1] + 0.5) * c
            dx, dy = tx - pos[e, k, 0], ty - pos[e, k, 1]
            if dx * dx + dy * dy <= 1e-18:  # at a waypoint (a fresh spawn, or rounding): choose the next first
                pos[e, k, 0], pos[e, k, 1] = tx, ty
                _arrive(occ, ny, nx, cur, tgt, wait, held, state, e, k, pause_prob, pause_lo, pause_hi, block_prob,
                        block_lo, block_hi, dirs)
                if wait[e, k] > 0.0:
                    continue
                dx, dy = (tgt[e, k, 0] + 0.5) * c - tx, (tgt[e, k, 1] + 0.5) * c - ty
            rx, ry = robot[e, 0] - pos[e, k, 0], robot[e, 1] - pos[e, k, 1]
            gap = math.sqrt(rx * rx + ry * ry) - radius[e, k] - robot_radius[e]
            ahead = rx * dx + ry * dy > 0.0
            limit = stop_distance if polite[e, k] else TOUCH_GAP
            if ahead and gap <= limit:
                held[e, k] += period
                if held[e, k] >= give_way:  # give way: walk back to the cell it came from
                    held[e, k] = 0.0
                    bx, by = cur[e, k, 0], cur[e, k, 1]
                    cur[e, k, 0], cur[e, k, 1] = tgt[e, k, 0], tgt[e, k, 1]
                    tgt[e, k, 0], tgt[e, k, 1] = bx, by
                continue
            x0, y0 = pos[e, k, 0], pos[e, k, 1]
            left = speed[e, k] * period
            for _ in range(4):  # walk ``left`` metres, through waypoints, unless one holds it
                tx = (tgt[e, k, 0] + 0.5) * c
                ty = (tgt[e, k, 1] + 0.5) * c
                dx, dy = tx - pos[e, k, 0], ty - pos[e, k, 1]
                dist = math.sqrt(dx * dx + dy * dy)
                if dist > left:
                    pos[e, k, 0] += dx / dist * left
                    pos[e, k, 1] += dy / dist * left
                    break
                pos[e, k, 0], pos[e, k, 1] = tx, ty
                left -= dist
                _arrive(occ, ny, nx, cur, tgt, wait, held, state, e, k, pause_prob, pause_lo, pause_hi, block_prob,
                        block_lo, block_hi, dirs)
                if wait[e, k] > 0.0 or left <= 1e-12:
                    break
            vel[e, k, 0] = (pos[e, k, 0] - x0) / period
            vel[e, k, 1] = (pos[e, k, 1] - y0) / period


class Crowd:
    """The movers of ``num_envs`` envs, padded to ``cfg.max_movers`` each (see the module docstring)."""

    def __init__(self, num_envs: int, cfg: DynamicConfig) -> None:
        self.cfg = cfg
        n, m = num_envs, max(cfg.max_movers, 1)
        self.pos = np.zeros((n, m, 2))
        self.vel = np.zeros((n, m, 2))
        self.cur = np.zeros((n, m, 2), dtype=np.int64)
        self.tgt = np.zeros((n, m, 2), dtype=np.int64)
        self.wait = np.zeros((n, m))
        self.held = np.zeros((n, m))
        self.state = np.zeros((n, m), dtype=np.uint64)
        self.radius = np.zeros((n, m))
        self.speed = np.zeros((n, m))
        self.polite = np.zeros((n, m), dtype=np.bool_)
        self.count = np.zeros(n, dtype=np.int64)
        self.circles = np.zeros((n, m, 3))  # (x, y, r) for the raycaster, refreshed by `circles_now`

    @property
    def any(self) -> bool:
        """True when some env has movers."""
        return bool(self.count.any())

    def spawn(self, i: int, maze: Maze, seed: int) -> None:
        """Place env i's movers for the episode with noise seed ``seed`` (none at density 0)."""
        cfg = self.cfg
        rng = np.random.default_rng([seed, DYNAMIC_STREAM])
        k = mover_count(cfg, maze, rng)
        self.count[i] = 0
        if k == 0:
            return
        cells = spawn_cells(maze, cfg.spawn_clearance)
        if len(cells) < k and cfg.density_max is not None:  # a crowd-level range (training): as many as fit
            k = len(cells)
            if k == 0:
                return
        if len(cells) < k:
            raise DynamicError(
                f"maze {maze.name or maze.hash()} has {len(cells)} free cells at least sim.dynamic.spawn_clearance "
                f"{cfg.spawn_clearance:g} m from its start and goal, too few for {k} movers: lower "
                "sim.dynamic.density or sim.dynamic.spawn_clearance")
        pick = cells[rng.choice(len(cells), size=k, replace=False)]
        c = maze.cell
        self.pos[i, :k] = (pick + 0.5) * c
        self.vel[i] = 0.0
        self.cur[i, :k] = pick
        self.tgt[i, :k] = pick  # arrive at once: the first tick picks a direction
        self.wait[i] = self.held[i] = 0.0
        self.state[i, :k] = rng.integers(0, 2**63 - 1, size=k, dtype=np.int64).astype(np.uint64)
        self.radius[i, :k] = np.round(rng.uniform(*cfg.radius, size=k), 2)
        self.speed[i, :k] = rng.uniform(*cfg.speed, size=k)
        self.polite[i, :k] = rng.random(k) >= cfg.oblivious_fraction
        self.count[i] = k

    def clear(self, i: int) -> None:
        """Env i has no movers."""
        self.count[i] = 0

    def step(self, occs: np.ndarray, shapes: np.ndarray, cells: np.ndarray, robot: np.ndarray,
             robot_radius: np.ndarray, period: float) -> None:
        """Advance every env's movers one period (robot poses [N, 3] at the tick's start)."""
        cfg = self.cfg
        step_movers(self.pos, self.vel, self.cur, self.tgt, self.wait, self.held, self.state, self.radius,
                    self.speed, self.polite, self.count, occs, shapes, cells, robot, robot_radius, period,
                    cfg.stop_distance, cfg.give_way, cfg.pause_prob, cfg.pause[0], cfg.pause[1], cfg.block_prob,
                    cfg.block[0], cfg.block[1], _DIRS)

    def circles_now(self) -> np.ndarray:
        """[N, M, 3] (x, y, radius) of every mover (rows past ``count`` are stale), for the raycaster."""
        self.circles[:, :, :2] = self.pos
        self.circles[:, :, 2] = self.radius
        return self.circles
