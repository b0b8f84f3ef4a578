"""Lets the sensor tests import their scene helpers (sensor_scene.py): pytest runs with --import-mode=importlib,
which puts no test directory on sys.path."""

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
