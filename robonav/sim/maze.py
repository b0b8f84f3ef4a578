"""Grid mazes: the `Maze` value, its text file format, and its world coordinates.

File format (docs/design.md, "Maze file"): one text line per grid row, row 0 first (north);
``#`` wall, ``.`` free, ``S`` start, ``G`` goal (exactly one each, both on free cells). Lines whose first
non-blank character is ``;`` are comments; header comments (before the first grid row) may set
``; cell=0.8`` (metres per cell), ``; name=...`` and ``; family=...``. Trailing whitespace and blank lines at
the end are ignored. Everything outside the grid is wall, so a file without an outer wall is still closed.
A bad file fails with a `MazeError` that names the file, the 1-based line and the cause.

World coordinates: cell (row r, col c) covers x in [c*cell, (c+1)*cell] and y in [(rows-1-r)*cell,
(rows-r)*cell]; x grows east with the column, y grows north toward row 0 (REP 103). `Maze.occupancy` is the
wall grid in that frame, indexed [iy, ix].

>>> m = parse_maze("#####\\n#S.G#\\n#####")
>>> m.rows, m.cols, m.start, m.goal
(3, 5, (1, 1), (1, 3))
>>> m.cell_center(m.goal)
(3.5, 1.5)
>>> m.world_to_cell(3.9, 1.2)
(1, 3)
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections import deque
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from robonav.errors import UserError

WALL, FREE, START, GOAL = "#", ".", "S", "G"
_GRID_CHARS = (WALL, FREE, START, GOAL)
_HEADER_RE = re.compile(r"^\s*(cell|name|family)\s*=\s*(.*?)\s*$")


class MazeError(UserError, ValueError):
    """A maze file (or a Maze built in code) is malformed: ragged, missing S/G, unreachable goal, ..."""


def _fail(source: str, line: int, cause: str) -> MazeError:
    return MazeError(f"{source}, line {line}: {cause}")


def _reachable(free: np.ndarray, start: tuple[int, int], goal: tuple[int, int]) -> bool:
    """True if ``goal`` can be reached from ``start`` by 4-connected moves through free cells."""
    rows, cols = free.shape
    seen = np.zeros_like(free)
    seen[start] = True
    queue = deque([start])
    while queue:
        r, c = queue.popleft()
        if (r, c) == goal:
            return True
        for nr, nc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if 0 <= nr < rows and 0 <= nc < cols and free[nr, nc] and not seen[nr, nc]:
                seen[nr, nc] = True
                queue.append((nr, nc))
    return False


@dataclass(frozen=True, eq=False)
class Maze:
    """A rectangular grid maze with one start and one goal; immutable (its arrays are read-only)."""

    walls: np.ndarray
    """bool [rows, cols], True = wall; row 0 is the FIRST line of the file (north)."""
    start: tuple[int, int]
    """(row, col) of the start cell, in file coordinates."""
    goal: tuple[int, int]
    """(row, col) of the goal cell, in file coordinates."""
    cell: float = 1.0
    """Edge of one square cell in metres."""
    name: str = ""
    """Human-readable name, e.g. ``perfect-7x7-s12`` or the file's stem."""
    family: str = "file"
    """Generator family that made the maze, or ``"file"`` for a hand-drawn one."""

    def __post_init__(self) -> None:
        walls = np.array(self.walls, dtype=bool, copy=True, order="C")
        if walls.ndim != 2 or walls.size == 0:
            raise MazeError(f"Maze.walls must be a non-empty 2-D bool array, got shape {walls.shape}")
        walls.setflags(write=False)
        object.__setattr__(self, "walls", walls)
        object.__setattr__(self, "start", (int(self.start[0]), int(self.start[1])))
        object.__setattr__(self, "goal", (int(self.goal[0]), int(self.goal[1])))
        object.__setattr__(self, "cell", float(self.cell))
        if not (math.isfinite(self.cell) and self.cell > 0.0):
            raise MazeError(f"Maze.cell must be a finite number of metres > 0, got {self.cell!r}")
        for what, text in (("name", self.name), ("family", self.family)):
            if text != text.strip() or "\n" in text or "\r" in text:
                raise MazeError(f"Maze.{what} must be one line without surrounding blanks (it is written "
                                f"into the file header), got {text!r}")
        for what, rc in (("start", self.start), ("goal", self.goal)):
            r, c = rc
            if not (0 <= r < walls.shape[0] and 0 <= c < walls.shape[1]):
                raise MazeError(f"Maze.{what} {rc} lies outside the {walls.shape[0]}x{walls.shape[1]} grid")
            if walls[r, c]:
                raise MazeError(f"Maze.{what} {rc} lies on a wall cell; put it on a free cell")
        if self.start == self.goal:
            raise MazeError(f"Maze start and goal are the same cell {self.start}; pick two free cells")

    # ----------------------------------------------------------------------------------------------- shape
    @property
    def rows(self) -> int:
        """Number of grid rows (file lines)."""
        return int(self.walls.shape[0])

    @property
    def cols(self) -> int:
        """Number of grid columns (characters per line)."""
        return int(self.walls.shape[1])

    @cached_property
    def occupancy(self) -> np.ndarray:
        """bool [rows, cols] wall grid indexed [iy, ix], iy growing north (``walls[::-1]``), contiguous."""
        occ = np.ascontiguousarray(self.walls[::-1])
        occ.setflags(write=False)
        return occ

    # ------------------------------------------------------------------------------------------ coordinates
    def cell_center(self, rc: tuple[int, int]) -> tuple[float, float]:
        """World (x, y) in metres of the centre of cell (row, col)."""
        r, c = rc
        return ((c + 0.5) * self.cell, (self.rows - r - 0.5) * self.cell)

    def world_to_cell(self, x: float, y: float) -> tuple[int, int]:
        """(row, col) of the cell holding world point (x, y); may lie outside the grid (which is wall)."""
        return (self.rows - 1 - math.floor(y / self.cell), math.floor(x / self.cell))

    def is_free(self, rc: tuple[int, int]) -> bool:
        """True if (row, col) is inside the grid and not a wall."""
        r, c = rc
        return 0 <= r < self.rows and 0 <= c < self.cols and not self.walls[r, c]

    def free_cells(self) -> np.ndarray:
        """int [K, 2] (row, col) of every free cell, in row-major order."""
        return np.argwhere(~self.walls).astype(np.int64)

    # -------------------------------------------------------------------------------------------- identity
    def _grid_lines(self) -> list[str]:
        chars = np.where(self.walls, WALL, FREE).astype("<U1")
        chars[self.start] = START
        chars[self.goal] = GOAL
        return ["".join(row) for row in chars]

    @cached_property
    def _digest(self) -> str:
        canonical = f"cell={self.cell!r}\n" + "\n".join(self._grid_lines()) + "\n"
        return hashlib.sha1(canonical.encode("ascii")).hexdigest()[:16]

    def hash(self) -> str:
        """First 16 hex chars of the sha1 of the canonical text (walls, S, G, cell); not name or family."""
        return self._digest

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Maze):
            return NotImplemented
        return (self.hash() == other.hash() and self.name == other.name and self.family == other.family
                and np.array_equal(self.walls, other.walls))

    def __hash__(self) -> int:
        return hash((self.hash(), self.name, self.family))

    def with_start_goal(self, start: tuple[int, int], goal: tuple[int, int]) -> Maze:
        """The same walls with another start and goal (both must be free and connected)."""
        maze = Maze(self.walls, start, goal, self.cell, self.name, self.family)
        if not _reachable(~maze.walls, maze.start, maze.goal):
            raise MazeError(f"maze {self.name!r}: goal {maze.goal} is unreachable from start {maze.start}")
        return maze

    def to_text(self) -> str:
        """The maze in the file format; ``parse_maze(m.to_text()) == m`` exactly."""
        header = [f"; name={self.name}", f"; family={self.family}", f"; cell={self.cell!r}"]
        return "\n".join(header + self._grid_lines()) + "\n"

    def __reduce__(self) -> tuple[type[Maze], tuple[object, ...]]:
        # Rebuild through __init__ so an unpickled Maze is checked and read-only again.
        return (Maze, (np.array(self.walls), self.start, self.goal, self.cell, self.name, self.family))

    def __repr__(self) -> str:
        return (f"Maze(name={self.name!r}, family={self.family!r}, {self.rows}x{self.cols}, "
                f"start={self.start}, goal={self.goal}, cell={self.cell})")


