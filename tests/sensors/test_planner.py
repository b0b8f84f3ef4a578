"""The classical planner's kernels: A* and the cost map, pinned by hand and against their NumPy twins."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from robonav.sensors.planner import (
    BLOCKED_ENDPOINT_COST,
    astar,
    astar_reference,
    cost_map,
    cost_map_reference,
    nonzero_bounds,
)

R2 = math.sqrt(2.0)
INF = np.inf


def wall_with_gap() -> np.ndarray:
    """5x5, indexed [i, j]: the column i = 2 is blocked for j = 0..3; the only gap is (2, 4)."""
    cost = np.ones((5, 5))
    cost[2, :4] = INF
    return cost


def test_astar_around_a_wall_by_hand() -> None:
    # (0,0) -> (1,4): 3 axis + 1 diagonal = 3 + sqrt2; (1,4) -> (2,4) -> (3,4): 2 (the diagonals past the wall end
    # are corner cuts); (3,4) -> (4,0): 3 + sqrt2. Total 8 + 2 sqrt2.
    cells, total = astar(wall_with_gap(), 1.0, (0, 0), (4, 0))
    assert total == pytest.approx(8 + 2 * R2, abs=1e-12)
    assert cells[0].tolist() == [0, 0] and cells[-1].tolist() == [4, 0]
    assert [2, 4] in cells.tolist()
    steps = np.abs(np.diff(cells, axis=0))
    assert steps.max() == 1 and np.isfinite(wall_with_gap()[cells[:, 0], cells[:, 1]]).all()
    # Metres scale with the cell size.
    assert astar(wall_with_gap(), 0.5, (0, 0), (4, 0))[1] == pytest.approx(4 + R2, abs=1e-12)


def test_astar_step_cost_is_length_times_mean_cell_cost() -> None:
    # 1 x 3 strip [1, 3, 1]: 1 * (1 + 3) / 2 + 1 * (3 + 1) / 2 = 4.
    cells, total = astar(np.array([[1.0, 3.0, 1.0]]), 1.0, (0, 0), (0, 2))
    assert total == pytest.approx(4.0) and cells.tolist() == [[0, 0], [0, 1], [0, 2]]


def test_astar_without_a_way_through() -> None:
    cost = wall_with_gap()
    cost[2, 4] = INF
    cells, total = astar(cost, 1.0, (0, 0), (4, 0))
    assert cells.shape == (0, 2) and total == INF


def test_astar_leaves_and_enters_blocked_end_cells() -> None:
    cost = np.ones((1, 4))
    cost[0, 0] = cost[0, 3] = INF
    cells, total = astar(cost, 1.0, (0, 0), (0, 3))
    assert len(cells) == 4
    # Leaving and entering cost (1e6 + 1) / 2 each; the middle step costs 1.
    assert total == pytest.approx(BLOCKED_ENDPOINT_COST + 2.0)


def test_astar_refuses_cells_outside_the_map() -> None:
    with pytest.raises(ValueError, match=r"astar goal cell \(9, 0\) lies outside the 5x5 cost map"):
        astar(wall_with_gap(), 1.0, (0, 0), (9, 0))


costs = arrays(np.float64, st.tuples(st.integers(2, 14), st.integers(2, 14)),
               elements=st.sampled_from([1.0, 1.0, 1.0, 2.5, 7.0, INF]))


@settings(max_examples=60, deadline=None)
@given(costs, st.data())
def test_astar_matches_the_reference(cost: np.ndarray, data: st.DataObject) -> None:
    w, h = cost.shape
    start = (data.draw(st.integers(0, w - 1)), data.draw(st.integers(0, h - 1)))
    goal = (data.draw(st.integers(0, w - 1)), data.draw(st.integers(0, h - 1)))
    cells, total = astar(cost, 0.25, start, goal)
    ref_cells, ref_total = astar_reference(cost, 0.25, start, goal)
    assert total == pytest.approx(ref_total, rel=1e-12) or total == ref_total == INF
    assert np.array_equal(cells, ref_cells)


# ----------------------------------------------------------------------------------------------- cost map
def test_cost_map_by_hand() -> None:
    blocked = np.zeros((9, 9), dtype=bool)
    blocked[4, 4] = True
    c = cost_map(blocked, 0.125, lethal_radius=0.23, soft_radius=0.5, soft_weight=3.0, lethal_cost=1000.0)
    assert c[4, 4] == INF
    assert c[4, 5] == 1000.0 and c[5, 5] == 1000.0            # 0.125 m and 0.177 m: inside the body
    # 0.25 m: 1 + 3 * (0.5 - 0.25) / (0.5 - 0.23) = 1 + 2.777...
    assert c[4, 6] == pytest.approx(1 + 3 * 0.25 / 0.27)
    assert c[4, 8] == 1.0 and c[0, 0] == 1.0                   # 0.5 m and farther: free
    with pytest.raises(ValueError, match="0 < lethal_radius < soft_radius"):
        cost_map(blocked, 0.125, 0.5, 0.25)


@settings(max_examples=40, deadline=None)
@given(arrays(np.bool_, st.tuples(st.integers(1, 12), st.integers(1, 12)), elements=st.booleans()),
       st.floats(0.05, 0.3), st.floats(0.1, 0.9))
def test_cost_map_matches_the_reference(blocked: np.ndarray, res: float, lethal: float) -> None:
    soft = lethal + 0.3
    c = cost_map(blocked, res, lethal, soft, 2.0, 100.0)
    ref = cost_map_reference(blocked, res, lethal, soft, 2.0, 100.0)
    np.testing.assert_allclose(c, ref, rtol=1e-12, atol=1e-12)


def test_nonzero_bounds() -> None:
    g = np.zeros((6, 7), dtype=np.int64)
    assert nonzero_bounds(g) is None
    g[1, 5] = -3
    g[4, 2] = 9
    assert nonzero_bounds(g) == (1, 4, 2, 5)
