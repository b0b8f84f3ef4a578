"""The Numba grid raycaster against its NumPy reference and against PyBullet rays on every maze family."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robonav.sim.config import RobotConfig
from robonav.sim.generate import FAMILIES, generate_maze
from robonav.sim.raycast import grid_raycast, grid_raycast_reference
from robonav.sim.world import BatchedWorld


def _cast(occ, xs, ys, angles, max_range=3.5, cell=1.0):
    out = np.empty(len(angles))
    grid_raycast(occ, cell, np.asarray(xs, float), np.asarray(ys, float), np.asarray(angles, float),
                 max_range, out)
    return out


def test_pinned_distances_in_a_corridor():
    # 3x5 grid, one free row in the middle: free cells x in [1, 4], y in [1, 2] (cell 1 m).
    occ = np.ones((3, 5), dtype=bool)
    occ[1, 1:4] = False
    d = _cast(occ, [1.5] * 4, [1.5] * 4, [0.0, np.pi / 2, np.pi, np.pi / 4], max_range=10)
    # east wall face at x=4 -> 2.5; north face y=2 -> 0.5; west face x=1 -> 0.5; 45 deg hits y=2 at 0.5*sqrt2.
    np.testing.assert_allclose(d, [2.5, 0.5, 0.5, 0.5 * np.sqrt(2)], atol=1e-12)


def test_out_of_range_is_inf_and_inside_wall_is_zero():
    occ = np.zeros((20, 20), dtype=bool)
    d = _cast(occ, [10.0, -0.5], [10.0, 3.0], [0.0, 0.0])
    assert d[0] == np.inf  # nearest face (the ring at x=20) is 10 m away, beyond 3.5 m
    assert d[1] == 0.0  # outside the grid counts as wall


def test_outside_grid_is_wall():
    occ = np.zeros((3, 3), dtype=bool)
    assert _cast(occ, [1.5], [1.5], [0.0], max_range=10)[0] == pytest.approx(1.5)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), cell=st.sampled_from([1.0, 0.8, 0.37]))
def test_matches_reference_on_random_grids(seed, cell):
    rng = np.random.default_rng(seed)
    ny, nx = rng.integers(3, 19, size=2)
    occ = rng.random((ny, nx)) < 0.3
    n = 300
    # Up to half a cell outside the grid (inside the reference's one-cell ring).
    xs, ys = rng.uniform(-0.5, nx + 0.5, n) * cell, rng.uniform(-0.5, ny + 0.5, n) * cell
    ang = rng.uniform(-np.pi, np.pi, n)
    ang[:20] = np.array([0, np.pi / 2, np.pi, -np.pi / 2, np.pi / 4] * 4)  # axis-aligned and diagonal
    got = _cast(occ, xs, ys, ang, 3.5, cell)
    ref = grid_raycast_reference(occ, cell, xs, ys, ang, 3.5)
    both_inf = np.isinf(got) & np.isinf(ref)
    assert np.array_equal(np.isinf(got), np.isinf(ref)), "hit/miss disagree"
    np.testing.assert_allclose(got[~both_inf], ref[~both_inf], atol=1e-9)


def _pybullet_vs_grid(maze, xs, ys, angles):
    world = BatchedWorld(1, RobotConfig())
    try:
        world.set_maze(0, maze)
        n = len(angles)
        out = np.empty((1, n))
        world.raycast(xs[None], ys[None], angles[None], np.array([n]), 3.5, out)
    finally:
        world.close()
    grid = _cast(maze.occupancy, xs, ys, angles, 3.5, maze.cell)
    return out[0], grid


@pytest.mark.parametrize("family", FAMILIES)
def test_grid_agrees_with_pybullet_on_every_family(family):
    maze = generate_maze(family, 7, 5, seed=11)
    rng = np.random.default_rng(3)
    free = maze.free_cells()
    k = rng.integers(len(free), size=64)
    centres = np.array([maze.cell_center(tuple(rc)) for rc in free[k]])
    xs = np.repeat(centres[:, 0] + rng.uniform(-0.3, 0.3, 64), 16)
    ys = np.repeat(centres[:, 1] + rng.uniform(-0.3, 0.3, 64), 16)
    ang = rng.uniform(-np.pi, np.pi, len(xs))
    pb, grid = _pybullet_vs_grid(maze, xs, ys, ang)
    _assert_close(pb, grid)


def _assert_close(pb, grid):
    """Same hits; distances within 1 mm, except rays that pass within millimetres of a cell corner, where
    Bullet's box test can stop up to ~5 mm short: those are at most 1 % and still within 1 cm."""
    assert np.array_equal(np.isinf(pb), np.isinf(grid)), "PyBullet and the grid disagree on hit or miss"
    fin = np.isfinite(grid)
    err = np.abs(pb[fin] - grid[fin])
    assert err.max() < 1e-2, f"largest error {err.max():.4g} m"
    assert (err > 1e-3).mean() <= 0.01, f"{(err > 1e-3).sum()} of {err.size} rays off by more than 1 mm"


def test_grid_agrees_with_pybullet_at_grazing_angles_and_next_to_pillars():
    text = "\n".join([
        "#########",
        "#S......#",
        "#.#.#.#.#",
        "#.......#",
        "#.#.#.#G#",
        "#########",
    ])
    from robonav.sim.maze import parse_maze

    maze = parse_maze(text)
    # From a point 2 cm beside a pillar, rays nearly parallel to its face (grazing), and along the row of pillars.
    x0, y0 = 3.02, 3.5  # 2 cm east of the pillar at (row 2, col 2), which covers x in [2, 3], y in [3, 4]
    eps = np.array([1e-3, 5e-3, 2e-2])
    ang = np.concatenate([np.pi / 2 + eps, np.pi / 2 - eps, -np.pi / 2 + eps, [0.0, np.pi, 0.02, -0.02]])
    xs, ys = np.full(len(ang), x0), np.full(len(ang), y0)
    pb, grid = _pybullet_vs_grid(maze, xs, ys, ang)
    assert np.array_equal(np.isinf(pb), np.isinf(grid))
    fin = np.isfinite(grid)
    assert np.abs(pb[fin] - grid[fin]).max() < 1e-3
