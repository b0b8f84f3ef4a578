"""robonav.control is floor 1: it pulls in no heavy package and nothing else of robonav but floor 0 (errors)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "pybullet", "gymnasium", "onnx", "onnxruntime", "numba", "tensorrt", "yaml")

PROBE = """
import json, sys
import robonav.control
print(json.dumps(sorted(sys.modules)))
"""


def test_import_pulls_in_nothing_heavy_and_nothing_else_of_robonav():
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, cwd=root, timeout=60
    )
    assert done.returncode == 0, done.stderr
    modules = json.loads(done.stdout.strip().splitlines()[-1])
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert heavy == [], f"import robonav.control pulled in {heavy}"
    ours = sorted(m for m in modules if m.split(".")[0] == "robonav")
    assert all(m in ("robonav", "robonav.control", "robonav.errors") or m.startswith("robonav.control.")
               for m in ours), ours
