"""Suites and splits: disjoint seeds, disjoint mazes, determinism, name parsing, file suites, errors."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from robonav.data import maze_dir
from robonav.sim.generate import FAMILIES, generate_maze
from robonav.sim.suites import (
    DEFAULT_COUNT,
    SPLITS,
    SuiteError,
    SuiteSpec,
    parse_suite,
    split_seed,
    suite_mazes,
)


def test_split_seeds_are_disjoint_ranges() -> None:
    assert SPLITS == {"train": 0, "val": 1_000_000, "test": 2_000_000}
    assert split_seed("train", 0) == 0 and split_seed("val", 5) == 1_000_005
    assert split_seed("test", 999_999) == 2_999_999
    ranges = sorted((split_seed(s, 0), split_seed(s, 999_999)) for s in SPLITS)
    assert all(hi < next_lo for (_, hi), (next_lo, _) in itertools.pairwise(ranges))


@pytest.mark.parametrize(("split", "index", "pattern"), [
    ("dev", 0, r"unknown split 'dev'; expected one of train, val, test"),
    ("train", 1_000_000, r"split index must be an integer in \[0, 1_000_000\), got 1000000: seeds past"),
    ("val", -1, r"got -1"),
])
def test_split_seed_errors(split: str, index: int, pattern: str) -> None:
    with pytest.raises(SuiteError, match=pattern):
        split_seed(split, index)


def test_test_suite_is_every_family_7x7_twenty_each_in_order() -> None:
    mazes = suite_mazes("test")
    assert len(mazes) == DEFAULT_COUNT * len(FAMILIES) == 120
    assert [m.family for m in mazes] == [f for f in FAMILIES for _ in range(DEFAULT_COUNT)]
    assert {(m.rows, m.cols) for m in mazes} == {(15, 15)}
    assert mazes[0].name == "perfect-7x7-s2000000" and mazes[-1].name == "deadends-7x7-s2000019"
    assert len({m.hash() for m in mazes}) == 120


def test_same_name_same_mazes_and_members_match_their_family_suite() -> None:
    a = [m.hash() for m in suite_mazes("val-9x9", 3)]
    assert a == [m.hash() for m in suite_mazes("val-9x9", 3)]
    assert [m.hash() for m in suite_mazes("val-9x9-rooms", 3)] == a[9:12]  # rooms is the 4th family
    assert suite_mazes("test-11x11-halls", 1)[0] == generate_maze("halls", 11, seed=split_seed("test", 0))


def test_splits_hold_different_7x7_mazes() -> None:
    hashes = {split: {m.hash() for m in suite_mazes(split, 17)} for split in SPLITS}  # 102 per split
    assert all(len(h) == 17 * len(FAMILIES) for h in hashes.values())
    assert not hashes["train"] & hashes["val"]
    assert not hashes["train"] & hashes["test"]
    assert not hashes["val"] & hashes["test"]


def test_suite_names_parse() -> None:
    assert parse_suite("test") == SuiteSpec("test", 7, 7, FAMILIES)
    assert parse_suite("train-5x5") == SuiteSpec("train", 5, 5, FAMILIES)
    assert parse_suite("val-11x9-braided") == SuiteSpec("val", 11, 9, ("braided",))
    assert parse_suite("test-wilson") == SuiteSpec("test", 7, 7, ("wilson",))
    mazes = suite_mazes("train-5x3-perfect", 2)
    assert [(m.rows, m.cols, m.name) for m in mazes] == [(7, 11, "perfect-5x3-s0"), (7, 11, "perfect-5x3-s1")]
    assert suite_mazes("test", 0) == []
    assert parse_suite("test-c0.8") == SuiteSpec("test", 7, 7, FAMILIES, 0.8)
    assert parse_suite("val-9x9-rooms-c1.25") == SuiteSpec("val", 9, 9, ("rooms",), 1.25)


def test_a_cell_suffix_gives_the_same_grids_on_other_cells() -> None:
    plain, narrow = suite_mazes("val-5x5-wilson", 3), suite_mazes("val-5x5-wilson-c0.8", 3)
    assert [m.cell for m in narrow] == [0.8] * 3
    for p, n in zip(plain, narrow):
        assert (n.walls == p.walls).all() and (n.start, n.goal) == (p.start, p.goal)
        assert n.hash() != p.hash()  # a different world: results must not be cached across cells


@pytest.mark.parametrize(("name", "why"), [
    ("dev", "split 'dev' does not exist"),
    ("test-9x9-spirals", "family 'spirals' does not exist"),
    ("val-2x9", "size 2x9 is out of range"),
    ("test-c0.3", "cell 0.3 m is out of range 0.5..2 m"),
    ("test-c", "family 'c' does not exist"),
    ("test-30x30", "size 30x30 is out of range"),
    ("Test 7x7", "it is not an existing path and does not match the name pattern"),
    ("no/such/folder", "it is not an existing path and does not match the name pattern"),
])
def test_unknown_suites_list_the_valid_patterns(name: str, why: str) -> None:
    with pytest.raises(SuiteError) as err:
        suite_mazes(name)
    message = str(err.value)
    assert message.startswith(f"unknown maze suite {name!r}: {why}. "
                              "Valid suites: <split>[-<W>x<H>][-<family>]")
    assert "hand" in message and "a path to a maze file" in message and "perfect, wilson" in message


def test_hand_suite_is_the_shipped_files() -> None:
    hand = suite_mazes("hand")
    files = sorted(maze_dir().glob("*.txt"))
    assert [m.name for m in hand] == [p.stem for p in files]
    assert 6 <= len(hand) <= 8 and all(m.family == "file" for m in hand)
    assert suite_mazes("hand", 2) == hand[:2]
    with pytest.raises(SuiteError, match=rf"maze suite 'hand' holds {len(hand)} mazes, 99 were asked for"):
        suite_mazes("hand", 99)


def test_path_suites(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("#####\n#S.G#\n#####\n")
    (tmp_path / "a.txt").write_text("; name=first\n######\n#S..G#\n######\n")
    (tmp_path / "notes.md").write_text("not a maze")
    assert [m.name for m in suite_mazes(str(tmp_path))] == ["first", "b"]
    assert [m.name for m in suite_mazes(str(tmp_path / "b.txt"))] == ["b"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SuiteError, match=r"no \*\.txt maze files in it"):
        suite_mazes(str(empty))
    with pytest.raises(SuiteError, match=r"count must be an integer >= 0 or None, got -1"):
        suite_mazes("test", -1)


def test_the_office_suite_is_the_test_splits_9x9_office_floors() -> None:
    assert parse_suite("office") == SuiteSpec("test", 9, 9, ("office",))
    mazes = suite_mazes("office", 2)
    assert [m.name for m in mazes] == ["office-9x9-s2000000", "office-9x9-s2000001"]
    assert mazes[0] == generate_maze("office", 9, seed=2_000_000)
    assert parse_suite("val-11x11-office-c0.8") == SuiteSpec("val", 11, 11, ("office",), 0.8)


def test_suites_reach_15x15_and_corridors_from_0_7_to_1_3_m() -> None:
    big = suite_mazes("test-15x15-perfect", 1)[0]
    assert (big.rows, big.cols) == (31, 31)
    assert suite_mazes("test-perfect-c0.7", 1)[0].cell == 0.7
    assert suite_mazes("test-perfect-c1.3", 1)[0].cell == 1.3


def test_an_unknown_suite_lists_the_office_family_and_name() -> None:
    with pytest.raises(SuiteError, match=r"office  \(test-9x9-office\).*families: .*deadends, office"):
        parse_suite("test-offices")
