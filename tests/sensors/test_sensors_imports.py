"""robonav.sensors is floor 1 (numpy and numba only) and its kernels work wherever numba can or cannot cache."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "pybullet", "gymnasium", "onnx", "onnxruntime", "tensorrt", "matplotlib")  # numba itself loads yaml


def run(code: str, env_extra: dict[str, str], pythonpath: list[Path]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(env_extra, PYTHONPATH=os.pathsep.join(str(p) for p in pythonpath))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=pythonpath[0],
                          timeout=240)
    assert done.returncode == 0, done.stderr
    return done


def copy_package(tmp_path: Path) -> Path:
    """robonav/__init__.py, robonav/errors.py (floor 0) and robonav/sensors/*.py copied under tmp_path/pkg (no
    __pycache__)."""
    pkg = tmp_path / "pkg"
    (pkg / "robonav" / "sensors").mkdir(parents=True)
    shutil.copy(ROOT / "robonav" / "__init__.py", pkg / "robonav")
    shutil.copy(ROOT / "robonav" / "errors.py", pkg / "robonav")
    for source in (ROOT / "robonav" / "sensors").glob("*.py"):
        shutil.copy(source, pkg / "robonav" / "sensors")
    return pkg


def make_read_only(tree: Path) -> None:
    for path in [tree, *tree.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def test_import_pulls_in_only_numpy_and_numba():
    probe = "import json, sys\nimport robonav.sensors\nprint(json.dumps(sorted(sys.modules)))"
    modules = json.loads(run(probe, {}, [ROOT]).stdout.strip().splitlines()[-1])
    assert sorted(m for m in modules if m.split(".")[0] in HEAVY) == []
    ours = [m for m in modules if m.split(".")[0] == "robonav"]
    assert all(m in ("robonav", "robonav.errors") or m.startswith("robonav.sensors") for m in ours), ours
    assert "numba" in modules


USE = """
import numpy as np
from robonav.sensors import Preprocessor, ScanSpec, SensorFrame
from robonav.sensors.preprocessor import step_kernel
pre = Preprocessor()
pre.warmup()
obs = pre(SensorFrame(np.full(360, 2.0, np.float32), ScanSpec.evenly_spaced(360), np.zeros(3), np.ones(2)), (0, 0))
print(len(step_kernel.stats.cache_hits), round(float(obs[0]), 4))
"""


@pytest.mark.slow
def test_read_only_package_caches_in_numba_cache_dir(tmp_path):
    pkg = copy_package(tmp_path)
    make_read_only(pkg)
    cache = tmp_path / "cache"
    first = run(USE, {"NUMBA_CACHE_DIR": str(cache)}, [pkg])
    assert first.stdout.split() == ["0", "0.5714"]  # compiled: no cache hit; 2 m / 3.5 m
    assert list(cache.rglob("preprocessor.step_kernel-*.nbi"))
    assert not list(pkg.rglob("*.nbi")) and not list(pkg.rglob("*.nbc"))  # nothing written into the package
    second = run(USE, {"NUMBA_CACHE_DIR": str(cache)}, [pkg])
    assert second.stdout.split() == ["1", "0.5714"]  # loaded from NUMBA_CACHE_DIR


def test_no_writable_cache_anywhere_still_works_and_warns(tmp_path):
    code = "from robonav.sensors.odometry import clip_unit\nprint(clip_unit(3.0), clip_unit(float('nan')))"
    done = run(code, {"NUMBA_CACHE_LOCATOR_CLASSES": "numba_nowhere.NowhereLocator"}, [ROOT, Path(__file__).parent])
    assert done.stdout.split() == ["1.0", "0.0"]
    assert "numba found no writable cache directory" in done.stderr and "Set NUMBA_CACHE_DIR" in done.stderr


HITS = """
import math, numpy as np
from robonav.sensors.memory import mark_hits
n = 64
occ, ticks = np.zeros(n * n + 32 * 32 + 8 * 8, np.int8), np.zeros(n * n + 32 * 32 + 8 * 8, np.uint32)
marks = np.zeros(n * n + 2 * (32 * 32 + 8 * 8), np.uint32)
directions = np.array([[1.0], [0.0]])
mark_hits(np.array([1.0], np.float32), directions, 0.05, 3.5, 0, 0, 3.5, 4.0, 4.0, 1.0, 0.0, 0.0, 0.0, 0.125, occ,
          ticks, marks, n, 2, 4, 17, -40, 70, 1, 0, False)
print(int((occ[:n * n] != 0).sum()))
"""


def test_a_change_in_a_called_module_recompiles_the_cached_caller(tmp_path):
    pkg = copy_package(tmp_path)
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    assert run(HITS, env, [pkg]).stdout.split() == ["1"]  # one RANGE beam: one hit, cached now
    scan_py = pkg / "robonav" / "sensors" / "scan.py"
    source = scan_py.read_text()
    assert source.count("    return RANGE\n") == 1
    scan_py.write_text(source.replace("    return RANGE\n", "    return INVALID\n"))  # memory.py is unchanged
    assert run(HITS, env, [pkg]).stdout.split() == ["0"]  # not the stale cached mark_hits
