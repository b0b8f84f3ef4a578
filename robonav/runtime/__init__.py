"""robonav.runtime: what runs on the robot. Inference backends with one lifecycle, and the model sidecar.

Floor 2 (DESIGN.md): imports numpy, numba, pyyaml and robonav.sensors/control only; an engine (onnxruntime,
TensorRT) is imported when a backend opens, never at import time. Modules, one role each:

- ``sidecar``       `ModelSidecar`, `read_sidecar`, `write_sidecar`: what a runtime knows about a model file,
                    and the checks that refuse a mismatched one (`ModelRefusedError` and its subclasses)
- ``backend``       `Backend`: open / reset / step(obs) -> action / close, context manager, input checks
- ``onnx_backend``  `OnnxBackend` (ONNX Runtime, one robot) and `OnnxPolicy` (N simulated robots, for eval)

Names are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ModelSidecar": "sidecar", "TensorSpec": "sidecar", "read_sidecar": "sidecar", "write_sidecar": "sidecar",
    "sidecar_path": "sidecar", "weights_path": "sidecar", "ModelRefusedError": "sidecar", "SidecarError": "sidecar",
    "ModelHashError": "sidecar", "ModelIOError": "sidecar", "ModelMetadataError": "sidecar",
    "Backend": "backend", "BackendError": "backend", "BackendStateError": "backend", "InputError": "backend",
    "OnnxBackend": "onnx_backend", "OnnxPolicy": "onnx_backend",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'robonav.runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"robonav.runtime.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
