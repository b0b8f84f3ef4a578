"""robonav.runtime: what runs on the robot. Inference backends with one lifecycle, and the model sidecar.

Floor 2 (DESIGN.md): imports numpy, numba, pyyaml and robonav.sensors/control only; an engine (onnxruntime,
TensorRT) is imported when a backend opens, never at import time. Modules, one role each:

- ``sidecar``       `ModelSidecar`, `read_sidecar`, `write_sidecar`: what a runtime knows about a model file,
                    and the checks that refuse a mismatched one (`ModelRefusedError` and its subclasses)
- ``backend``       `Backend`: open / reset / step(obs) -> action / close, context manager, input checks
- ``onnx_backend``  `OnnxBackend` (ONNX Runtime, one robot) and `OnnxPolicy` (N simulated robots, for eval)
- ``numba_backend`` `NumbaBackend`: the exported ``.npz`` weights through one Numba kernel (``numba_kernels``,
                    with its NumPy reference); torch- and onnx-free
- ``torch_backend`` `TorchBackend`: CPU, or CUDA with two captured graphs (state ping-pong)
- ``trt_backend``   `TrtBackend`: a TensorRT engine, device state, CUDA graphs (``cuda``: ctypes libcudart)
- ``backends``      `open_backend(kind, model)`: the four by name; ``loop``, ``driver``, ``telemetry``, ``run``,
                    ``selftest``: the fixed-step control loop and what drives it
- ``wire``          the robot wire (UDP datagrams, DESIGN.md): layouts, encode, decode; ``wire_rx``: the receive
                    state (chunk reassembly, sequence checks); ``udp_driver``: `UdpDriver`, the loop's robot over it
- ``wirelog``       wire recordings; ``replay``: `replay(log)` reruns one through the loop, commands bit for bit
- ``ros2``          `Ros2Bridge`: LaserScan, Odometry and a goal pose in, Twist out (rclpy only inside `run_node`)

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
    "NumbaBackend": "numba_backend", "WeightsError": "numba_backend", "load_weights": "numba_backend",
    "TorchBackend": "torch_backend",
    "TrtBackend": "trt_backend", "CudaGraphStep": "trt_backend", "EngineMismatchError": "trt_backend",
    "TrtUnavailableError": "trt_backend",
    "open_backend": "backends", "BackendUnavailableError": "backends",
    "ControlLoop": "loop", "LoopConfig": "loop", "Driver": "driver", "ReplayDriver": "driver",
    "UdpDriver": "udp_driver", "Receiver": "wire_rx", "WireRecorder": "wirelog", "read_log": "wirelog",
    "replay": "replay", "Ros2Bridge": "ros2", "run_node": "ros2",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'robonav.runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"robonav.runtime.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
