"""Geodesic fields, lookups, path lengths, diameters, start/goal draws: hand numbers, Numba vs references."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robonav.sim.generate import FAMILIES, generate_maze
from robonav.sim.geodesic import (
    GeodesicError,
    cell_distances,
    distance_field,
    distance_field_reference,
    geodesic_at,
    geodesic_at_reference,
    geodesic_diameter,
    geodesic_diameter_reference,
    goal_field,
    sample_start_goal,
    shortest_path_length,
)
from robonav.sim.maze import Maze, parse_maze

R2 = math.sqrt(2.0)
CORRIDOR = parse_maze("#######\n#G...S#\n#######")   # 4 cells from G to S, y of the corridor in [1, 2]
L_SHAPE = parse_maze("######\n#S...#\n####.#\n####.#\n####G#\n######")


# ------------------------------------------------------------------------------- fields by hand
def test_corridor_field_by_hand() -> None:
    h = 0.25
    f = goal_field(CORRIDOR)  # goal centre (1.5, 1.5); sub-cell centres at 0.125 + k h
    assert f.shape == (12, 28)
    assert np.isinf(f[:4]).all() and np.isinf(f[8:]).all() and np.isinf(f[:, :4]).all()
    # The four sub-cells around the goal are seeded at their true distance h / sqrt(2).
    for iy, ix in ((5, 5), (5, 6), (6, 5), (6, 6)):
        assert f[iy, ix] == pytest.approx(h / R2, abs=1e-12)
    # One axis step east of a seed: h/sqrt2 + h; one diagonal step from a seed: h/sqrt2 + sqrt2 h.
    assert f[5, 7] == pytest.approx(h / R2 + h, abs=1e-12)
    assert f[4, 7] == pytest.approx(h / R2 + R2 * h, abs=1e-12)
    # Eleven steps east of the seed at ix = 6: sub-cell ix = 17 (x = 4.375).
    assert f[5, 17] == pytest.approx(h / R2 + 11 * h, abs=1e-12)


def test_corridor_shortest_path_by_hand() -> None:
    # Start centre x = 5.5 lies between sub-cells x = 5.375 (h/sqrt2 + 15h) and 5.625 (h/sqrt2 + 16h):
    # mean = h/sqrt2 + 15.5 h = 4 + (sqrt2 - 1)/2 * h with h = 0.25.
    assert shortest_path_length(CORRIDOR) == pytest.approx(4.0 + (R2 - 1.0) / 2.0 * 0.25, abs=1e-12)
    # Scales with the cell and the refinement as the formula says.
    wide = parse_maze("; cell=2.0\n" + CORRIDOR.to_text().split("\n", 3)[3])
    assert shortest_path_length(wide, refine=2) == pytest.approx(8.0 + (R2 - 1.0) / 2.0 * 1.0, abs=1e-12)
    assert geodesic_diameter(CORRIDOR) == 4.0
    assert geodesic_diameter(wide) == 8.0


def test_l_corridor_shortest_path_by_hand() -> None:
    # h = 0.25; counts below are in sub-cells. Every path rounds the inner corner sub-cell K = (4.125, 4.125);
    # no diagonal step past it (cell (2, 3) is wall). Goal seeds at h/sqrt2; the nearest, (4.375, 1.625),
    # reaches K in octile(dx=1, dy=10) = 9 + sqrt2. From K to the four sub-cells around the start centre
    # (1.5, 4.5): octile(10, 1) = 9 + sqrt2, (11, 1) = 10 + sqrt2, (10, 2) = 8 + 2 sqrt2,
    # (11, 2) = 9 + 2 sqrt2.
    h = 0.25
    to_k = 1 / R2 + 9 + R2
    corner_values = [to_k + 9 + R2, to_k + 10 + R2, to_k + 8 + 2 * R2, to_k + 9 + 2 * R2]
    f = goal_field(L_SHAPE)
    # Start sub-cells (iy, ix), y north: y = 4.375 -> iy 17, y = 4.625 -> iy 18; x 1.375 -> 5, 1.625 -> 6.
    got = [f[17, 6], f[17, 5], f[18, 6], f[18, 5]]
    assert got == pytest.approx([h * v for v in corner_values], abs=1e-12)
    assert f[16, 16] == pytest.approx(h * to_k, abs=1e-12)  # K itself
    assert shortest_path_length(L_SHAPE) == pytest.approx(h * float(np.mean(corner_values)), abs=1e-12)
    assert geodesic_diameter(L_SHAPE) == 6.0  # 3 east + 3 south, no diagonal round a wall corner


def test_open_room_diameter_uses_diagonals() -> None:
    room = parse_maze("#####\n#S..#\n#...#\n#..G#\n#####")
    assert geodesic_diameter(room) == pytest.approx(2 * R2, abs=1e-12)
    assert cell_distances(room, (1, 1))[3, 3] == pytest.approx(2 * R2, abs=1e-12)
    assert cell_distances(room, (1, 1))[1, 3] == 2.0


def test_cell_distances_file_coordinates_and_walls() -> None:
    d = cell_distances(L_SHAPE, (1, 1))
    assert d.shape == (6, 6)
    assert d[1, 4] == 3.0 and d[4, 4] == 6.0 and np.isinf(d[0, 0]) and np.isinf(d[2, 3])
    with pytest.raises(GeodesicError, match=r"source cell \(0, 0\) .* is not a free cell"):
        cell_distances(L_SHAPE, (0, 0))


def test_distance_field_rejects_a_goal_in_a_wall_or_off_the_grid() -> None:
    occ = CORRIDOR.occupancy
    with pytest.raises(GeodesicError, match=r"goal_xy \(0.5, 1.5\) is in a wall \(grid 7 m x 3 m, y north\)"):
        distance_field(occ, 1.0, (0.5, 1.5))
    with pytest.raises(GeodesicError, match=r"goal_xy \(-1.0, 1.5\) is outside the grid"):
        distance_field(occ, 1.0, (-1.0, 1.5))
    with pytest.raises(GeodesicError, match=r"refine must be an integer >= 1"):
        distance_field(occ, 1.0, (1.5, 1.5), refine=0)


# --------------------------------------------------------------------------------------- parity
def _mazes_for_parity() -> list[Maze]:
    mazes = [generate_maze(family, 4, 3, seed=5) for family in FAMILIES]
    return [*mazes, CORRIDOR, L_SHAPE, parse_maze("S..\n.#.\n..G")]


@pytest.mark.parametrize("refine", [1, 2, 3, 4])
def test_distance_field_matches_reference_exactly(refine: int) -> None:
    for m in _mazes_for_parity():
        goal = m.cell_center(m.goal)
        fast = distance_field(m.occupancy, m.cell, goal, refine)
        ref = distance_field_reference(m.occupancy, m.cell, goal, refine)
        assert np.array_equal(fast, ref), m.name
        assert np.array_equal(np.isinf(fast), np.repeat(np.repeat(m.occupancy, refine, 0), refine, 1))


@given(st.integers(1, 7), st.integers(1, 7), st.integers(1, 4), st.data())
@settings(max_examples=40, deadline=None)
def test_distance_field_parity_on_random_grids(rows: int, cols: int, refine: int,
                                               data: st.DataObject) -> None:
    occ = np.array(data.draw(st.lists(st.booleans(), min_size=rows * cols, max_size=rows * cols)),
                   dtype=bool).reshape(rows, cols)
    free = np.argwhere(~occ)
    if len(free) == 0:
        return
    iy, ix = free[data.draw(st.integers(0, len(free) - 1))]
    cell = data.draw(st.sampled_from([0.5, 1.0, 0.8]))
    # Any point of the free cell, edges included (goal need not be the centre).
    fx, fy = data.draw(st.floats(0.0, 0.999)), data.draw(st.floats(0.0, 0.999))
    goal = ((ix + fx) * cell, (iy + fy) * cell)
    fast = distance_field(occ, cell, goal, refine)
    assert np.array_equal(fast, distance_field_reference(occ, cell, goal, refine))
    assert np.nanmin(fast) <= cell / refine * R2  # a seed is never farther than one sub-cell diagonal


@given(st.data())
@settings(max_examples=30, deadline=None)
def test_geodesic_at_matches_reference(data: st.DataObject) -> None:
    m = generate_maze(data.draw(st.sampled_from(FAMILIES)), 3, seed=data.draw(st.integers(0, 50)))
    refine = data.draw(st.integers(1, 4))
    field = goal_field(m, refine)
    width, height = m.cols * m.cell, m.rows * m.cell
    coords = st.one_of(st.floats(-2.0, max(width, height) + 2.0), st.just(math.nan))
    xs = np.array(data.draw(st.lists(coords, min_size=1, max_size=20)))
    ys = np.array(data.draw(st.lists(coords, min_size=len(xs), max_size=len(xs))))
    fast = geodesic_at(field, m.cell, refine, xs, ys)
    ref = geodesic_at_reference(field, m.cell, refine, xs, ys)
    np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-12)
    assert np.isnan(fast).tolist() == (np.isnan(xs) | np.isnan(ys)).tolist()


def test_diameter_matches_all_pairs_reference() -> None:
    for m in _mazes_for_parity() + [generate_maze(f, 5, seed=9) for f in FAMILIES]:
        assert geodesic_diameter(m) == pytest.approx(geodesic_diameter_reference(m), abs=1e-9), m.name


@given(st.integers(2, 7), st.integers(2, 7), st.data())
@settings(max_examples=40, deadline=None)
def test_diameter_parity_on_random_grids(rows: int, cols: int, data: st.DataObject) -> None:
    walls = np.array(data.draw(st.lists(st.booleans(), min_size=rows * cols, max_size=rows * cols)),
                     dtype=bool).reshape(rows, cols)
    walls[0, 0] = walls[0, 1] = False  # disconnected islands elsewhere are allowed
    m = Maze(walls, (0, 0), (0, 1), data.draw(st.sampled_from([1.0, 0.7])))
    assert geodesic_diameter(m) == pytest.approx(geodesic_diameter_reference(m), abs=1e-9)


# ---------------------------------------------------------------------------------- geodesic_at
def test_geodesic_at_reads_sub_cell_centres_exactly() -> None:
    m = generate_maze("rooms", 4, seed=2)
    field = goal_field(m, 4)
    iy, ix = np.nonzero(np.isfinite(field))
    vals = geodesic_at(field, m.cell, 4, (ix + 0.5) * 0.25, (iy + 0.5) * 0.25)
    assert np.array_equal(vals, field[iy, ix])


def test_geodesic_at_walls_outside_and_nan_by_hand() -> None:
    h = 0.25
    field = goal_field(CORRIDOR)
    # West of the grid, level with the corridor: nearest finite sub-cell is x = 1.125, y = 1.375:
    # one axis step west of a seed, h/sqrt2 + h.
    out = geodesic_at(field, 1.0, 4, np.array([-5.0, 1.5, np.nan]), np.array([1.4, 0.4, 1.5]))
    assert out[0] == pytest.approx(h / R2 + h, abs=1e-12)
    # Inside the wall under the goal (1.5, 0.4): nearest finite centres are at y = 1.125, one axis step
    # south of the seeds at y = 1.375: h/sqrt2 + h again.
    assert out[1] == pytest.approx(h / R2 + h, abs=1e-12)
    assert math.isnan(out[2])
    with pytest.raises(GeodesicError, match="same length"):
        geodesic_at(field, 1.0, 4, np.zeros(2), np.zeros(3))


def _descent_path(field: np.ndarray, start: tuple[int, int]) -> list[tuple[int, int]]:
    """Sub-cell path of steepest descent to a local minimum (the goal's seeds), by legal moves."""
    path = [start]
    rows, cols = field.shape
    while True:
        y, x = path[-1]
        best = (field[y, x], (y, x))
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                ny, nx = y + dy, x + dx
                if (dy or dx) and 0 <= ny < rows and 0 <= nx < cols and np.isfinite(field[ny, nx]):
                    if dy and dx and not (np.isfinite(field[y, nx]) and np.isfinite(field[ny, x])):
                        continue
                    best = min(best, (field[ny, nx], (ny, nx)))
        if best[1] == (y, x):
            return path
        path.append(best[1])


@pytest.mark.parametrize("family", FAMILIES)
def test_field_decreases_and_is_continuous_along_a_shortest_path(family: str) -> None:
    m = generate_maze(family, 5, seed=3)
    refine, h = 4, m.cell / 4
    field = goal_field(m, refine)
    sx, sy = m.cell_center(m.start)
    path = _descent_path(field, (math.floor(sy / h), math.floor(sx / h)))
    assert len(path) > 4
    t = np.linspace(0.0, 1.0, 9)
    xs = np.concatenate([(a[1] + 0.5 + t * (b[1] - a[1])) * h for a, b in itertools.pairwise(path)])
    ys = np.concatenate([(a[0] + 0.5 + t * (b[0] - a[0])) * h for a, b in itertools.pairwise(path)])
    values = geodesic_at(field, m.cell, refine, xs, ys)
    steps = np.diff(values)
    assert (steps <= 1e-12).all(), f"rises by {steps.max():.3g} m"
    # Continuous: along an axis step the value is linear (|slope| <= 1); along a diagonal step it is
    # quadratic in t with |d/dt| <= 2h (neighbouring sub-cells differ by at most h), so each eighth <= h/4.
    assert np.abs(steps).max() <= h / 4 + 1e-12
    assert values[-1] <= h


@given(st.data())
@settings(max_examples=40, deadline=None)
def test_geodesic_at_is_lipschitz_in_free_space(data: st.DataObject) -> None:
    m = generate_maze(data.draw(st.sampled_from(FAMILIES)), 4, seed=data.draw(st.integers(0, 30)))
    field = goal_field(m, 4)
    r, c = m.free_cells()[data.draw(st.integers(0, len(m.free_cells()) - 1))]
    x0, y0 = m.cell_center((int(r), int(c)))
    angle = data.draw(st.floats(0.0, 2 * math.pi))
    # A short straight walk inside the free cell (0.45 of a cell from its centre at most).
    s = np.linspace(0.0, 0.45 * m.cell, 200)
    xs, ys = x0 + s * math.cos(angle), y0 + s * math.sin(angle)
    values = geodesic_at(field, m.cell, 4, xs, ys)
    ds = s[1] - s[0]
    # Neighbouring sub-cells differ by at most sqrt2 h, so bilinear slopes stay a small multiple of 1;
    # a jump (a discontinuity) would be a step of order h = 0.25 m over ds = 2.3 mm.
    assert np.abs(np.diff(values)).max() <= 4.0 * ds


def test_shortest_path_bounds_on_every_family() -> None:
    for family in FAMILIES:
        for seed in range(5):
            m = generate_maze(family, 6, 5, seed=seed)
            sx, sy = m.cell_center(m.start)
            gx, gy = m.cell_center(m.goal)
            length = shortest_path_length(m)
            cells = cell_distances(m, m.goal)[m.start]  # 8-connected at cell resolution
            assert math.hypot(sx - gx, sy - gy) <= length <= cells + 0.25, (m.name, length, cells)


# ------------------------------------------------------------------------------ start/goal draws
def test_sample_start_goal_is_uniform_over_far_pairs() -> None:
    corridor = parse_maze("#######\n#S...G#\n#######")  # 5 cells, diameter 4, pairs >= 2 apart
    rng = np.random.default_rng(7)
    counts = Counter(sample_start_goal(corridor, rng) for _ in range(6000))
    far = {((1, a), (1, b)) for a in range(1, 6) for b in range(1, 6) if abs(a - b) >= 2}
    assert set(counts) == far and len(far) == 12
    # 500 expected each; binomial sd ~ 21.
    assert all(400 < n < 600 for n in counts.values()), counts


def test_sample_start_goal_respects_the_fraction_and_is_reproducible() -> None:
    m = generate_maze("braided", 7, seed=4)
    diameter = geodesic_diameter(m)
    a = [sample_start_goal(m, np.random.default_rng(11)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    rng = np.random.default_rng(3)
    for _ in range(50):
        start, goal = sample_start_goal(m, rng)
        assert start != goal and m.is_free(start) and m.is_free(goal)
        assert cell_distances(m, start)[goal] >= 0.5 * diameter - 1e-9
    ends = {sample_start_goal(L_SHAPE, rng, min_fraction=1.0) for _ in range(20)}
    assert ends == {((1, 1), (4, 4)), ((4, 4), (1, 1))}  # the only pair 6 m apart
    with pytest.raises(GeodesicError, match=r"min_fraction must lie in \[0, 1\].*got 1.5"):
        sample_start_goal(m, rng, min_fraction=1.5)


def test_diameter_is_cached_per_hash() -> None:
    from robonav.sim import geodesic

    m = generate_maze("perfect", 8, seed=123)
    d = geodesic_diameter(m)
    assert geodesic._DIAMETERS[m.hash()] == d
    assert geodesic_diameter(m.with_start_goal(m.goal, m.start)) == d  # same walls, other hash, same value
