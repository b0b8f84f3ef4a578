"""Generator families: lattice shape, connectivity, reproducibility, family character, start/goal, errors."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from robonav.sim.generate import (
    FAMILIES,
    GeneratorError,
    _wilson,
    family_params,
    generate_maze,
)
from robonav.sim.geodesic import cell_distances, geodesic_diameter
from robonav.sim.maze import Maze, parse_maze


def _components(walls: np.ndarray) -> int:
    """Number of 4-connected components of free cells (independent of the generator's own check)."""
    free = ~walls
    label = np.zeros(walls.shape, dtype=int)
    count = 0
    for r, c in np.argwhere(free):
        if label[r, c]:
            continue
        count += 1
        stack = [(r, c)]
        label[r, c] = count
        while stack:
            y, x = stack.pop()
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                inside = 0 <= ny < walls.shape[0] and 0 <= nx < walls.shape[1]
                if inside and free[ny, nx] and not label[ny, nx]:
                    label[ny, nx] = count
                    stack.append((ny, nx))
    return count


def _open_edges(m: Maze) -> int:
    """Open walls between adjacent passage cells: (odd, even) and (even, odd) free cells."""
    w = m.walls
    return int((~w[1:-1:2, 2:-1:2]).sum() + (~w[2:-1:2, 1:-1:2]).sum())


def _dead_ends(m: Maze) -> int:
    w = m.walls
    free = ~w[1:-1:2, 1:-1:2]
    degree = ((~w[0:-2:2, 1:-1:2]).astype(int) + ~w[2::2, 1:-1:2] + ~w[1:-1:2, 0:-2:2] + ~w[1:-1:2, 2::2])
    return int((free & (degree == 1)).sum())


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(("width", "height"), [(3, 3), (7, 7), (9, 5), (4, 11)])
def test_lattice_shape_ring_connectivity_and_start_goal(family: str, width: int, height: int) -> None:
    for seed in range(3):
        m = generate_maze(family, width, height, seed=seed)
        assert (m.rows, m.cols) == (2 * height + 1, 2 * width + 1)
        assert m.walls[0].all() and m.walls[-1].all() and m.walls[:, 0].all() and m.walls[:, -1].all()
        assert not m.walls[1::2, 1::2].any(), "every passage cell is free"
        assert _components(m.walls) == 1
        assert (m.name, m.family, m.cell) == (f"{family}-{width}x{height}-s{seed}", family, 1.0)
        far = cell_distances(m, m.start)[m.goal]
        assert far >= 0.5 * geodesic_diameter(m) - 1e-9
        assert parse_maze(m.to_text()) == m


@pytest.mark.parametrize("family", FAMILIES)
def test_same_arguments_same_maze_other_seed_other_maze(family: str) -> None:
    a = generate_maze(family, 7, seed=42)
    assert a == generate_maze(family, 7, seed=42) and a.hash() == generate_maze(family, 7, seed=42).hash()
    others = {generate_maze(family, 7, seed=s).hash() for s in range(43, 53)}
    assert a.hash() not in others and len(others) == 10


def test_families_do_not_share_streams() -> None:
    # perfect and braided both start from a backtracker; with a shared stream the braided maze would be the
    # perfect maze with walls removed. With separate streams the trees differ.
    perfect = generate_maze("perfect", 9, seed=5)
    braided = generate_maze("braided", 9, seed=5, braid=0.0)
    assert not np.array_equal(perfect.walls, braided.walls)
    # Size is part of the stream too: 7x9 is not 9x7 transposed.
    tall, wide = generate_maze("wilson", 7, 9, seed=1), generate_maze("wilson", 9, 7, seed=1)
    assert not np.array_equal(tall.walls, wide.walls.T)


@pytest.mark.parametrize("family", ["perfect", "wilson", "deadends"])
def test_tree_families_are_perfect_mazes(family: str) -> None:
    for seed in range(10):
        m = generate_maze(family, 8, 6, seed=seed)
        assert _open_edges(m) == 8 * 6 - 1  # connected with n - 1 edges: a spanning tree, no loops
        assert m.walls[0::2, 0::2].all(), "no lattice post is ever free in a corridor maze"


def test_braided_has_loops_and_few_dead_ends() -> None:
    seeds = range(20)
    perfect = [_dead_ends(generate_maze("perfect", 9, seed=s)) for s in seeds]
    braided = [generate_maze("braided", 9, seed=s) for s in seeds]
    assert all(_open_edges(m) > 9 * 9 - 1 for m in braided)
    assert np.mean([_dead_ends(m) for m in braided]) < 0.3 * np.mean(perfect)
    fully = generate_maze("braided", 9, seed=1, braid=1.0)
    assert _dead_ends(fully) == 0  # opening a wall never makes a dead end, so braid=1 leaves none
    assert _open_edges(generate_maze("braided", 9, seed=1, braid=0.0)) == 80


def test_deadends_has_more_dead_ends_than_other_trees() -> None:
    seeds = range(30)
    mean = {f: np.mean([_dead_ends(generate_maze(f, 9, seed=s)) for s in seeds])
            for f in ("perfect", "wilson", "deadends")}
    assert mean["deadends"] > 1.2 * mean["wilson"] > 1.2 * mean["perfect"], mean


def test_rooms_have_open_areas_and_doors() -> None:
    for seed in range(10):
        m = generate_maze("rooms", 9, seed=seed)
        open_posts = ~m.walls[2:-1:2, 2:-1:2]  # a free post lies inside a room of >= 2x2 passages
        assert open_posts.sum() >= 1
    m = generate_maze("rooms", 9, seed=0, room_fraction=0.0)
    assert m.walls[2:-1:2, 2:-1:2].all() and _open_edges(m) >= 80  # no rooms: a tree plus a few loops


def test_halls_are_open_with_pillars() -> None:
    for seed in range(10):
        m = generate_maze("halls", 9, seed=seed)
        interior = ~m.walls[1:-1, 1:-1]
        assert interior.mean() > 0.75
        assert m.walls[2:-1:2, 2:-1:2].any(), "pillars stand on lattice posts"
    bare = generate_maze("halls", 9, seed=3, pillars=0.0, halls=1)
    assert not bare.walls[1:-1, 1:-1].any()  # one hall, no pillars: all open
    split = generate_maze("halls", 9, seed=3, pillars=0.0, halls=3)
    # A dividing wall fills an even column but for one or two doorways: >= 17 - 2 of its 17 interior cells.
    cuts = [c for c in range(2, split.cols - 2, 2) if split.walls[1:-1, c].sum() >= 15]
    assert len(cuts) == 2  # two dividing walls, each with one or two doorways


def test_wilson_draws_uniform_spanning_trees() -> None:
    # A 2x3 grid graph has 15 spanning trees; Wilson's algorithm draws each with probability 1/15.
    rng = np.random.default_rng(0)
    counts = Counter(_wilson(rng, 2, 3).tobytes() for _ in range(3000))
    assert len(counts) == 15
    expected = 3000 / 15
    chi2 = sum((n - expected) ** 2 / expected for n in counts.values())
    assert chi2 < 36.1  # 14 degrees of freedom, p = 0.001


def test_corner_to_corner() -> None:
    for family in FAMILIES:
        m = generate_maze(family, 6, 4, seed=2, corner_to_corner=True)
        assert (m.start, m.goal) == ((1, 1), (7, 11))
        assert m.name == f"{family}-6x4-s2-c2c"
        assert np.array_equal(m.walls, generate_maze(family, 6, 4, seed=2).walls)


def test_cell_and_params_flow_through() -> None:
    m = generate_maze("braided", 5, seed=1, cell=0.75, braid=0.5)
    assert m.cell == 0.75 and m.name == "braided-5x5-s1-braid0.5"
    assert family_params("rooms") == {"room_min": 2, "room_max": 4, "room_fraction": 0.45, "loops": 0.05}
    assert generate_maze(width=25, seed=0).rows == 51


@pytest.mark.parametrize(("kwargs", "pattern"), [
    ({"family": "labyrinth"}, r"unknown maze family 'labyrinth'; expected one of perfect, wilson, braided"),
    ({"width": 2}, r"maze width must be an integer number of passage cells in 3..25, got 2"),
    ({"width": 7, "height": 26}, r"maze height must be .* in 3..25, got 26"),
    ({"width": 7.0}, r"maze width must be an integer .* got 7.0"),
    ({"seed": -1}, r"seed must be an integer >= 0, got -1"),
    ({"family": "perfect", "braid": 0.5}, r"family 'perfect' takes no parameter 'braid'; it accepts none"),
    ({"family": "halls", "pilars": 0.5},
     r"family 'halls' takes no parameter 'pilars'; it accepts \['halls', 'pillars'\]"),
    ({"family": "braided", "braid": 1.5},
     r"family 'braided' parameter 'braid' must lie in \[0, 1\], got 1.5"),
    ({"family": "rooms", "room_min": 5, "room_max": 3}, r"needs 1 <= room_min <= room_max, got room_min=5"),
    ({"family": "deadends", "stub": "many"}, r"parameter 'stub' must be a number, got 'many'"),
    ({"family": "halls", "halls": 1.5}, r"parameter 'halls' must be a whole number, got 1.5"),
])
def test_errors_say_what_and_what_was_expected(kwargs: dict, pattern: str) -> None:
    with pytest.raises(GeneratorError, match=pattern):
        generate_maze(**kwargs)