def _parse_cell(value: str, source: str, line: int) -> float:
    try:
        cell = float(value)
    except ValueError:
        raise _fail(source, line, f"cell={value!r} is not a number; expected metres per cell, "
                                  "e.g. '; cell=1.0'") from None
    if not (math.isfinite(cell) and cell > 0.0):
        raise _fail(source, line, f"cell={value!r} must be a finite number of metres > 0; "
                                  "e.g. '; cell=1.0'")
    return cell


def parse_maze(text: str, source: str = "<string>", default_name: str = "") -> Maze:
    """Parse the maze file format (see the module docstring); ``source`` names the text in errors."""
    cell, name, family = 1.0, default_name, "file"
    grid: list[tuple[int, str]] = []  # (1-based line number, row text)
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    for number, raw in enumerate(lines, start=1):
        row = raw.rstrip()
        if row.lstrip().startswith(";"):
            header = None if grid else _HEADER_RE.match(row.lstrip()[1:])
            if header is not None:
                key, value = header.group(1), header.group(2)
                if key == "cell":
                    cell = _parse_cell(value, source, number)
                elif key == "name":
                    name = value
                else:
                    family = value
            continue
        if not row:
            if grid:
                raise _fail(source, number, "blank line inside the maze grid; expected a row of "
                                            f"{len(grid[0][1])} characters: remove the blank line")
            continue
        grid.append((number, row))
    if not grid:
        raise _fail(source, max(len(lines), 1), "empty maze: no grid rows found; expected at least "
                                                "one line of '#', '.', 'S', 'G' after the comments")
    width = len(grid[0][1])
    start: tuple[int, int] | None = None
    goal: tuple[int, int] | None = None
    start_line = goal_line = 0
    for r, (number, row) in enumerate(grid):
        for c, ch in enumerate(row):
            if ch not in _GRID_CHARS:
                raise _fail(source, number, f"unknown character {ch!r} at column {c + 1}; expected one "
                                            "of '#' (wall), '.' (free), 'S' (start), 'G' (goal): replace "
                                            "it (comment lines start with ';')")
        if len(row) != width:
            raise _fail(source, number, f"ragged rows: expected {width} characters (as line "
                                        f"{grid[0][0]}), found {len(row)}; every row must have the "
                                        "same length (pad with '#')")
        for c, ch in enumerate(row):
            if ch == START:
                if start is not None:
                    raise _fail(source, number, f"two starts 'S': a second one at column {c + 1}, the "
                                                f"first at line {start_line}, column {start[1] + 1}; "
                                                "expected exactly one: make the other a '.'")
                start, start_line = (r, c), number
            elif ch == GOAL:
                if goal is not None:
                    raise _fail(source, number, f"two goals 'G': a second one at column {c + 1}, the "
                                                f"first at line {goal_line}, column {goal[1] + 1}; "
                                                "expected exactly one: make the other a '.'")
                goal, goal_line = (r, c), number
    first, last = grid[0][0], grid[-1][0]
    if start is None:
        raise _fail(source, first, f"no start 'S' in the grid (lines {first}-{last}); "
                                   "mark exactly one free cell with 'S'")
    if goal is None:
        raise _fail(source, first, f"no goal 'G' in the grid (lines {first}-{last}); "
                                   "mark exactly one free cell with 'G'")
    walls = np.array([[ch == WALL for ch in row] for _, row in grid], dtype=bool)
    if not _reachable(~walls, start, goal):
        raise _fail(source, goal_line, f"goal 'G' (column {goal[1] + 1}) is unreachable from start 'S' "
                                       f"(line {start_line}, column {start[1] + 1}) by 4-connected moves "
                                       "through free cells; open a passage or move G")
    return Maze(walls, start, goal, cell, name, family)


def load_maze(path: str | os.PathLike[str]) -> Maze:
    """Read a maze file (or a Nav2 map .yaml, robonav.sim.nav2map); its name defaults to the file's stem."""
    p = Path(path)
    if p.suffix in (".yaml", ".yml"):
        from robonav.sim.nav2map import load_nav2_map

        return load_nav2_map(p)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise MazeError(f"{p}: cannot read maze file ({e.strerror or e}); check the path") from e
    except UnicodeDecodeError as e:
        raise MazeError(f"{p}: not a UTF-8 text file ({e.reason}); a maze file is plain text") from e
    return parse_maze(text, source=str(p), default_name=p.stem)
