"""robonav: LSTM navigation policies from PyBullet mazes to robots.

`import robonav` is light on purpose: it imports no numpy-heavy stage, no torch, pybullet, gymnasium or onnx.
Each stage is its own subpackage (see docs/design.md): sensors, control, runtime, sim, policy, eval, train, deploy, hil.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
