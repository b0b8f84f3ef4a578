"""Progress bars of the long verbs: a tqdm bar on stderr when stderr is a terminal (a real pty here), none with
--json or when stderr is a pipe; the --json line is unchanged."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EVAL = ["eval", "--policy", "classical", "--mazes", "test", "--episodes", "2", "--envs", "2"]


def run_piped(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "robonav.cli", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})


def run_with_tty_stderr(*argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, what the terminal on stderr showed)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "robonav.cli", *argv], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=slave, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    out, _ = proc.communicate(timeout=600)
    os.close(master)
    return proc.returncode, out, seen.decode(errors="replace")


@pytest.mark.slow
def test_eval_bar_on_a_terminal_and_none_with_json_or_a_pipe():
    pytest.importorskip("pybullet")
    pytest.importorskip("tqdm")
    rc, out, tty = run_with_tty_stderr(*EVAL)
    assert rc == 0 and "2/2" in tty and "episodes/s" in tty and "100%" in tty
    rc, out, tty = run_with_tty_stderr(*EVAL, "--json")
    assert rc == 0 and "2/2" not in tty and json.loads(out.strip().splitlines()[-1])["episodes"] == 2
    piped = subprocess.run([sys.executable, "-m", "robonav.cli", *EVAL], cwd=ROOT, capture_output=True, text=True,
                           timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert piped.returncode == 0 and "2/2" not in piped.stderr


def one_json_line(out: str) -> dict:
    """stdout of a --json run: exactly one line, one JSON object."""
    assert out.endswith("\n") and out.count("\n") == 1, out
    return json.loads(out)


@pytest.mark.slow
def test_export_and_quantize_bars_per_stage_and_the_same_json_line(tmp_path):
    pytest.importorskip("pybullet")
    pytest.importorskip("tqdm")
    pytest.importorskip("onnxruntime")
    onnx = str(tmp_path / "p.onnx")
    export = ["export", "--out", onnx, "--parity-steps", "30", "--parity-mazes", "val-3x3", "--episodes", "2",
              "--mazes", "val-3x3", "--envs", "2"]
    rc, out, tty = run_with_tty_stderr(*export)
    assert rc == 0 and "parity recording steps" in tty and "30/30" in tty, tty
    assert "closed loop torch" in tty and "closed loop onnx" in tty and "2/2" in tty and "100%" in tty
    assert "parity_passed" in out and not out.lstrip().startswith("{")
    rc, out, tty = run_with_tty_stderr(*export, "--json")
    assert rc == 0 and "closed loop" not in tty and "30/30" not in tty
    piped = run_piped(*export, "--json")  # stderr a pipe: the same bytes on stdout
    assert piped.returncode == 0 and "closed loop" not in piped.stderr and piped.stdout == out
    assert one_json_line(out)["closed_loop_episodes"] == 2

    quantize = ["quantize", "--onnx", onnx, "--precision", "int8", "--calib-episodes", "2", "--calib-mazes",
                "val-3x3", "--calib-samples", "64", "--episodes", "2", "--mazes", "val-3x3", "--envs", "2"]
    rc, out, tty = run_with_tty_stderr(*quantize)
    assert rc == 0 and "calibration episodes" in tty and "judge fp32" in tty and "judge int8" in tty, tty
    assert "2/2" in tty and "paired episodes" in out
    rc, out, tty = run_with_tty_stderr(*quantize, "--json")
    assert rc == 0 and "judge" not in tty and "calibration episodes" not in tty
    result = one_json_line(out)
    assert result["episodes"] == 2 and result["precision"] == "int8"


@pytest.mark.slow
def test_hil_bar_counts_episodes_and_writes_its_settings(tmp_path):
    pytest.importorskip("pybullet")
    pytest.importorskip("tqdm")
    from robonav.hil.runner import HilSettings
    from robonav.runtime.run import RunSettings
    from robonav.settings import load_settings

    hil = ["hil", "--episodes", "2", "--set", "hil.suite=val-3x3", "--set", "hil.clock_factor=8"]
    rc, out, tty = run_with_tty_stderr(*hil, "--set", "hil.record=true", "--out", str(tmp_path / "a"))
    assert rc == 0 and "2/2" in tty and "100%" in tty, tty
    saved = load_settings(HilSettings, tmp_path / "a" / "settings.yaml", section="hil")
    assert saved == HilSettings(episodes=2, suite="val-3x3", clock_factor=8.0, out=str(tmp_path / "a"), record=True)
    # the runtime (robonav run, recording) wrote its own beside the recording
    run = load_settings(RunSettings, tmp_path / "a" / "wire.rnavlog.settings.yaml", section="run")
    assert run.record == str(tmp_path / "a" / "wire.rnavlog") and run.driver == "udp" and run.clock_factor == 8.0
    rc, out, tty = run_with_tty_stderr(*hil, "--out", str(tmp_path / "b"), "--json")
    assert rc == 0 and "2/2" not in tty and one_json_line(out)["episodes"] == 2


@pytest.mark.slow
def test_eval_render_folder_holds_the_settings_it_ran_under(tmp_path, capsys):
    pytest.importorskip("pybullet")
    pytest.importorskip("matplotlib")
    from robonav.cli import main
    from robonav.eval.policies import resolve_policy
    from robonav.settings import load_settings
    from robonav.sim.config import SimConfig

    folder = tmp_path / "render"
    assert main(["eval", "--policy", "classical", "--mazes", "val-3x3", "--episodes", "1", "--envs", "1",
                 "--render", str(folder), "--render-count", "1", "--json"]) == 0
    one_json_line(capsys.readouterr().out)
    assert (folder / "episode-000.png").is_file()
    assert load_settings(SimConfig, folder / "settings.yaml", section="sim") == resolve_policy("classical").sim_config
