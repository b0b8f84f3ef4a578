"""Episode lists: determinism, family balance, start/goal rules, the file round trip and refusal of tampering."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from robonav.eval.episodes import (
    EpisodeListError,
    episode_seed,
    list_conditions,
    load_episodes,
    make_episodes,
    save_episodes,
)
from robonav.sim.generate import FAMILIES
from robonav.sim.geodesic import cell_distances, geodesic_diameter
from robonav.sim.suites import suite_mazes


def key(episodes) -> list[tuple]:
    return [(e.maze.hash(), e.maze.name, e.maze.start, e.maze.goal, e.seed) for e in episodes]


def test_same_suite_count_and_seed_give_the_same_episodes() -> None:
    a = make_episodes("val-5x5", 14, seed=3)
    assert key(a) == key(make_episodes("val-5x5", 14, seed=3))
    # A longer list starts with the shorter one; another seed gives other starts, goals and noise seeds.
    assert key(make_episodes("val-5x5", 20, seed=3))[:14] == key(a)
    other = make_episodes("val-5x5", 14, seed=4)
    assert [e.maze.name for e in other] == [e.maze.name for e in a]
    assert key(other) != key(a)
    assert [e.seed for e in a] == [episode_seed(3, k) for k in range(14)]
    assert len({e.seed for e in a}) == 14


def test_generated_suites_interleave_families_and_redraw_start_and_goal() -> None:
    eps = make_episodes("val-5x5", 2 * len(FAMILIES) + 1, seed=0)
    assert [e.maze.family for e in eps[:len(FAMILIES)]] == list(FAMILIES)
    assert [e.maze.name for e in eps[:2]] == ["perfect-5x5-s1000000", "wilson-5x5-s1000000"]
    assert eps[len(FAMILIES)].maze.name == "perfect-5x5-s1000001"
    # 20 mazes per family by default: episode 120 is maze 0 again, with its own start, goal and seed.
    many = make_episodes("val-5x5", 20 * len(FAMILIES) + 1, seed=0)
    first, again = many[0], many[-1]
    assert again.maze.name == first.maze.name
    assert np.array_equal(again.maze.walls, first.maze.walls)
    assert (again.maze.start, again.maze.goal, again.seed) != (first.maze.start, first.maze.goal, first.seed)


def test_start_and_goal_are_at_least_half_the_diameter_apart() -> None:
    for e in make_episodes("test", 12, seed=1):
        m = e.maze
        assert cell_distances(m, m.start)[m.goal] >= 0.5 * geodesic_diameter(m) - 1e-9


def test_file_mazes_keep_their_start_and_goal(tmp_path: Path) -> None:
    hand = suite_mazes("hand")
    eps = make_episodes("hand", len(hand) + 2, seed=0)
    assert [e.maze for e in eps[:len(hand)]] == hand
    assert eps[len(hand)].maze == hand[0] and eps[len(hand)].seed != eps[0].seed
    (tmp_path / "one.txt").write_text("#####\n#S.G#\n#####\n")
    solo = make_episodes(str(tmp_path), 3)
    assert all(e.maze.start == (1, 1) and e.maze.goal == (1, 3) for e in solo)


def test_bad_requests_are_refused() -> None:
    assert make_episodes("test", 0) == []
    with pytest.raises(EpisodeListError, match="episode count must be an integer >= 0, got -1"):
        make_episodes("test", -1)
    with pytest.raises(EpisodeListError, match="seed must be an integer >= 0"):
        make_episodes("test", 2, seed=-5)


# ------------------------------------------------------------------------------------------- list files
@pytest.fixture()
def saved(tmp_path: Path) -> tuple[Path, list]:
    eps = make_episodes("val-5x5", 4, seed=2) + make_episodes("hand", 1)
    path = tmp_path / "episodes.jsonl"
    save_episodes(path, eps)
    return path, eps


def test_round_trip(saved) -> None:
    path, eps = saved
    back = load_episodes(path)
    assert [(e.maze, e.seed) for e in back] == [(e.maze, e.seed) for e in eps]
    lines = path.read_text().splitlines()
    assert json.loads(lines[0]) == {"format": "robonav.episodes/1", "episodes": 5, "conditions": ["nominal"]}
    row = json.loads(lines[1])
    assert row["maze_hash"] == eps[0].maze.hash() and row["start"] == list(eps[0].maze.start)


def rewrite(path: Path, line: int, edit) -> None:
    lines = path.read_text().splitlines()
    row = json.loads(lines[line - 1])
    edit(row)
    lines[line - 1] = json.dumps(row)
    path.write_text("\n".join(lines) + "\n")


def test_a_maze_edited_by_hand_is_refused(saved) -> None:
    path, _ = saved

    def open_a_wall(row: dict) -> None:
        text = row["maze"].splitlines()
        r = next(i for i, line in enumerate(text) if not line.startswith(";") and "#.#" in line)
        text[r] = text[r].replace("#.#", "...", 1)
        row["maze"] = "\n".join(text) + "\n"

    rewrite(path, 3, open_a_wall)
    with pytest.raises(EpisodeListError, match=r"episodes\.jsonl, line 3: maze hash '[0-9a-f]{16}' does not match the "
                                               r"maze text, whose hash is '[0-9a-f]{16}'; the file was edited"):
        load_episodes(path)


@pytest.mark.parametrize("edit, message", [
    (lambda row: row.update(maze_hash="0" * 16), "does not match the maze text"),
    (lambda row: row.update(goal=[0, 0]), r"goal \[0, 0\] differs from the maze text's"),
    (lambda row: row.update(index=7), "episode index 7, expected 1"),
    (lambda row: row.update(seed=-1), "seed must be an integer >= 0"),
    (lambda row: row.pop("seed"), "expected an episode object with keys"),
])
def test_edited_fields_are_refused(saved, edit, message) -> None:
    path, _ = saved
    rewrite(path, 3, edit)
    with pytest.raises(EpisodeListError, match=message):
        load_episodes(path)


def test_a_cut_or_foreign_file_is_refused(saved, tmp_path: Path) -> None:
    path, _ = saved
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(EpisodeListError, match="announces 5 episodes, the file holds 4: it was cut short"):
        load_episodes(path)
    other = tmp_path / "other.jsonl"
    other.write_text('{"format": "something/2"}\n')
    with pytest.raises(EpisodeListError, match="found format 'something/2': not an episode-list file"):
        load_episodes(other)
    other.write_text("not json\n")
    with pytest.raises(EpisodeListError, match="line 1: not JSON"):
        load_episodes(other)
    with pytest.raises(EpisodeListError, match="cannot read the episode-list file"):
        load_episodes(tmp_path / "missing.jsonl")


def test_a_list_carries_its_conditions(tmp_path: Path) -> None:
    eps = make_episodes("val-3x3", 2)
    path = tmp_path / "fov.jsonl"
    save_episodes(path, eps, ("fov90", "noisy"))
    assert list_conditions(path) == ("fov90", "noisy")
    assert [e.seed for e in load_episodes(path)] == [e.seed for e in eps]
    # A file written before lists carried conditions is a nominal list.
    lines = path.read_text().splitlines()
    lines[0] = json.dumps({"format": "robonav.episodes/1", "episodes": 2})
    path.write_text("\n".join(lines) + "\n")
    assert list_conditions(path) == ("nominal",)
    lines[0] = json.dumps({"format": "robonav.episodes/1", "episodes": 2, "conditions": "fov90"})
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(EpisodeListError, match=r"line 1: the header's conditions must be a non-empty list of "
                                               r"condition names, found 'fov90'"):
        list_conditions(path)
