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
    out, _ = proc.communicate(timeout=300)
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
