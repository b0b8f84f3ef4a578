"""Maze file format, errors, coordinates, identity, and the hand-drawn mazes shipped in robonav/data/mazes."""

from __future__ import annotations

import dataclasses
import hashlib
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robonav.data import maze_dir
from robonav.sim.maze import Maze, MazeError, load_maze, parse_maze

SMALL = """\
; name=small
; cell=0.5
#######
#S..#.#
#.#...#
#...#G#
#######
"""


def test_parse_pins_grid_start_goal_and_header() -> None:
    m = parse_maze(SMALL)
    assert (m.rows, m.cols) == (5, 7)
    assert m.start == (1, 1) and m.goal == (3, 5)
    assert m.cell == 0.5 and m.name == "small" and m.family == "file"
    assert m.walls.dtype == bool
    assert m.walls[0].all() and m.walls[-1].all()
    assert m.walls[1].tolist() == [True, False, False, False, True, False, True]
    assert not m.walls[m.start] and not m.walls[m.goal]


def test_occupancy_is_walls_flipped_north_up_and_contiguous() -> None:
    m = parse_maze(SMALL)
    occ = m.occupancy
    assert occ.flags.c_contiguous and occ.shape == (5, 7)
    for r in range(m.rows):
        assert occ[m.rows - 1 - r].tolist() == m.walls[r].tolist()
    # Row 1 of the file (start row) is iy = 3 in the world.
    assert occ[3].tolist() == [True, False, False, False, True, False, True]


def test_world_coordinates_by_hand() -> None:
    m = parse_maze(SMALL)  # 5 rows, cell 0.5 m: y spans [0, 2.5], row 0 on top
    # cell (1, 1) covers x in [0.5, 1.0], y in [(5-1-1)*0.5, (5-1)*0.5] = [1.5, 2.0]
    assert m.cell_center((1, 1)) == (0.75, 1.75)
    assert m.cell_center((4, 0)) == (0.25, 0.25)
    assert m.world_to_cell(0.75, 1.75) == (1, 1)
    assert m.world_to_cell(0.5, 1.5) == (1, 1)       # lower-left corner belongs to the cell
    assert m.world_to_cell(0.49, 1.99) == (1, 0)
    assert m.world_to_cell(-0.1, 0.1) == (4, -1)      # outside the grid (counts as wall)
    assert m.world_to_cell(1.0, 2.6) == (-1, 2)


@given(st.integers(1, 9), st.integers(2, 9), st.floats(0.1, 3.0), st.data())
@settings(max_examples=40, deadline=None)
def test_cell_center_and_world_to_cell_round_trip(rows: int, cols: int, cell: float,
                                                  data: st.DataObject) -> None:
    m = Maze(np.zeros((rows, cols), dtype=bool), (0, 0), (rows - 1, cols - 1), cell)
    r = data.draw(st.integers(0, rows - 1))
    c = data.draw(st.integers(0, cols - 1))
    x, y = m.cell_center((r, c))
    assert m.world_to_cell(x, y) == (r, c)
    assert m.occupancy.shape == (rows, cols)


def test_free_cells_lists_every_free_cell_row_major() -> None:
    m = parse_maze("####\n#S.#\n##G#\n####")
    assert m.free_cells().tolist() == [[1, 1], [1, 2], [2, 2]]
    assert m.free_cells().dtype == np.int64


def test_comments_trailing_space_blank_tail_and_crlf_are_ignored() -> None:
    text = "; a comment\n\n  ; indented comment\n#####   \n#S.G#\n; comment inside the grid\n#####\n\n\n"
    m = parse_maze(text)
    assert (m.rows, m.cols, m.start, m.goal, m.cell, m.name) == (3, 5, (1, 1), (1, 3), 1.0, "")
    assert parse_maze(text.replace("\n", "\r\n")) == m


def test_header_keys_after_the_grid_starts_are_plain_comments() -> None:
    m = parse_maze("; name=top\n#####\n; cell=0.25\n#S.G#\n#####")
    assert m.name == "top" and m.cell == 1.0


def test_a_maze_without_an_outer_wall_parses() -> None:
    m = parse_maze("S..\n.#.\n..G")
    assert (m.rows, m.cols) == (3, 3) and m.walls.sum() == 1


