"""Named maze suites and disjoint seed splits: the same name always gives the same mazes.

Seeds of the three splits never overlap: split ``s`` uses seeds ``SPLITS[s] + index`` with index in
[0, 1_000_000). A generated suite is named ``<split>[-<W>x<H>][-<family>][-c<cell>]``:

- ``test``                 7x7, the test split, every family (`FAMILIES`), ``count`` mazes per family
- ``test-9x9``, ``val``    other sizes and splits; ``train-5x5-braided`` one family only
- ``test-c0.8``            the same mazes on 0.8 m grid cells instead of 1 m (narrower corridors, thinner walls)
- ``test-15x15``           sizes up to 25x25 (15x15 is the largest the judged suites use)
- ``office``               the test split's 9x9 office floors (`generate.ALL_FAMILIES`): rooms, doors, corridors of
                           different widths, furniture; ``val-11x11-office`` and the like name others
- ``hand``                 the hand-drawn files shipped in robonav/data/mazes
- a path                   a maze file, or a folder of ``*.txt`` maze files (sorted by name); a suite name
                           wins over a folder of the same name (write ``./test`` for the folder)

Maze ``i`` of a family in a split is ``generate_maze(family, W, H, seed=split_seed(split, i))``, whatever
suite it is listed in; generated suites list family by family, in `FAMILIES` order. For 7x7 mazes the splits
also hold distinct mazes (checked on 100 per split by hash); tiny sizes such as 3x3 have few distinct mazes,
so repeats across splits are possible there.

>>> [m.name for m in suite_mazes("val-5x5-wilson", 2)]
['wilson-5x5-s1000000', 'wilson-5x5-s1000001']
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from robonav.data import maze_dir
from robonav.errors import UserError
from robonav.sim.generate import ALL_FAMILIES, FAMILIES, MAX_SIZE, MIN_SIZE, generate_maze
from robonav.sim.maze import Maze, load_maze

SPLITS: dict[str, int] = {"train": 0, "val": 1_000_000, "test": 2_000_000}
SPLIT_SIZE = 1_000_000
DEFAULT_COUNT = 20
"""Mazes per family in a generated suite when ``count`` is not given."""
DEFAULT_SIZE = 7
CELL_RANGE = (0.5, 2.0)
"""Metres per grid cell a suite name may ask for (``-c<cell>``): below 0.5 m a corridor barely fits the robot."""
_NAME_RE = re.compile(r"^(?P<split>[a-z]+)(?:-(?P<w>\d+)x(?P<h>\d+))?(?:-(?P<family>[a-z]+))?"
                      r"(?:-c(?P<cell>\d+(?:\.\d+)?))?$")
PATTERNS = ("<split>[-<W>x<H>][-<family>][-c<cell>]  e.g. test, test-9x9, val-11x11-rooms, train-5x5, test-c0.8",
            "office  (test-9x9-office)",
            "hand  (the hand-drawn mazes in robonav/data/mazes)",
            "a path to a maze file or to a folder of *.txt maze files")


NAMED: dict[str, str] = {"office": "test-9x9-office"}
"""Suites known by a short name, and the generated suite each one is."""


class SuiteError(UserError, ValueError):
    """A suite name, split or index that does not exist."""


@dataclass(frozen=True)
class SuiteSpec:
    """A generated suite, parsed from its name."""

    split: str
    """One of `SPLITS`."""
    width: int
    """Passage cells east-west."""
    height: int
    """Passage cells north-south."""
    families: tuple[str, ...]
    """Generator families, in listing order."""
    cell: float = 1.0
    """Metres per grid cell."""


def split_seed(split: str, index: int) -> int:
    """Seed of maze ``index`` of a split: ``SPLITS[split] + index``, index in [0, 1_000_000)."""
    if split not in SPLITS:
        raise SuiteError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < SPLIT_SIZE:
        raise SuiteError(f"split index must be an integer in [0, {SPLIT_SIZE:_}), got {index!r}: "
                         "seeds past that would run into the next split")
    return SPLITS[split] + index


def _unknown(name: str, why: str) -> SuiteError:
    return SuiteError(f"unknown maze suite {name!r}: {why}. Valid suites: " + "; ".join(PATTERNS)
                      + f". Splits: {', '.join(SPLITS)}; families: {', '.join(ALL_FAMILIES)}; "
                      f"sizes {MIN_SIZE}..{MAX_SIZE}")


def parse_suite(name: str) -> SuiteSpec:
    """Parse a generated suite's name ``<split>[-<W>x<H>][-<family>][-c<cell>]`` (or a `NAMED` one)."""
    if name in NAMED:
        return parse_suite(NAMED[name])
    match = _NAME_RE.match(name)
    if match is None:
        raise _unknown(name, "it is not an existing path and does not match the name pattern")
    split = match["split"]
    if split not in SPLITS:
        raise _unknown(name, f"split {split!r} does not exist")
    width = int(match["w"]) if match["w"] else DEFAULT_SIZE
    height = int(match["h"]) if match["h"] else DEFAULT_SIZE
    if not (MIN_SIZE <= width <= MAX_SIZE and MIN_SIZE <= height <= MAX_SIZE):
        raise _unknown(name, f"size {width}x{height} is out of range")
    family = match["family"]
    if family is not None and family not in ALL_FAMILIES:
        raise _unknown(name, f"family {family!r} does not exist")
    cell = float(match["cell"]) if match["cell"] else 1.0
    if not CELL_RANGE[0] <= cell <= CELL_RANGE[1]:
        raise _unknown(name, f"cell {cell:g} m is out of range {CELL_RANGE[0]:g}..{CELL_RANGE[1]:g} m")
    return SuiteSpec(split, width, height, (family,) if family else FAMILIES, cell)


def _load_files(name: str, files: list[Path], count: int | None) -> list[Maze]:
    if not files:
        raise SuiteError(f"maze suite {name!r}: no *.txt maze files in it; add some or pick another suite")
    if count is not None and count > len(files):
        raise SuiteError(f"maze suite {name!r} holds {len(files)} mazes, {count} were asked for; "
                         "ask for fewer (or none, for all of them)")
    return [load_maze(p) for p in files[:count]]


def suite_mazes(name: str, count: int | None = None) -> list[Maze]:
    """The mazes of suite ``name``: ``count`` per family for a generated suite (default 20), or the first
    ``count`` files of a file suite (default all)."""
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        raise SuiteError(f"count must be an integer >= 0 or None, got {count!r}")
    if name == "hand":
        return _load_files(name, sorted(maze_dir().glob("*.txt")), count)
    try:
        spec = parse_suite(name)
    except SuiteError:
        path = Path(name)
        if path.is_dir():
            return _load_files(name, sorted(path.glob("*.txt")), count)
        if path.is_file():
            return _load_files(name, [path], count)
        raise
    per_family = DEFAULT_COUNT if count is None else count
    return [generate_maze(family, spec.width, spec.height, seed=split_seed(spec.split, i), cell=spec.cell)
            for family in spec.families for i in range(per_family)]
