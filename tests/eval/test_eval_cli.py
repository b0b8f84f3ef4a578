"""`robonav eval` episode selection: --seeds concatenates lists, --episodes takes the head of an episode list."""

from __future__ import annotations

import json

from robonav import cli
from robonav.eval.episodes import make_episodes


def run(capsys, *args: str) -> dict:
    assert cli.main(["eval", "--policy", "expert", *args, "--envs", "4", "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_seeds_run_one_list_per_seed_in_order(capsys):
    got = run(capsys, "--mazes", "val-3x3", "--episodes", "2", "--seeds", "3", "7")
    want = make_episodes("val-3x3", 2, 3) + make_episodes("val-3x3", 2, 7)
    assert got["episode_seeds"] == [e.seed for e in want] and got["episodes"] == 4
    assert got["seed"] == [3, 7]


def test_episodes_takes_the_first_n_of_an_existing_list(tmp_path, capsys):
    path = str(tmp_path / "list.jsonl")
    full = run(capsys, "--mazes", "val-3x3", "--episodes", "5", "--episode-list", path)
    head = run(capsys, "--episode-list", path, "--episodes", "2")
    assert head["episode_seeds"] == full["episode_seeds"][:2]
    again = run(capsys, "--episode-list", path)
    assert again["episode_seeds"] == full["episode_seeds"]
