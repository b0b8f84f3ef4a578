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
