"""The TensorRT backend: an engine checked against its sidecar, state on the device, each step one CUDA graph.

Two halves:

- `TrtBackend` loads ``<engine>`` after checking its sidecar ``<engine>.json`` (robonav build writes both): the
  engine's hash, then the facts an engine is bound to, ``extra["engine"]``: the TensorRT version (an engine runs
  only on the version that built it), the GPU name and compute capability (engines are not portable between
  devices), and its I/O tensors; any mismatch is refused with the reason (`EngineMismatchError`). It then reads
  the engine's I/O back from TensorRT and checks it against the step-model contract.
- `CudaGraphStep`, the CUDA half, knows nothing of TensorRT: anything with ``enqueue(stream, addresses)`` (a
  `StepEngine`) runs in it. It owns pinned host buffers for obs and action, device buffers for obs, action and two
  state sets (h, c), one stream, and two captured CUDA graphs. Graph p holds: copy obs pinned -> device, the
  engine reading state set p and writing set 1 - p and the action, copy action device -> pinned. A step writes
  obs into the pinned buffer, launches graph ``parity``, synchronises the stream and reads the action: only obs
  goes to the device and only the action comes back; h and c never leave it. Two graphs because a captured graph
  replays the addresses it was captured with: calling ``set_tensor_address`` after capture changes nothing the
  graph does (robonav.runtime.backends.torch_backend says more). ``reset()`` zeroes both state sets on the device
  (cudaMemsetAsync). TensorRT asks for one enqueue before capture (it finishes lazy setup then); the step does it.

`ShiftRegisterEngine` is a stand-in engine made only of device-to-device copies, with an exact NumPy twin: it
runs the CUDA half (buffers, graphs, ping-pong, reset) on a GPU without TensorRT (benchmarks/gpu_check.py, the
gpu tests).

tensorrt and cuda-bindings (robonav.runtime.backends.cuda) are imported when a backend opens, never at import
time. Code and tests detect TensorRT by ``hasattr(tensorrt, "Builder")``: tensorrt-stubs makes ``import tensorrt``
succeed without it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from robonav.errors import UserError
from robonav.model.sidecar import (
    ModelRefusedError,
    ModelSidecar,
    SidecarError,
    TensorSpec,
    check_file_hash,
    check_io,
    read_sidecar,
    sidecar_path,
)
from robonav.runtime.backends.base import Backend, BackendError
from robonav.runtime.backends.cuda import D2D, D2H, H2D, CudaRuntime, cudart

if TYPE_CHECKING:
    import tensorrt as trt

__all__ = ["ENGINE_KEY", "CudaGraphStep", "EngineMismatchError", "ShiftRegisterEngine", "StepEngine", "TrtBackend",
           "TrtUnavailableError", "check_engine", "engine_io", "require_tensorrt", "shift_register_reference"]

ENGINE_KEY = "engine"
"""Key in the sidecar's ``extra`` of the facts robonav build records about an engine."""
TRT_DTYPES = {"FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8", "INT32": "int32",
              "INT64": "int64", "BOOL": "bool", "UINT8": "uint8"}


class TrtUnavailableError(UserError, BackendError):
    """TensorRT is not installed here (``import tensorrt`` finds no Builder)."""


class EngineMismatchError(ModelRefusedError):
    """An engine built for another TensorRT version or GPU, or with other I/O than its sidecar records."""


def require_tensorrt(what: str = "the TensorRT backend") -> None:
    """Return if TensorRT is importable, else raise TrtUnavailableError saying it is absent."""
    try:
        import tensorrt
    except ImportError:
        tensorrt = None  # type: ignore[assignment]
    if tensorrt is None or not hasattr(tensorrt, "Builder"):
        raise TrtUnavailableError(
            f"{what} needs TensorRT, which is not installed here (`import tensorrt` finds no Builder); on a Jetson "
            "it comes with JetPack (use a venv with --system-site-packages); elsewhere use the ONNX Runtime or Numba "
            "backend")


