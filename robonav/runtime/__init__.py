"""robonav.runtime: what runs on the robot, in three rooms.

- ``backends/``  inference engines behind one lifecycle (ORT, Numba, PyTorch, TensorRT) and their registry
- ``wire/``      the robot wire: protocol, receiver, UDP driver, recording and replay
- the loop:      ``loop`` (`ControlLoop`), ``driver`` (what feeds it: sim, replay), ``ros2`` (the ROS 2 driver),
                 ``telemetry``, ``run`` (`robonav run`) and ``selftest``

It imports numpy, numba, pyyaml, robonav.model, robonav.sensors and robonav.control only; an engine (onnxruntime,
TensorRT, torch) is imported when a backend opens, never at import time. Names are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Backend": "backends.base", "BackendError": "backends.base", "BackendStateError": "backends.base",
    "InputError": "backends.base", "OnnxBackend": "backends.onnx_backend", "OnnxPolicy": "backends.onnx_backend",
    "NumbaBackend": "backends.numba_backend", "WeightsError": "backends.numba_backend",
    "load_weights": "backends.numba_backend", "TorchBackend": "backends.torch_backend",
    "TrtBackend": "backends.trt_backend", "CudaGraphStep": "backends.trt_backend",
    "EngineMismatchError": "backends.trt_backend", "TrtUnavailableError": "backends.trt_backend",
    "open_backend": "backends.registry", "BackendUnavailableError": "backends.registry",
    "ControlLoop": "loop", "LoopConfig": "loop", "Driver": "driver", "ReplayDriver": "driver",
    "UdpDriver": "wire", "Receiver": "wire", "WireRecorder": "wire", "read_log": "wire", "replay": "wire",
    "Ros2Bridge": "ros2", "run_node": "ros2", "Ros2Params": "ros2", "parse_ros_args": "ros2",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'robonav.runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"robonav.runtime.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
