"""Import directions of docs/design.md: `import robonav` is light; the on-robot floors pull nothing heavy."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "pybullet", "gymnasium", "onnx", "onnxruntime", "matplotlib", "rclpy", "ray")


@pytest.mark.parametrize("module, allowed", [
    ("robonav", ()),
    ("robonav.sensors", ()),
    ("robonav.control", ()),
    ("robonav.settings", ()),
    ("robonav.cli", ()),
    # the on-robot path: numpy, numba, pyyaml and its engine only (opened, never imported, at import time)
    ("robonav.runtime.run", ()),
    ("robonav.runtime.wire.udp_driver", ()),
    ("robonav.runtime.wire.replay", ()),
    ("robonav.runtime.ros2", ()),
    ("robonav.runtime.backends.numba_backend", ()),
    ("robonav.runtime.selftest", ()),
])
def test_light_imports(module, allowed):
    code = (f"import sys, {module}; heavy = [m for m in {HEAVY!r} if m in sys.modules and m not in {allowed!r}];"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"{module} imported {out.stdout.strip()}"


@pytest.mark.parametrize("module", [
    "robonav.train", "robonav.train.trainer", "robonav.train.collector", "robonav.train.config",
    "robonav.eval.runner", "robonav.eval.distributed", "robonav.cli",
])
def test_ray_is_imported_only_by_the_ray_modules(module):
    """ray is the optional [dist] extra: only robonav.train.distributed imports it at import time, and
    robonav.eval.distributed only inside the function that runs on Ray (docs/design.md "Dependencies per use")."""
    code = f"import sys, {module}; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False", f"{module} imported ray"


def test_sim_registers_the_env_on_import():
    code = "import gymnasium as gym, robonav.sim; print('robonav/Maze-v0' in gym.registry)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "True", out.stderr