def check_engine(path: str | os.PathLike[str], sidecar: ModelSidecar, host: dict[str, str]) -> dict[str, Any]:
    """The engine facts of ``sidecar`` after checking them against ``host`` ({'tensorrt', 'gpu',
    'compute_capability'} of this machine); raises SidecarError or EngineMismatchError with the reason."""
    facts = sidecar.extra.get(ENGINE_KEY)
    if not isinstance(facts, dict) or not {"tensorrt", "gpu", "compute_capability", "io"} <= set(facts):
        raise SidecarError(f"{path}: the sidecar has no extra.{ENGINE_KEY} facts (TensorRT version, GPU, I/O): it "
                           "does not describe an engine; build one on this device with `robonav build`")
    for key, what in (("tensorrt", "TensorRT version"), ("compute_capability", "compute capability"),
                      ("gpu", "GPU")):
        if str(facts[key]) != str(host[key]):
            raise EngineMismatchError(
                f"{path}: built for {what} {facts[key]!r}, but this machine has {host[key]!r}; an engine runs only "
                "on the TensorRT version and GPU model that built it: rebuild it here with `robonav build`")
    return facts


def engine_io(engine: trt.ICudaEngine) -> list[dict[str, Any]]:
    """Name, dtype, shape and mode ('input'/'output') of every I/O tensor of a deserialised ICudaEngine."""
    out = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        dtype = engine.get_tensor_dtype(name)
        mode = engine.get_tensor_mode(name)
        shape = engine.get_tensor_shape(name)
        out.append({"name": name, "dtype": TRT_DTYPES.get(dtype.name, dtype.name),
                    "shape": [int(shape[k]) for k in range(len(shape))], "mode": mode.name.lower()})
    return out


def _check_io(path: str | os.PathLike[str], sidecar: ModelSidecar, io: list[dict[str, Any]], facts: dict[str, Any]
              ) -> None:
    """The engine's I/O against the step-model contract and against what build recorded."""
    for mode, expected in (("input", sidecar.inputs), ("output", sidecar.outputs)):
        found = [TensorSpec(t["name"], t["dtype"], tuple(t["shape"])) for t in io if t["mode"] == mode]
        check_io(path, expected, found, mode)
    if io != facts["io"]:
        raise EngineMismatchError(f"{path}: the engine's I/O {io} differs from its sidecar's {facts['io']}: the "
                                  "engine file and sidecar come from different builds; rebuild with `robonav build`")


class StepEngine(Protocol):
    """What `CudaGraphStep` runs: enqueue one step on ``stream`` with these device addresses."""

    def enqueue(self, stream: int, addresses: dict[str, int]) -> None:
        """Enqueue obs, h_in, c_in -> action, h_out, c_out (keys: the step-model tensor names)."""


class _TrtStep:
    """A TensorRT execution context as a StepEngine."""

    def __init__(self, context: trt.IExecutionContext) -> None:
        self.context = context

    def enqueue(self, stream: int, addresses: dict[str, int]) -> None:
        for name, ptr in addresses.items():
            if not self.context.set_tensor_address(name, ptr):
                raise BackendError(f"TensorRT refused the address of tensor {name!r}")
        if not self.context.execute_async_v3(stream):
            raise BackendError("TensorRT execute_async_v3 failed (see the TensorRT log above)")


class ShiftRegisterEngine:
    """A stand-in engine of device-to-device copies, exact and stateful, for checking the CUDA half on a GPU
    without TensorRT. With n = L * H and h, c flattened: h' = (obs[0, 0], h[0 : n-1]), c' = h,
    action = (h[n-1], c[n-1]): the action replays obs[0, 0] from n and 2n steps back, so a wrong state set, a
    swapped graph or a missed reset shows in the actions. Its NumPy twin is `shift_register_reference`."""

    def __init__(self, cuda: CudaRuntime, sidecar: ModelSidecar) -> None:
        self.cuda, self.n = cuda, sidecar.state_layers * sidecar.hidden
        if len(sidecar.action_limits) != 2:
            raise ValueError("the shift-register stand-in writes 2 actions")

    def enqueue(self, stream: int, addresses: dict[str, int]) -> None:
        a, n, copy = addresses, self.n, self.cuda.memcpy_async
        if n > 1:
            copy(a["h_out"] + 4, a["h_in"], 4 * (n - 1), D2D, stream)
        copy(a["h_out"], a["obs"], 4, D2D, stream)
        copy(a["c_out"], a["h_in"], 4 * n, D2D, stream)
        copy(a["action"], a["h_in"] + 4 * (n - 1), 4, D2D, stream)
        copy(a["action"] + 4, a["c_in"] + 4 * (n - 1), 4, D2D, stream)


