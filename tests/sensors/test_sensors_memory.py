"""Memory kernels: lazy decay, exact ray traversal, in-place shifts and the max pyramid, against the reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robonav.sensors import reference as ref
from robonav.sensors.frame import ScanSpec, SensorFrame
from robonav.sensors.memory import clear_free, decayed, mark_visit, shift_square
from robonav.sensors.preprocessor import Preprocessor
from robonav.sensors.spec import PreprocessorConfig


@pytest.mark.parametrize(
    ("value", "tick", "now", "expected"),
    [(5, 0, 3, 2), (5, 0, 10, 0), (-5, 2, 5, -2), (-5, 0, 99, 0), (0, 0, 7, 0), (70, 4, 4, 70), (255, 1, 2, 254)],
)
def test_decay_moves_one_unit_toward_zero_per_tick(value, tick, now, expected):
    assert decayed(value, tick, now) == expected
    assert ref.decayed(np.array([value]), np.array([tick]), now).tolist() == [expected]


def cleared_cells(u, v, angle, length, n=64, res=0.125):
    """Cells one clearing ray marks on an empty n x n grid (robot at (u, v) cells, heading 0, f1 = 2, f2 = 4)."""
    size = n * n + (n // 2) ** 2 + (n // 8) ** 2
    occ, ticks = np.zeros(size, np.int8), np.zeros(size, np.uint32)
    marks = np.zeros(n * n + 2 * ((n // 2) ** 2 + (n // 8) ** 2), np.uint32)
    directions = np.array([[math.cos(angle)], [math.sin(angle)]])
    clear_free(directions, 1, np.array([length]), np.array([0]), 1e9, u * res, v * res, 1.0, 0.0, 0.0, 0.0, res,
               occ, ticks, marks, n, 2, 4, -8, -40, 70, 1, 0, False, 0)
    return set(np.flatnonzero(occ[:n * n]).tolist())


def reference_cells(u, v, angle, length, n=64, res=0.125):
    """The same ray through the reference, with the kernel's arithmetic (heading 0: c = 1, s = 0, origin 0)."""
    if not length > 0.0:
        return set()
    c, s, rc, rs = 1.0, 0.0, math.cos(angle), math.sin(angle)
    dx, dy = np.array([c * rc - s * rs]), np.array([s * rc + c * rs])
    u, v = (u * res - 0.0) / res, (v * res - 0.0) / res
    return set(ref.ray_cells(u, v, dx, dy, np.array([length / res]), n).tolist())


def test_ray_traversal_pinned_by_hand():
    # from the middle of cell (10, 10), 1 m (8 cells) along +x: cells (10..18, 10) since the 8th line is at 8.5 cells
    assert cleared_cells(10.5, 10.5, 0.0, 1.0) == {i * 64 + 10 for i in range(10, 19)}
    # along the diagonal from a cell centre, corners are crossed: x first, so (11, 10) before (11, 11)
    assert cleared_cells(10.5, 10.5, math.pi / 4, 0.25) == {10 * 64 + 10, 11 * 64 + 10, 11 * 64 + 11}
    # a ray that runs off the grid stops at the edge
    assert cleared_cells(62.5, 3.5, 0.0, 3.0) == {62 * 64 + 3, 63 * 64 + 3}
    assert cleared_cells(10.5, 10.5, 0.0, 0.0) == set()


@settings(max_examples=300, deadline=None)
@given(u=st.one_of(st.floats(0.0, 63.999), st.integers(0, 63).map(float)),
       v=st.one_of(st.floats(0.0, 63.999), st.integers(0, 63).map(float)),
       angle=st.one_of(st.floats(-math.pi, math.pi), st.sampled_from([0.0, math.pi / 2, math.pi, math.pi / 4,
                                                                       -3 * math.pi / 4])),
       length=st.one_of(st.floats(0.0, 12.0), st.sampled_from([0.125, 1.0, 0.5])))
def test_ray_traversal_parity(u, v, angle, length):
    got = cleared_cells(u, v, angle, length)
    assert got == reference_cells(u, v, angle, length)
    if length > 0:
        assert int(u) * 64 + int(v) in got  # the robot's own cell is always cleared