# --------------------------------------------------------------------------------------------- errors
ERRORS = [
    ("ragged", "#####\n#S.G#\n####\n",
     r"<string>, line 3: ragged rows: expected 5 characters \(as line 1\), found 4"),
    ("no start", "#####\n#..G#\n#####", r"<string>, line 1: no start 'S' in the grid \(lines 1-3\)"),
    ("no goal", "; c\n#####\n#S..#\n#####", r"<string>, line 2: no goal 'G' in the grid \(lines 2-4\)"),
    ("two starts", "#####\n#S.G#\n#..S#\n#####",
     r"<string>, line 3: two starts 'S': a second one at column 4, the first at line 2, column 2; "
     r"expected exactly one"),
    ("two goals", "#####\n#SGG#\n#####",
     r"<string>, line 2: two goals 'G': a second one at column 4, the first at line 2, column 3"),
    ("unreachable", "#####\n#S#G#\n#####",
     r"<string>, line 2: goal 'G' \(column 4\) is unreachable from start 'S' \(line 2, column 2\) by "
     r"4-connected moves"),
    ("diagonal only", "####\n#S##\n##G#\n####", r"line 3: goal 'G' \(column 3\) is unreachable"),
    ("unknown char", "#####\n#S.G#\n##x##",
     r"<string>, line 3: unknown character 'x' at column 3; expected one of"),
    ("tab", "#####\n#S\t.G#\n#####", r"line 2: unknown character '\\t' at column 3"),
    ("empty", "", r"<string>, line 1: empty maze: no grid rows found"),
    ("only comments", "; cell=1.0\n; just words\n\n", r"<string>, line 2: empty maze: no grid rows found"),
    ("cell not a number", "; cell=wide\n#####\n#S.G#\n#####",
     r"<string>, line 1: cell='wide' is not a number; expected metres per cell"),
    ("cell zero", "; name=x\n; cell=0\n#####\n#S.G#\n#####",
     r"<string>, line 2: cell='0' must be a finite number of metres > 0"),
    ("cell negative", "; cell=-1.5\n#S.G#", r"line 1: cell='-1.5' must be a finite number of metres > 0"),
    ("cell nan", "; cell=nan\n#S.G#", r"line 1: cell='nan' must be a finite number"),
    ("blank inside grid", "#####\n#S.G#\n\n#####", r"<string>, line 3: blank line inside the maze grid"),
]


