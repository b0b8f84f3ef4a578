"""MazeSampler: generated mazes honour sim.maze.cell_range, and leave the stream alone without it."""

import numpy as np
import pytest

from robonav.settings import from_dict
from robonav.sim.config import MazeConfig
from robonav.sim.episodes import MazeSampler


def _cells(cfg: MazeConfig, n: int = 40) -> list[float]:
    sampler, rng = MazeSampler(cfg), np.random.default_rng(7)
    return [sampler.sample(i, rng).maze.cell for i in range(n)]


def test_cell_range_draws_each_maze_its_own_cell_inside_the_range():
    cells = _cells(MazeConfig(width=(3, 3), cell_range=(0.8, 1.2)))
    assert all(0.8 <= c <= 1.2 for c in cells)
    assert len(set(cells)) == len(cells)           # a draw per maze, not one per sampler
    assert min(cells) < 0.9 and max(cells) > 1.1    # spread over the range (40 uniform draws)


def test_cell_range_scales_the_world_not_the_grid():
    maze = MazeSampler(MazeConfig(width=(3, 3), cell_range=(0.5, 0.5))).sample(0, np.random.default_rng(1)).maze
    assert maze.cell == 0.5
    r, c = maze.start
    assert maze.cell_center((r, c)) == ((c + 0.5) * 0.5, (maze.rows - r - 0.5) * 0.5)


def test_without_cell_range_the_cell_is_fixed_and_the_mazes_unchanged():
    fixed = MazeConfig(width=(3, 5), cell=1.0)
    assert set(_cells(fixed)) == {1.0}
    sampler, rng = MazeSampler(fixed), np.random.default_rng(3)
    mazes = [sampler.sample(i, rng).maze for i in range(3)]
    # Pinned from the sampler before cell_range existed (commit 17cff11): no extra draw shifts the stream.
    assert [(m.hash(), m.name) for m in mazes] == [("3f3041404a548608", "perfect-3x3-s236810"),
                                                   ("7c48236554107bb3", "halls-5x5-s582162"),
                                                   ("02cb630a94fb53be", "perfect-3x3-s433126")]


@pytest.mark.parametrize("bad", [(1.2, 0.8), (0.0, 1.0), (-1.0, 1.0), (1.0, float("inf"))])
def test_bad_cell_range_is_refused_by_name(bad):
    with pytest.raises(ValueError, match=r"sim\.maze\.cell_range .*0 < lo <= hi"):
        MazeConfig(cell_range=bad)


def test_cell_range_loads_from_a_launch_file_dict():
    assert from_dict(MazeConfig, {"cell_range": [0.8, 1.2]}, "maze").cell_range == (0.8, 1.2)
