"""Ray-circle hits of the grid raycaster (moving obstacles): pinned cases, the NumPy reference, PyBullet rays."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robonav.sim.config import RobotConfig
from robonav.sim.generate import FAMILIES, generate_maze
from robonav.sim.raycast import circle_raycast_reference, grid_raycast_batch_circles, grid_raycast_reference
from robonav.sim.world import BatchedWorld

OPEN = np.zeros((20, 20), dtype=bool)  # a 20 m room: walls only beyond the grid


def _cast(occ, circles, xs, ys, angles, max_range=3.5, cell=1.0):
    """One env through the batched kernel."""
    xs, ys, angles = (np.asarray(v, float)[None] for v in (xs, ys, angles))
    n = xs.shape[1]
    circles = np.asarray(circles, float).reshape(1, -1, 3)
    out = np.full((1, n), -1.0)
    grid_raycast_batch_circles(occ[None], np.array([occ.shape]), np.array([cell]), xs, ys, angles, np.array([n]),
                               max_range, circles if circles.shape[1] else np.zeros((1, 1, 3)),
                               np.array([circles.shape[1]]), out)
    return out[0]


def _reference(occ, circles, xs, ys, angles, max_range=3.5, cell=1.0):
    walls = grid_raycast_reference(occ, cell, np.asarray(xs, float), np.asarray(ys, float),
                                   np.asarray(angles, float), max_range)
    return np.minimum(walls, circle_raycast_reference(np.asarray(circles, float), xs, ys, angles, max_range))


def test_pinned_hits_tangents_insides_and_misses():
    c = [(12.0, 10.0, 0.5)]  # a circle 2 m east of (10, 10)
    xs, ys = np.full(6, 10.0), np.array([10.0, 10.5, 10.5 + 1e-9, 10.0, 10.0, 10.3])
    ang = np.array([0.0, 0.0, 0.0, math.pi, math.pi / 2, 0.0])
    d = _cast(OPEN, c, xs, ys, ang)
    # head on: 2 - 0.5; tangent along y = 10.5 touches at x = 12 (closed disk): 2.0; 1 nm outside the tangent
    # misses (the room is empty within 3.5 m); facing away and sideways miss; off-centre by 0.3:
    # 2 - sqrt(0.5^2 - 0.3^2) = 1.6.
    np.testing.assert_allclose(d, [1.5, 2.0, np.inf, np.inf, np.inf, 1.6], atol=1e-12)
    assert _cast(OPEN, c, [12.2], [10.1], [1.0])[0] == 0.0  # starting inside a circle: 0, like inside a wall
    # A face 14 - 0.6 - 10 = 3.4 m away: inside a 3.5 m range, beyond a 3.3 m one (+inf, REP 117's no return).
    assert _cast(OPEN, [(14.0, 10.0, 0.6)], [10.0], [10.0], [0.0])[0] == pytest.approx(3.4)
    assert _cast(OPEN, [(14.0, 10.0, 0.6)], [10.0], [10.0], [0.0], max_range=3.3)[0] == np.inf


def test_a_circle_behind_a_wall_or_overlapping_one():
    occ = np.ones((3, 8), dtype=bool)
    occ[1, 1:7] = False  # corridor: free x in [1, 7), y in [1, 2)
    # Circle centred inside the east wall (x = 7.2), radius 0.5: its west edge at 6.7 is nearer than the wall face 7.
    d = _cast(occ, [(7.2, 1.5, 0.5)], [2.0, 2.0], [1.5, 1.5], [0.0, math.pi], max_range=10)
    np.testing.assert_allclose(d, [4.7, 1.0], atol=1e-12)
    d = _cast(occ, [(9.0, 1.5, 0.5)], [4.0], [1.5], [0.0], max_range=10)  # wholly behind the wall: the wall wins
    assert d[0] == pytest.approx(3.0)


def test_the_tangent_case_needs_no_luck():
    # Rays from the origin grazing a circle of radius r at distance D: tangent when the offset equals r.
    r, dist = 0.25, 2.0
    ang = math.asin(r / dist)
    circle = [(10.0 + dist, 10.0, r)]
    hit = _cast(OPEN, circle, [10.0, 10.0], [10.0, 10.0], [ang - 1e-9, ang + 1e-9])
    assert hit[0] == pytest.approx(math.sqrt(dist**2 - r**2), abs=1e-3) and hit[1] == np.inf


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), cell=st.sampled_from([1.0, 0.8, 0.37]), k=st.integers(0, 7))
def test_matches_the_reference_on_random_grids_and_circles(seed, cell, k):
    rng = np.random.default_rng(seed)
    ny, nx = rng.integers(3, 19, size=2)
    occ = rng.random((ny, nx)) < 0.3
    circles = np.stack([rng.uniform(0, nx, k) * cell, rng.uniform(0, ny, k) * cell, rng.uniform(0.05, 0.6, k)], 1)
    n = 300
    xs, ys = rng.uniform(-0.5, nx + 0.5, n) * cell, rng.uniform(-0.5, ny + 0.5, n) * cell
    ang = rng.uniform(-np.pi, np.pi, n)
    if k:  # adversarial: rays aimed at circle centres, and exactly tangent ones
        j = rng.integers(k, size=40)
        ang[:20] = np.arctan2(circles[j[:20], 1] - ys[:20], circles[j[:20], 0] - xs[:20])
        dd = np.hypot(circles[j[20:], 0] - xs[20:40], circles[j[20:], 1] - ys[20:40])
        ok = dd > circles[j[20:], 2]
        off = np.where(ok, np.arcsin(np.minimum(circles[j[20:], 2] / np.maximum(dd, 1e-12), 1.0)), 0.0)
        ang[20:40] = np.arctan2(circles[j[20:], 1] - ys[20:40], circles[j[20:], 0] - xs[20:40]) + off
    got = _cast(occ, circles, xs, ys, ang, 3.5, cell)
    ref = _reference(occ, circles, xs, ys, ang, 3.5, cell)
    tangent = np.zeros(n, bool)
    tangent[20:40] = k > 0
    same = np.isinf(got) == np.isinf(ref)
    # An exact tangent may land either side in floating point: hit/miss may differ there only.
    assert same[~tangent].all(), "hit/miss disagree"
    both = np.isfinite(got) & np.isfinite(ref)
    np.testing.assert_allclose(got[both], ref[both], atol=1e-6)


def _pybullet_vs_grid(maze, circles, xs, ys, angles):
    world = BatchedWorld(1, RobotConfig())
    try:
        world.set_maze(0, maze)
        world.set_movers(0, circles[:, 2].tolist())
        world.drive_movers(circles[None, :, :2], np.zeros((1, len(circles), 2)), np.array([len(circles)]))
        n = len(angles)
        out = np.empty((1, n))
        world.raycast(xs[None], ys[None], angles[None], np.array([n]), 3.5, out)
    finally:
        world.close()
    return out[0], _cast(maze.occupancy, circles, xs, ys, angles, 3.5, maze.cell)


@pytest.mark.parametrize("family", FAMILIES)
def test_grid_with_movers_agrees_with_pybullet_on_every_family(family):
    maze = generate_maze(family, 7, 5, seed=11)
    rng = np.random.default_rng(5)
    free = maze.free_cells()
    centres = np.array([maze.cell_center(tuple(rc)) for rc in free])
    movers = centres[rng.choice(len(centres), size=6, replace=False)] + rng.uniform(-0.3, 0.3, (6, 2))
    circles = np.column_stack([movers, np.round(rng.uniform(0.2, 0.3, 6), 2)])
    k = rng.integers(len(centres), size=64)
    xs = np.repeat(centres[k, 0] + rng.uniform(-0.3, 0.3, 64), 16)
    ys = np.repeat(centres[k, 1] + rng.uniform(-0.3, 0.3, 64), 16)
    inside = (np.hypot(xs[:, None] - circles[:, 0], ys[:, None] - circles[:, 1]) <= circles[:, 2] + 0.01).any(1)
    xs, ys = xs[~inside], ys[~inside]  # PyBullet does not see a shape from inside it
    ang = rng.uniform(-np.pi, np.pi, len(xs))
    pb, grid = _pybullet_vs_grid(maze, circles, xs, ys, ang)
    assert np.array_equal(np.isinf(pb), np.isinf(grid)), "PyBullet and the grid disagree on hit or miss"
    fin = np.isfinite(grid)
    err = np.abs(pb[fin] - grid[fin])
    hits_mover = np.isclose(grid, circle_raycast_reference(circles, xs, ys, ang, 3.5))
    assert hits_mover.sum() > 50, "too few rays hit a mover to test anything"
    assert err.max() < 1e-2, f"largest error {err.max():.4g} m"
    assert (err > 1e-3).mean() <= 0.01, f"{(err > 1e-3).sum()} of {err.size} rays off by more than 1 mm"