@pytest.mark.parametrize(("text", "pattern"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_every_error_kind_names_source_line_and_cause(text: str, pattern: str) -> None:
    with pytest.raises(MazeError, match=pattern):
        parse_maze(text)


def test_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("; a bad maze\n#####\n#S.G#\n###\n")
    with pytest.raises(MazeError, match=re.escape(f"{path}, line 4: ragged rows")):
        load_maze(path)
    with pytest.raises(MazeError, match=r"missing\.txt: cannot read maze file"):
        load_maze(tmp_path / "missing.txt")


def test_maze_error_is_a_value_error() -> None:
    assert issubclass(MazeError, ValueError)


def test_maze_built_in_code_is_checked() -> None:
    walls = np.array([[False, True, False]])
    with pytest.raises(MazeError, match=r"Maze.goal \(0, 1\) lies on a wall cell"):
        Maze(walls, (0, 0), (0, 1))
    with pytest.raises(MazeError, match=r"Maze.start \(3, 0\) lies outside the 1x3 grid"):
        Maze(walls, (3, 0), (0, 2))
    with pytest.raises(MazeError, match=r"Maze.cell must be a finite number of metres > 0, got 0.0"):
        Maze(walls, (0, 0), (0, 2), cell=0.0)
    with pytest.raises(MazeError, match=r"start and goal are the same cell"):
        Maze(walls, (0, 0), (0, 0))
    with pytest.raises(MazeError, match=r"Maze.name must be one line"):
        Maze(walls, (0, 0), (0, 2), name="two\nlines")


# ---------------------------------------------------------------------------------- identity, edits
def test_hash_is_sha1_of_the_documented_canonical_text() -> None:
    m = parse_maze("; name=ignored\n#####\n#S.G#\n#####")
    canonical = "cell=1.0\n#####\n#S.G#\n#####\n"
    assert m.hash() == hashlib.sha1(canonical.encode()).hexdigest()[:16]
    assert len(m.hash()) == 16


def test_hash_follows_walls_start_goal_and_cell_but_not_name() -> None:
    base = parse_maze("######\n#S..G#\n######")
    same = parse_maze("; name=other\n; family=perfect\n######\n#S..G#\n######")
    assert base.hash() == same.hash() and base != same
    variants = [
        parse_maze("######\n#.S.G#\n######"),
        parse_maze("######\n#S.G.#\n######"),
        parse_maze("; cell=0.9\n######\n#S..G#\n######"),
        parse_maze("######\n#S..G#\n###.##"),
    ]
    assert len({base.hash(), *(v.hash() for v in variants)}) == 5


def test_maze_is_immutable() -> None:
    m = parse_maze(SMALL)
    with pytest.raises(ValueError, match="read-only"):
        m.walls[1, 1] = True
    with pytest.raises(ValueError, match="read-only"):
        m.occupancy[0, 0] = False
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.cell = 2.0  # type: ignore[misc]


def test_pickle_round_trip_keeps_the_maze_checked_and_read_only() -> None:
    m = parse_maze(SMALL)
    _ = m.occupancy, m.hash()  # cached values must not travel stale
    back = pickle.loads(pickle.dumps(m))
    assert back == m and back.hash() == m.hash()
    assert not back.walls.flags.writeable and np.array_equal(back.occupancy, m.occupancy)


def test_maze_copies_the_callers_array() -> None:
    walls = np.zeros((1, 3), dtype=bool)
    m = Maze(walls, (0, 0), (0, 2))
    walls[0, 1] = True
    assert not m.walls[0, 1]


def test_with_start_goal() -> None:
    m = parse_maze(SMALL)
    moved = m.with_start_goal((3, 1), (1, 5))
    assert (moved.start, moved.goal, moved.name, moved.cell) == ((3, 1), (1, 5), "small", 0.5)
    assert np.array_equal(moved.walls, m.walls) and moved.hash() != m.hash()
    with pytest.raises(MazeError, match=r"Maze.goal \(0, 0\) lies on a wall cell"):
        m.with_start_goal((1, 1), (0, 0))
    cut = parse_maze("#######\n#S.#..#\n#.G#..#\n#######")
    with pytest.raises(MazeError, match=r"goal \(1, 4\) is unreachable from start \(1, 1\)"):
        cut.with_start_goal((1, 1), (1, 4))


def test_to_text_round_trips_exactly() -> None:
    m = parse_maze(SMALL)
    text = m.to_text()
    assert text.splitlines()[:3] == ["; name=small", "; family=file", "; cell=0.5"]
    back = parse_maze(text)
    assert back == m and back.hash() == m.hash() and back.to_text() == text


@given(st.integers(1, 8), st.integers(2, 8), st.floats(0.05, 5.0, allow_nan=False), st.data())
@settings(max_examples=40, deadline=None)
def test_to_text_round_trip_random_mazes(rows: int, cols: int, cell: float, data: st.DataObject) -> None:
    walls = np.array(data.draw(st.lists(st.lists(st.booleans(), min_size=cols, max_size=cols),
                                        min_size=rows, max_size=rows)), dtype=bool)
    walls[0, :] = False  # a free top row keeps S and G connected
    s, g = data.draw(st.lists(st.integers(0, cols - 1), min_size=2, max_size=2, unique=True))
    name = data.draw(st.text("abcXYZ-_ 0123456789", max_size=12)).strip()
    m = Maze(walls, (0, s), (0, g), cell, name, data.draw(st.sampled_from(["file", "rooms"])))
    back = parse_maze(m.to_text())
    assert back == m
    assert back.cell == m.cell  # the float survives the text exactly


def test_load_maze_defaults_name_to_stem(tmp_path: Path) -> None:
    path = tmp_path / "corridor.txt"
    path.write_text("#####\n#S.G#\n#####\n")
    assert load_maze(path).name == "corridor"
    assert load_maze(str(path)).name == "corridor"
    path.write_text("; name=renamed\n#####\n#S.G#\n#####\n")
    assert load_maze(path).name == "renamed"


# ------------------------------------------------------------------------------------ hand-drawn mazes
HAND = sorted(maze_dir().glob("*.txt"))


def test_six_to_eight_hand_mazes_ship() -> None:
    assert 6 <= len(HAND) <= 8, [p.name for p in HAND]


@pytest.mark.parametrize("path", HAND, ids=[p.stem for p in HAND])
def test_hand_maze_loads_and_explains_itself(path: Path) -> None:
    m = load_maze(path)  # parsing already proves S, G and a 4-connected route between them
    assert m.family == "file" and m.name == path.stem
    comments = [line for line in path.read_text().splitlines() if line.startswith(";")]
    prose = [c for c in comments if not re.match(r";\s*(name|cell|family)\s*=", c)]
    assert len(prose) >= 2, f"{path.name} needs comment lines explaining it"
    assert parse_maze(m.to_text()) == m


def test_hand_mazes_cover_the_requested_shapes() -> None:
    mazes = {p.stem: load_maze(p) for p in HAND}
    assert any(m.cell == 0.8 for m in mazes.values())
    assert any(m.rows != m.cols for m in mazes.values())
    # One is drawn without an outer wall (a free cell on the border).
    assert any(not (m.walls[0].all() and m.walls[-1].all() and m.walls[:, 0].all() and m.walls[:, -1].all())
               for m in mazes.values())
    for shape in ("spiral", "rooms", "loops", "pillar_hall", "dead_ends"):
        assert shape in mazes