@settings(max_examples=100, deadline=None)
@given(n=st.sampled_from([1, 5, 16]), si=st.integers(-20, 20), sj=st.integers(-20, 20), seed=st.integers(0, 99))
def test_shift_parity(n, si, sj, seed):
    square = np.random.default_rng(seed).integers(-100, 100, (n, n)).astype(np.int8)
    flat = np.concatenate([np.full(3, 7, np.int8), square.reshape(-1), np.full(2, 9, np.int8)])
    shift_square(flat, 3, n, si, sj)
    np.testing.assert_array_equal(flat[3:3 + n * n].reshape(n, n), ref.shift_square(square, si, sj))
    assert flat[:3].tolist() == [7, 7, 7] and flat[-2:].tolist() == [9, 9]  # neighbours untouched


@pytest.mark.parametrize("radius", [0.0, 0.125, 0.25, 0.3, 1.0])
@pytest.mark.parametrize("cell", [(30, 30), (0, 0), (63, 1), (62, 63)])
def test_visit_footprint_parity(radius, cell):
    n = 64
    vis, ticks = np.zeros(n * n + 32 * 32 + 8 * 8, np.uint8), np.zeros(n * n + 32 * 32 + 8 * 8, np.uint32)
    mark_visit(vis, ticks, n, 2, 4, cell[0], cell[1], math.floor(radius / 0.125 + 1e-9), (radius / 0.125) ** 2, 0,
               False)
    i, j = ref.trail_cells(cell[0], cell[1], radius, 0.125, n)
    assert set(np.flatnonzero(vis[:n * n]).tolist()) == set((i * n + j).tolist())
    assert vis[:n * n].max() == 1 and vis[cell[0] * n + cell[1]] == 1
    if radius == 0.25 and cell == (30, 30):
        assert i.size == 13  # the disc of radius 2 cells: 1 + 4 + 4 + 4


def random_frames(rng, count, beams=90, speed=0.3):
    scan = ScanSpec.evenly_spaced(beams)
    for _ in range(count):
        r = rng.uniform(0.1, 4.5, beams).astype(np.float32)
        r[rng.random(beams) < 0.1] = np.nan
        r[rng.random(beams) < 0.1] = np.inf
        delta = np.array([rng.uniform(0, speed), rng.uniform(-0.05, 0.05), rng.uniform(-0.4, 0.4)])
        yield SensorFrame(r, scan, delta, np.array([1.0, 2.0]))


@pytest.mark.parametrize(("occ_decay", "vis_decay"), [(0, 0), (1, 3), (5, 1)])
def test_pyramid_levels_stay_the_block_max_of_the_grid(occ_decay, vis_decay):
    cfg = PreprocessorConfig(grid_cells=192, obstacle_decay_steps=occ_decay, visit_decay_steps=vis_decay,
                             trail_radius=0.4)
    pre = Preprocessor(cfg)
    for frame in random_frames(np.random.default_rng(occ_decay), 250):
        pre(frame, (0.0, 0.0))
        occ0, vis0 = pre.memory(0)
        for level in (1, 2):
            occ, vis = pre.memory(level)
            np.testing.assert_array_equal(occ, ref.pyramid(occ0, 2, 4)[level])
            np.testing.assert_array_equal(vis, ref.pyramid(vis0, 2, 4)[level])
    assert pre.recentre_count > 0
    occ0, vis0 = pre.memory(0)
    assert occ0.min() >= -40 and occ0.max() <= 70 and vis0.min() >= 0 and vis0.max() <= 255


def test_decay_is_lazy_and_reaches_unknown():
    cfg = PreprocessorConfig(obstacle_decay_steps=2, visit_decay_steps=1)
    pre = Preprocessor(cfg)
    scan = ScanSpec.evenly_spaced(4)
    wall = np.array([np.nan, np.nan, 1.0, np.nan], np.float32)  # beams at -180, -90, 0, 90 degrees
    pre(SensorFrame(wall, scan, np.zeros(3), np.zeros(2)), (0.0, 0.0))
    occ, vis = pre.memory(0)
    assert occ.max() == 17 and vis.max() == 1  # one hit; one visit
    blind = np.full(4, np.nan, np.float32)
    for _ in range(9):  # step 10, tick 5: five units gone, read lazily from the cell's tick
        pre(SensorFrame(blind, scan, np.zeros(3), np.zeros(2)), (0.0, 0.0))
    assert pre.memory(0)[0].max() == 12
    for _ in range(24):  # to step 34: the hit (step 1, tick 0) has seen 17 ticks, the visit (tick 1) 33
        pre(SensorFrame(blind, scan, np.zeros(3), np.zeros(2)), (0.0, 0.0))
    occ, vis = pre.memory(0)
    assert occ.max() == 0 and vis.max() == 0