def shift_register_reference(obs: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    """Actions [T, 2] of ShiftRegisterEngine over obs [T, D], state zeroed where ``starts`` [T] is True."""
    h, c = np.zeros(n, np.float32), np.zeros(n, np.float32)
    out = np.zeros((len(obs), 2), np.float32)
    for t in range(len(obs)):
        if starts[t]:
            h[:], c[:] = 0.0, 0.0
        out[t] = h[-1], c[-1]
        h, c = np.concatenate([np.asarray(obs[t], np.float32).reshape(-1)[:1], h[:-1]]), h.copy()
    return out


class CudaGraphStep:
    """The CUDA half of the TensorRT backend: buffers, stream, two graphs, ping-pong (see the module docstring).

    ``graphs=False`` runs the same copies and enqueue directly each step (for engines that cannot be captured).
    """

    def __init__(self, engine: StepEngine, sidecar: ModelSidecar, cuda: CudaRuntime | None = None,
                 graphs: bool = True) -> None:
        self.engine, self.sidecar, self.graphs = engine, sidecar, graphs
        self.cuda = cuda if cuda is not None else cudart()
        self.parity = 0
        self.stream = 0
        self.device: dict[str, int] = {}
        self.host: dict[str, int] = {}
        self.graph: list[int] = []  # the captured cudaGraph_t of each parity (kept for inspection)
        self.graph_exec: list[int] = []
        self.obs_np = np.zeros((1, sidecar.obs_dim), np.float32)
        self.action_np = np.zeros((1, len(sidecar.action_limits)), np.float32)
        self.state_bytes = 4 * sidecar.state_layers * sidecar.hidden

    def addresses(self, parity: int) -> dict[str, int]:
        """Device addresses of the step-model tensors for a step that reads state set ``parity``."""
        d = self.device
        return {"obs": d["obs"], "h_in": d[f"h{parity}"], "c_in": d[f"c{parity}"], "action": d["action"],
                "h_out": d[f"h{1 - parity}"], "c_out": d[f"c{1 - parity}"]}

    def open(self) -> CudaGraphStep:
        """Allocate, capture both graphs, zero the state; on failure release what was taken and re-raise."""
        self.cuda.require_device()
        try:
            return self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> CudaGraphStep:
        cuda = self.cuda
        self.stream = cuda.stream_create()
        for name, nbytes in (("obs", self.obs_np.nbytes), ("action", self.action_np.nbytes)):
            self.host[name] = cuda.host_alloc(nbytes)
            self.device[name] = cuda.malloc(nbytes)
        for name in ("h0", "c0", "h1", "c1"):
            self.device[name] = cuda.malloc(self.state_bytes)
        self.obs_np = _host_view(self.host["obs"], self.obs_np.shape)
        self.action_np = _host_view(self.host["action"], self.action_np.shape)
        self.obs_np[:] = 0.0
        self.reset()
        if self.graphs:
            for parity in (0, 1):
                self.engine.enqueue(self.stream, self.addresses(parity))  # TensorRT: one enqueue before capture
                cuda.stream_synchronize(self.stream)
                cuda.begin_capture(self.stream)
                try:
                    self._enqueue_step(parity)
                finally:
                    graph = cuda.end_capture(self.stream)
                self.graph.append(graph)
                self.graph_exec.append(cuda.graph_instantiate(graph))
        self.reset()
        return self

    def _enqueue_step(self, parity: int) -> None:
        cuda, s = self.cuda, self.stream
        cuda.memcpy_async(self.device["obs"], self.host["obs"], self.obs_np.nbytes, H2D, s)
        self.engine.enqueue(s, self.addresses(parity))
        cuda.memcpy_async(self.host["action"], self.device["action"], self.action_np.nbytes, D2H, s)

    def reset(self) -> None:
        """Zero both state sets on the device; the next step reads set 0."""
        for name in ("h0", "c0", "h1", "c1"):
            self.cuda.memset_async(self.device[name], 0, self.state_bytes, self.stream)
        self.cuda.stream_synchronize(self.stream)
        self.parity = 0

    def step(self, obs: np.ndarray) -> np.ndarray:
        """obs float32 [1, D] -> a copy of the action [A]."""
        self.obs_np[...] = obs
        if self.graph_exec:
            self.cuda.graph_launch(self.graph_exec[self.parity], self.stream)
        else:
            self._enqueue_step(self.parity)
        self.cuda.stream_synchronize(self.stream)
        self.parity ^= 1
        return self.action_np[0].copy()

    def close(self) -> None:
        cuda = self.cuda
        if self.stream:
            cuda.stream_synchronize(self.stream)
        for g in self.graph_exec:
            cuda.graph_exec_destroy(g)
        for g in self.graph:
            cuda.graph_destroy(g)
        for ptr in self.device.values():
            cuda.free(ptr)
        for ptr in self.host.values():
            cuda.free_host(ptr)
        if self.stream:
            cuda.stream_destroy(self.stream)
        self.graph, self.graph_exec, self.device, self.host, self.stream = [], [], {}, {}, 0
        self.obs_np = np.zeros_like(self.obs_np)
        self.action_np = np.zeros_like(self.action_np)

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of (h, c) [L, 1, H] read back from the device: for tests and debugging only."""
        out = []
        for name in (f"h{self.parity}", f"c{self.parity}"):
            buf = np.zeros(self.sidecar.state_shape, np.float32)
            address = buf.__array_interface__["data"][0]
            self.cuda.memcpy_async(address, self.device[name], self.state_bytes, D2H, self.stream)
            self.cuda.stream_synchronize(self.stream)
            out.append(buf)
        return out[0], out[1]


class _HostMemory:
    """Pinned host memory as NumPy sees it (the array interface; the array keeps this object as its base)."""

    def __init__(self, ptr: int, shape: tuple[int, ...]) -> None:
        self.__array_interface__ = {"data": (ptr, False), "shape": shape, "typestr": "<f4", "version": 3}


def _host_view(ptr: int, shape: tuple[int, ...]) -> np.ndarray:
    """A float32 NumPy array over pinned host memory at ``ptr`` (no copy)."""
    return np.asarray(_HostMemory(ptr, shape))


class TrtBackend(Backend):
    """A TensorRT engine for one robot: ``step(obs) -> action``, h and c on the device, CUDA graphs replayed.

    ``engine``: the .engine file; its sidecar ``<engine>.json`` beside it (both written by ``robonav build``).
    ``cuda_graph``: capture the step (default); False enqueues it directly every step.
    """

    def __init__(self, engine: str | os.PathLike[str], sidecar: ModelSidecar | None = None,
                 cuda_graph: bool = True, device: int = 0) -> None:
        self.path = Path(engine)
        super().__init__(sidecar if sidecar is not None else read_sidecar(self.path, check_hash=False))
        self.cuda_graph, self.device = cuda_graph, device
        self._trt: dict[str, Any] = {}
        self._cuda: CudaGraphStep | None = None

    def _open(self) -> None:
        require_tensorrt()
        import tensorrt as trt  # present (checked above); typed by tensorrt-stubs under mypy

        cuda = cudart()
        cuda.require_device(self.device)
        cuda.set_device(self.device)
        host = {"tensorrt": trt.__version__, "gpu": cuda.device_name(self.device),
                "compute_capability": cuda.compute_capability(self.device)}
        facts = check_engine(self.path, self.sidecar, host)
        check_file_hash(self.path, self.sidecar.model_sha256, "engine", sidecar_path(self.path))
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(self.path.read_bytes())
        if engine is None:
            raise EngineMismatchError(f"{self.path}: TensorRT {trt.__version__} could not deserialise it (see the "
                                      "log above); rebuild it on this device with `robonav build`")
        _check_io(self.path, self.sidecar, engine_io(engine), facts)
        context = engine.create_execution_context()
        self._trt = {"logger": logger, "runtime": runtime, "engine": engine, "context": context}
        self._cuda = CudaGraphStep(_TrtStep(context), self.sidecar, cuda, self.cuda_graph).open()

    def _reset(self) -> None:
        assert self._cuda is not None
        self._cuda.reset()

    def _step(self, obs: np.ndarray) -> np.ndarray:
        assert self._cuda is not None
        return self._cuda.step(obs)

    @property
    def state(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of (h, c) [L, 1, H] read back from the device: for tests and debugging only."""
        assert self._cuda is not None, "open the backend first"
        return self._cuda.state()

    def _close(self) -> None:
        if self._cuda is not None:
            self._cuda.close()
        self._cuda = None
        for key in ("context", "engine", "runtime", "logger"):  # TensorRT objects, released in this order
            self._trt.pop(key, None)
