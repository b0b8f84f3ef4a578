"""`robonav eval` episode selection: --seeds concatenates lists, --episodes takes the head of an episode list."""

from __future__ import annotations

import json
import math

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


def test_conditions_and_new_fields_reach_the_json_and_the_list(tmp_path, capsys):
    path = str(tmp_path / "fov.jsonl")
    got = run(capsys, "--mazes", "val-3x3", "--episodes", "2", "--condition", "noisy,fov90", "--episode-list", path,
              "--set", "sim.robot.radius=0.2", "--set", "sim.preprocessor.laser_odometry=true")
    assert got["conditions"] == ["fov90", "noisy"] and got["settings"] == ["sim.robot.radius=0.2",
                                                                          "sim.preprocessor.laser_odometry=true"]
    for key in ("collision_episodes", "mover_contacts", "time_to_goal", "min_clearance", "min_clearance_movers"):
        assert key in got and key in got["per_family"]["perfect"]
    assert 0.0 <= got["collision_episodes"] <= 1.0 and got["mover_contacts"] == 0.0
    assert math.isnan(got["min_clearance_movers"])  # no movers under these conditions: no figure, not a zero
    assert 0.0 <= got["min_clearance"] <= 0.5 - 0.2  # a 1 m corridor leaves at most 0.3 m to a 0.2 m robot
    again = run(capsys, "--episode-list", path)  # the list brings its conditions along
    assert again["conditions"] == ["fov90", "noisy"] and again["episode_seeds"] == got["episode_seeds"]


def test_the_settings_that_made_an_episode_list_are_written_beside_it(tmp_path, capsys):
    from robonav.settings import load_settings
    from robonav.sim.config import SimConfig

    path = tmp_path / "fov.jsonl"
    run(capsys, "--mazes", "val-3x3", "--episodes", "2", "--condition", "fov90", "--episode-list", str(path),
        "--set", "sim.robot.radius=0.2")
    beside = tmp_path / "fov.jsonl.settings.yaml"
    saved = load_settings(SimConfig, beside, section="sim")
    assert saved.robot.radius == 0.2 and saved.scanner.fov_deg == 90.0  # --set and the condition, resolved
    assert saved.scanner.noise_std == SimConfig().scanner.noise_std  # the rest as eval ran it
    text = beside.read_text()
    run(capsys, "--episode-list", str(path), "--set", "sim.robot.radius=0.15")  # reading the list leaves it
    assert beside.read_text() == text and sorted(p.name for p in tmp_path.iterdir()) == [
        "fov.jsonl", "fov.jsonl.settings.yaml"]


def refused(capsys, *args: str) -> str:
    assert cli.main(["eval", "--policy", "expert", *args, "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


def test_bad_input_gets_one_line_naming_the_value_and_what_is_accepted(tmp_path, capsys):
    line = refused(capsys, "--mazes", "val-3x3", "--condition", "foggy")
    assert line.startswith("robonav eval: --condition: unknown condition 'foggy'; accepted: nominal, dynamic,")
    line = refused(capsys, "--mazes", "val-3x3", "--set", "sim.reward.time=1")
    assert "--set sim.reward.time: eval does not use it" in line
    line = refused(capsys, "--mazes", "no-such-suite")
    assert "unknown maze suite 'no-such-suite'" in line and "office" in line
    path = str(tmp_path / "nominal.jsonl")
    run(capsys, "--mazes", "val-3x3", "--episodes", "1", "--episode-list", path)
    line = refused(capsys, "--episode-list", path, "--condition", "fov90")
    assert line == (f"robonav eval: --condition fov90: the episode list {path} was made for nominal; leave "
                    "--condition out, or give another --episode-list")
