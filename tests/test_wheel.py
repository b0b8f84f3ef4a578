"""The built wheel (not an editable install) installs into a fresh venv and runs from another directory."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(out), str(REPO)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (whl,) = out.glob("robonav-*.whl")
    return whl


def test_wheel_holds_the_package_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "robonav/data/launch/sim.yaml" in names
    assert any(n.startswith("robonav/data/mazes/") and n.endswith(".txt") for n in names)
    assert any(n.startswith("robonav/data/sim/") for n in names)
    assert not any(n.startswith("tests/") for n in names)


def test_wheel_installs_and_runs_outside_the_checkout(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # Dependencies come from this test's environment through a .pth line (no network, no editable robonav:
    # a plain directory line does not run the editable finder's .pth hooks).
    deps = [p for p in [*site.getsitepackages(), sysconfig.get_paths()["purelib"]] if Path(p).is_dir()]
    Path(purelib, "_deps.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n")
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", purelib,
                        str(wheel)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([str(py), "-c", "import robonav, robonav.data as d; print(robonav.__file__);"
                            "print(d.resource('launch', 'sim.yaml'))"],
                           capture_output=True, text=True, cwd=work, env=env, timeout=120)
    assert where.returncode == 0, where.stderr
    mod_path, launch_path = where.stdout.split()
    assert mod_path.startswith(purelib) and launch_path.startswith(purelib)
    maze = sorted(Path(purelib, "robonav", "data", "mazes").glob("*.txt"))[0]
    run = subprocess.run([str(py), "-m", "robonav.cli", "sim", "--launch", "sim", "--maze", str(maze),
                          "--steps", "20", "--render", "ep.png", "--json"],
                         capture_output=True, text=True, cwd=work, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.splitlines()[-1])
    assert result["steps"] == 20 and (work / "ep.png").exists()
