"""The office family (rooms, doors, corridors of different widths, furniture) and the footprint check that every
generated maze passes."""

from __future__ import annotations

import numpy as np
import pytest

from robonav.sim.generate import (
    ALL_FAMILIES,
    FAMILIES,
    FOOTPRINT_RADIUS,
    GeneratorError,
    _partition,
    footprint_connected,
    generate_maze,
)
from robonav.sim.geodesic import cell_distances, geodesic_diameter
from robonav.sim.maze import parse_maze


@pytest.mark.parametrize(("width", "height"), [(3, 3), (7, 7), (9, 9), (15, 15), (4, 11)])
def test_office_shape_ring_connectivity_footprint_and_start_goal(width: int, height: int) -> None:
    for seed in range(3):
        m = generate_maze("office", width, height, seed=seed)
        assert (m.rows, m.cols) == (2 * height + 1, 2 * width + 1)
        assert m.walls[0].all() and m.walls[-1].all() and m.walls[:, 0].all() and m.walls[:, -1].all()
        assert footprint_connected(m.walls, m.cell)
        assert np.isfinite(cell_distances(m, m.start)[~m.walls]).all(), "every free cell reachable"
        assert cell_distances(m, m.start)[m.goal] >= 0.5 * geodesic_diameter(m) - 1e-9
        assert (m.name, m.family) == (f"office-{width}x{height}-s{seed}", "office")
        assert parse_maze(m.to_text()) == m
        assert m == generate_maze("office", width, height, seed=seed)


def _free_blocks(walls: np.ndarray) -> int:
    """Free 2x2 blocks: open floor (rooms, wide corridors), which a lattice maze without rooms never has."""
    free = ~walls
    return int((free[:-1, :-1] & free[1:, :-1] & free[:-1, 1:] & free[1:, 1:]).sum())


def _pillars(walls: np.ndarray) -> int:
    """Wall cells off the outer ring whose four neighbours are all free: pillars or the ends of furniture."""
    w = walls
    inner = w[1:-1, 1:-1] & ~w[:-2, 1:-1] & ~w[2:, 1:-1] & ~w[1:-1, :-2] & ~w[1:-1, 2:]
    return int(inner.sum())


def test_office_floors_have_open_rooms_furniture_and_lose_no_floor_to_a_closed_room() -> None:
    mazes = [generate_maze("office", 9, seed=2_000_000 + i) for i in range(20)]
    assert all(_free_blocks(m.walls) > 20 for m in mazes)  # open rooms, not one-cell passages
    assert sum(_pillars(m.walls) > 0 for m in mazes) >= 10  # furniture stands free in most floors
    perfect = generate_maze("perfect", 9, seed=0)
    assert _free_blocks(perfect.walls) == 0


def test_partition_makes_rooms_of_different_sizes_and_corridors_of_different_widths() -> None:
    rng = np.random.default_rng(4)
    rooms: list[tuple[int, int, int, int]] = []
    halls: list[tuple[int, int, int, int]] = []
    _partition(rng, (1, 17, 1, 17), 2, 6, [2, 1], rooms, halls)
    widths = sorted(min(r1 - r0, c1 - c0) + 1 for r0, r1, c0, c1 in halls)
    assert widths == [1, 2]  # one corridor of each width
    sizes = {(r1 - r0 + 1) * (c1 - c0 + 1) for r0, r1, c0, c1 in rooms}
    assert len(sizes) >= 3
    # Rooms and corridors tile the 17x17 floor but for the separators: nothing overlaps.
    floor = np.zeros((19, 19), dtype=int)
    for r0, r1, c0, c1 in rooms + halls:
        floor[r0:r1 + 1, c0:c1 + 1] += 1
    assert floor.max() == 1


@pytest.mark.parametrize("family", ALL_FAMILIES)
@pytest.mark.parametrize("cell", [0.5, 1.0])
def test_every_family_lets_the_widest_robot_through(family: str, cell: float) -> None:
    for seed in range(4):
        m = generate_maze(family, 7, 5, seed=seed, cell=cell)
        assert footprint_connected(m.walls, m.cell, FOOTPRINT_RADIUS)


def test_footprint_check_by_hand() -> None:
    # A 1 m corridor (one free row between walls): a disc of radius 0.45 passes, one of 0.55 cannot even stand
    # at a cell centre (0.5 m from both walls).
    corridor = np.ones((3, 6), dtype=bool)
    corridor[1, 1:5] = False
    assert footprint_connected(corridor, 1.0, 0.45)
    assert not footprint_connected(corridor, 1.0, 0.55)
    # Two free cells touching only at a corner: no way through for any disc.
    diagonal = np.ones((4, 4), dtype=bool)
    diagonal[1, 1] = diagonal[2, 2] = False
    assert not footprint_connected(diagonal, 1.0, 0.1)
    with pytest.raises(ValueError, match="radius < cell and an odd refine"):
        footprint_connected(corridor, 1.0, 0.2, refine=4)


def test_a_cell_too_narrow_for_the_widest_robot_is_refused() -> None:
    with pytest.raises(GeneratorError, match=r"cell 0.4 m is too narrow: .* \(radius 0.21 m\) through; "
                                             r"give cell > 0.42 m"):
        generate_maze("perfect", 5, cell=0.4)


def test_office_parameters_are_checked() -> None:
    with pytest.raises(GeneratorError, match=r"family 'office' parameter 'corridors' must lie in 0..3"):
        generate_maze("office", 7, corridors=4)
    with pytest.raises(GeneratorError, match=r"family 'office' needs 1 <= room_min <= room_max"):
        generate_maze("office", 7, room_min=5, room_max=3)
    assert "office" not in FAMILIES  # the generated suites' default families stay the lattice ones
