"""The robonav command, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _robonav(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "robonav.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def test_sim_renders_png_and_gif_and_prints_json(tmp_path):
    png, gif = tmp_path / "ep.png", tmp_path / "ep.gif"
    out = _robonav("sim", "--maze", "perfect:4x4", "--seed", "1", "--render", str(png), "--gif", str(gif),
                   "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["success"] is True and 0.5 < result["spl"] <= 1.0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert gif.read_bytes()[:6] in (b"GIF89a", b"GIF87a")


def test_sim_with_a_maze_file_and_override(tmp_path):
    maze = tmp_path / "m.txt"
    maze.write_text("#######\n#S....#\n#.###.#\n#....G#\n#######\n")
    out = _robonav("sim", "--maze", str(maze), "--set", "substeps=2", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1])["success"] is True


def test_sim_takes_every_generator_family_office_included():
    from robonav.cli._common import _maze_arg

    assert _maze_arg("office:9x9") == {"families": ["office"], "width": [9, 9], "height": [9, 9]}
    out = _robonav("sim", "--maze", "office:9x9", "--policy", "stop", "--steps", "3", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["maze"].startswith("office-9x9-") and result["steps"] == 3


@pytest.mark.parametrize("override, message", [
    ("sim.substepz=2", "unknown key(s) ['substepz']"),
    ("substeps=two", "substeps: expected an integer"),
])
def test_bad_settings_are_refused_with_the_reason(override, message):
    out = _robonav("sim", "--set", override)
    assert out.returncode == 2
    assert message in out.stderr


def test_bad_maze_file_is_refused_naming_file_and_line(tmp_path):
    maze = tmp_path / "bad.txt"
    maze.write_text("#####\n#S.G#\n###\n")
    out = _robonav("sim", "--maze", str(maze))
    assert out.returncode == 2
    assert "bad.txt" in out.stderr and "line 3" in out.stderr


def test_average_writes_a_checkpoint_eval_takes_and_refuses_mixed_runs(tmp_path):
    import torch

    from robonav.eval.policies import checkpoint_path
    from robonav.policy.checkpoint import load_checkpoint
    from robonav.policy.q_network import QNetwork

    shipped = load_checkpoint(checkpoint_path("default-q"))
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    torch.save({"format": "robonav.checkpoint/1", "model": shipped["model"], "optimizer": None,
                "meta": json.dumps(shipped["meta"])}, a)
    moved = {k: (v + 1 if v.is_floating_point() and not k.startswith("normalizer") else v)
             for k, v in shipped["model"].items()}
    torch.save({"format": "robonav.checkpoint/1", "model": moved, "optimizer": None,
                "meta": json.dumps(shipped["meta"])}, b)
    out = _robonav("average", str(a), str(b), "--out", str(tmp_path / "avg.pt"), "--json")
    assert out.returncode == 0, out.stderr
    avg = load_checkpoint(json.loads(out.stdout.splitlines()[-1])["out"])["model"]
    name = next(k for k in avg if k.endswith("weight") and not k.startswith("normalizer"))
    torch.testing.assert_close(avg[name], shipped["model"][name] + 0.5)
    net = QNetwork(shipped["meta"]["obs_dim"])  # the averaged weights load into the network they came from
    assert net.load_state_dict(avg, strict=False).unexpected_keys == []
    other = load_checkpoint(checkpoint_path("default"))  # PPO's: another run, another network
    torch.save({"format": "robonav.checkpoint/1", "model": other["model"], "optimizer": None,
                "meta": json.dumps(other["meta"])}, tmp_path / "ppo.pt")
    bad = _robonav("average", str(a), str(tmp_path / "ppo.pt"), "--out", str(tmp_path / "x.pt"))
    assert bad.returncode == 2 and "ppo.pt: its algo" in bad.stderr and "one run only" in bad.stderr, bad.stderr


def test_backend_choices_are_the_runtime_registry():
    from robonav.cli._common import BACKEND_CHOICES
    from robonav.runtime.backends.registry import BACKENDS

    assert BACKEND_CHOICES == tuple(BACKENDS)
