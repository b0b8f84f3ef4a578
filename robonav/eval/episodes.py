"""Episode lists: which episodes an evaluation runs, made the same way every time and saved for paired comparisons.

An episode is (maze, start, goal, seed) (docs/design.md). `make_episodes` lists them from a maze suite
(robonav.sim.suites): the same suite, count and seed always give the same list. Episode ``k``:

- maze: the suite's mazes (`suite_mazes`: 20 per family for a generated suite, every file of a file suite) in
  turn, ``k`` modulo their number. A generated suite lists family by family; here the families are interleaved
  (one maze of each family, then the next of each), so any prefix of the list is balanced across families. Maze
  files (``hand``, a file, a folder) are taken in their sorted order.
- start and goal: a generated maze gets a fresh pair for every episode, drawn by `sample_start_goal` (at least half
  the maze's geodesic diameter apart) from ``default_rng(SeedSequence([seed, k, 0]))``; a file maze keeps its own.
- seed (noise, heading): ``SeedSequence([seed, k, 1])``'s first 31 bits.

So episode ``k`` depends only on (suite, seed, k): a longer list starts with the shorter one.

An episode-list file is JSON lines: a header ``{"format": "robonav.episodes/1", "episodes": N, "conditions":
[...]}`` (the named conditions the episodes run under, robonav.eval.conditions; a header without them means
``["nominal"]``), then one object per episode with the maze text (`Maze.to_text`), its hash, start, goal, seed,
name and family. `load_episodes` checks every hash against the text and refuses a file that was edited, cut
short or reordered by hand.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from robonav.atomic import write_text_atomic
from robonav.errors import UserError
from robonav.sim.episodes import EpisodeSpec
from robonav.sim.geodesic import sample_start_goal
from robonav.sim.maze import Maze, MazeError, parse_maze
from robonav.sim.suites import SuiteError, parse_suite, suite_mazes

__all__ = ["FORMAT", "EpisodeListError", "episode_seed", "list_conditions", "load_episodes", "make_episodes",
           "save_episodes"]

FORMAT = "robonav.episodes/1"
_KEYS = ("index", "name", "family", "maze_hash", "start", "goal", "seed", "maze")


class EpisodeListError(UserError, ValueError):
    """An episode-list file (or a request for one) that cannot be used: bad format, tampered maze, bad count."""


def _is_generated(suite: str) -> bool:
    """True if ``suite`` names a generated suite (as `suite_mazes` decides: ``hand`` and paths are files)."""
    if suite == "hand":
        return False
    try:
        parse_suite(suite)
    except SuiteError:
        return False
    return True


def _interleave(mazes: list[Maze]) -> list[Maze]:
    """Generated mazes listed family by family -> one of each family in turn (family order kept)."""
    by_family: dict[str, list[Maze]] = {}
    for m in mazes:
        by_family.setdefault(m.family, []).append(m)
    columns = list(by_family.values())
    return [col[i] for i in range(max(len(c) for c in columns)) for col in columns if i < len(col)]


def episode_seed(seed: int, index: int) -> int:
    """Noise seed of episode ``index`` of a list made with ``seed`` (31 bits, as MazeSim's samplers draw)."""
    return int(np.random.SeedSequence([seed, index, 1]).generate_state(1)[0] & 0x7FFF_FFFF)


def make_episodes(suite: str, count: int, seed: int = 0) -> list[EpisodeSpec]:
    """``count`` episodes of maze suite ``suite`` (a suite name, a maze file or a folder); deterministic.

    See the module docstring for how maze, start, goal and seed of each episode are chosen.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise EpisodeListError(f"episode count must be an integer >= 0, got {count!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise EpisodeListError(f"episode-list seed must be an integer >= 0, got {seed!r}")
    if count == 0:
        return []
    if Path(suite).suffix in (".yaml", ".yml"):  # a Nav2 map: start and goal drawn per episode
        from robonav.sim.nav2map import nav2_mazes

        return [EpisodeSpec(m, episode_seed(int(seed), k)) for k, m in enumerate(nav2_mazes(suite, count, seed))]
    generated = _is_generated(suite)
    mazes = suite_mazes(suite)
    if generated:
        mazes = _interleave(mazes)
    episodes = []
    for k in range(count):
        maze = mazes[k % len(mazes)]
        if generated:
            rng = np.random.default_rng(np.random.SeedSequence([int(seed), k, 0]))
            start, goal = sample_start_goal(maze, rng)
            maze = maze.with_start_goal(start, goal)
        episodes.append(EpisodeSpec(maze, episode_seed(int(seed), k)))
    return episodes


def save_episodes(path: str | os.PathLike[str], episodes: list[EpisodeSpec],
                  conditions: Sequence[str] = ("nominal",)) -> None:
    """Write ``episodes`` (run under the named ``conditions``) as an episode-list file (JSON lines, see the
    module docstring), atomically."""
    lines = [json.dumps({"format": FORMAT, "episodes": len(episodes), "conditions": list(conditions)})]
    for k, ep in enumerate(episodes):
        m = ep.maze
        lines.append(json.dumps({"index": k, "name": m.name, "family": m.family, "maze_hash": m.hash(),
                                 "start": list(m.start), "goal": list(m.goal), "seed": int(ep.seed),
                                 "maze": m.to_text()}))
    write_text_atomic(Path(path), "\n".join(lines) + "\n")


def _refuse(path: Path, line: int, cause: str) -> EpisodeListError:
    return EpisodeListError(f"{path}, line {line}: {cause}")


def _episode(path: Path, number: int, k: int, row: object) -> EpisodeSpec:
    """Check one episode line (1-based ``number``, expected index ``k``) and build its EpisodeSpec."""
    redo = "; the file was edited or corrupted: make it again with make_episodes and save_episodes"
    if not isinstance(row, dict) or sorted(row) != sorted(_KEYS):
        found = sorted(row) if isinstance(row, dict) else type(row).__name__
        raise _refuse(path, number, f"expected an episode object with keys {sorted(_KEYS)}, found {found}{redo}")
    if row["index"] != k:
        raise _refuse(path, number, f"episode index {row['index']!r}, expected {k} (episodes in order){redo}")
    try:
        maze = parse_maze(row["maze"], source=f"{path}, line {number} (maze text)")
    except (MazeError, TypeError, AttributeError) as e:
        raise _refuse(path, number, f"the maze text does not parse ({e}){redo}") from e
    if maze.hash() != row["maze_hash"]:
        raise _refuse(path, number, f"maze hash {row['maze_hash']!r} does not match the maze text, whose hash is "
                                    f"{maze.hash()!r}{redo}")
    for key, want in (("start", maze.start), ("goal", maze.goal)):
        if row[key] != list(want):
            raise _refuse(path, number, f"{key} {row[key]!r} differs from the maze text's {list(want)}{redo}")
    for key, want_text in (("name", maze.name), ("family", maze.family)):
        if row[key] != want_text:
            raise _refuse(path, number, f"{key} {row[key]!r} differs from the maze text's {want_text!r}{redo}")
    seed = row["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise _refuse(path, number, f"seed must be an integer >= 0, found {seed!r}{redo}")
    return EpisodeSpec(maze, seed)


def load_episodes(path: str | os.PathLike[str]) -> list[EpisodeSpec]:
    """Read an episode-list file written by `save_episodes`, checking every maze against its hash."""
    return _load(Path(path))[0]


def list_conditions(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """The condition names an episode-list file was made for (``("nominal",)`` for a file without them)."""
    return _load(Path(path))[1]


def _load(p: Path) -> tuple[list[EpisodeSpec], tuple[str, ...]]:
    """(episodes, condition names) of an episode-list file, every line checked."""
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise EpisodeListError(f"{p}: cannot read the episode-list file ({e.strerror or e}); check the path") from e
    numbered = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    rows, numbers = [], []
    for number, line in numbered:
        numbers.append(number)
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise _refuse(p, number, f"not JSON ({e.msg}); an episode-list file holds one JSON object a line") from e
    if not rows or not isinstance(rows[0], dict) or rows[0].get("format") != FORMAT:
        found = rows[0].get("format") if rows and isinstance(rows[0], dict) else None
        raise _refuse(p, 1, f"expected the header {{\"format\": \"{FORMAT}\", \"episodes\": N}}, found format "
                            f"{found!r}: not an episode-list file, or one from another robonav version")
    want = rows[0].get("episodes")
    if want != len(rows) - 1:
        raise _refuse(p, 1, f"the header announces {want!r} episodes, the file holds {len(rows) - 1}: it was cut "
                            "short or appended to; make it again with make_episodes and save_episodes")
    conditions = rows[0].get("conditions", ["nominal"])
    if not (isinstance(conditions, list) and conditions and all(isinstance(c, str) for c in conditions)):
        raise _refuse(p, 1, f"the header's conditions must be a non-empty list of condition names, found "
                            f"{conditions!r}; make the file again with save_episodes")
    return [_episode(p, numbers[k + 1], k, row) for k, row in enumerate(rows[1:])], tuple(conditions)
