"""The few CUDA runtime calls the TensorRT backend needs, through NVIDIA's cuda-python (``cuda-bindings``).

Device and pinned host memory, asynchronous copies and memsets, a stream, CUDA graphs (capture, instantiate,
launch, inspect) and a pointer's memory type. The structs (cudaPointerAttributes, cudaMemcpy3DParms,
cudaDeviceProp) are cuda-bindings' own, sized by the CUDA headers it was built from, so no struct layout is
written here. ``cuda-bindings>=12.6,<13`` comes with ``pip install 'robonav[trt]'`` (the CUDA 12 runtime line that
JetPack 6 ships; cuda-bindings 12.x links the runtime statically and needs only the driver, libcuda).

Importing this module imports nothing of CUDA: `cudart()` imports cuda-bindings on first use and raises
`CudaUnavailableError` when it is absent; `CudaRuntime.require_device` raises it, with the runtime's own error,
when no GPU is usable (no device, no driver, a driver too old). Every other call that fails raises `CudaError`
naming the call and the CUDA error.

Every copy issued through this module is counted in `CudaRuntime.copies` by direction, split into direct calls
and calls recorded into a graph under capture; `graph_memcpy_nodes` reads back the copies a captured graph holds.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from robonav.errors import RobonavError, UserError

__all__ = ["D2D", "D2H", "H2D", "INSTALL", "CudaError", "CudaRuntime", "CudaUnavailableError", "MemcpyNode", "cudart"]

H2D, D2H, D2D = 1, 2, 3  # cudaMemcpyKind
_KIND_NAMES = {0: "HtoH", H2D: "HtoD", D2H: "DtoH", D2D: "DtoD", 4: "default"}
MEMORY_TYPES = {0: "pageable", 1: "pinned", 2: "device", 3: "managed"}  # cudaMemoryType
_NODE_TYPES = {0: "kernel", 1: "memcpy", 2: "memset", 3: "host", 4: "child graph", 5: "empty", 6: "event wait",
               7: "event record"}  # cudaGraphNodeType
INSTALL = "pip install 'robonav[trt]'"
"""What installs the CUDA binding (cuda-bindings>=12.6,<13)."""


class CudaError(RobonavError, RuntimeError):
    """A CUDA runtime call returned an error."""


class CudaUnavailableError(UserError, CudaError):
    """cuda-bindings is not installed, or no GPU is usable (no device, no driver, a driver too old)."""


@dataclass(frozen=True)
class MemcpyNode:
    """One copy held by a captured graph."""

    src: int
    """Source address."""
    dst: int
    """Destination address."""
    nbytes: int
    """Bytes copied (width x height x depth of the copy's extent)."""
    src_type: str
    """'pageable', 'pinned', 'device' or 'managed' (cudaPointerGetAttributes)."""
    dst_type: str
    """Likewise for the destination."""

    @property
    def direction(self) -> str:
        """'HtoD', 'DtoH', 'DtoD' or 'HtoH' (managed memory counts as device)."""
        src = "H" if self.src_type in ("pageable", "pinned") else "D"
        dst = "H" if self.dst_type in ("pageable", "pinned") else "D"
        return f"{src}to{dst}"


def _code(status: Any) -> int:
    """The integer of a cudaError_t (cuda-bindings returns its enum)."""
    return int(getattr(status, "value", status))


class CudaRuntime:
    """The runtime calls robonav uses, on cuda-bindings' ``cuda.bindings.runtime`` (get it with `cudart()`).

    Handles (streams, graphs, graph execs, nodes) and addresses are plain ints here.
    """

    def __init__(self, rt: Any, version: str) -> None:
        self.rt = rt
        self.path = f"cuda-bindings {version}"
        """Where the calls go, for messages."""
        self.copies: Counter[str] = Counter()
        """Copies issued through `memcpy_async`: 'HtoD' etc. for direct calls, 'captured HtoD' etc. for copies
        recorded into a graph."""
        self._capturing: set[int] = set()

    def _error(self, status: Any) -> str:
        """'cudaErrorX (its text)' for a cudaError_t."""
        name = getattr(status, "name", f"CUDA error {_code(status)}")
        _, text = self.rt.cudaGetErrorString(status)
        return f"{name} ({bytes(text).decode(errors='replace')})"

    def call(self, name: str, *args: Any) -> Any:
        """``cuda.bindings.runtime.<name>(*args)``, its status checked: the one value it returns (None without,
        a tuple for several); CudaError naming the call and the error otherwise."""
        status, *values = getattr(self.rt, name)(*args)
        if _code(status) != 0:
            raise CudaError(f"{name} failed with {self._error(status)} [{self.path}]")
        return None if not values else values[0] if len(values) == 1 else tuple(values)

    # devices
    def device_count(self) -> int:
        """Usable GPUs; 0 when the runtime reports none (no device, no driver, a driver too old)."""
        status, count = self.rt.cudaGetDeviceCount()
        return int(count) if _code(status) == 0 else 0

    def require_device(self, device: int | None = None) -> None:
        """Return if GPU ``device`` (None: any GPU) is usable, else raise CudaUnavailableError with the runtime's
        reason."""
        status, count = self.rt.cudaGetDeviceCount()
        if _code(status) == 0 and (0 if device is None else device) < int(count):
            return
        reason = (f"cudaGetDeviceCount returned {self._error(status)}" if _code(status) != 0
                  else f"{int(count)} CUDA device(s) visible")
        which = "GPU" if device is None else f"GPU {device}"
        raise CudaUnavailableError(f"no CUDA {which} is usable here ({reason}; {self.path}): run on the robot's GPU "
                                   "(JetPack 6), or use the ONNX Runtime or Numba backend")

    def set_device(self, device: int) -> None:
        self.call("cudaSetDevice", device)

    def current_device(self) -> int:
        return int(self.call("cudaGetDevice"))

    def compute_capability(self, device: int = 0) -> str:
        """'major.minor', e.g. '8.7' for a Jetson Orin."""
        attr = self.rt.cudaDeviceAttr
        major = self.call("cudaDeviceGetAttribute", attr.cudaDevAttrComputeCapabilityMajor, device)
        minor = self.call("cudaDeviceGetAttribute", attr.cudaDevAttrComputeCapabilityMinor, device)
        return f"{int(major)}.{int(minor)}"

    def device_name(self, device: int = 0) -> str:
        """The GPU's name (cudaDeviceProp.name)."""
        name = self.call("cudaGetDeviceProperties", device).name
        return bytes(name).split(b"\0", 1)[0].decode(errors="replace")

    def versions(self) -> tuple[int, int]:
        """(runtime, driver) versions as CUDA encodes them (12060 = 12.6)."""
        return int(self.call("cudaRuntimeGetVersion")), int(self.call("cudaDriverGetVersion"))

    # memory
    def malloc(self, nbytes: int) -> int:
        return int(self.call("cudaMalloc", nbytes))

    def free(self, ptr: int) -> None:
        self.call("cudaFree", ptr)

    def host_alloc(self, nbytes: int) -> int:
        """Pinned (page-locked) host memory: copies from and to it are truly asynchronous and capturable."""
        return int(self.call("cudaHostAlloc", nbytes, self.rt.cudaHostAllocDefault))

    def free_host(self, ptr: int) -> None:
        self.call("cudaFreeHost", ptr)

    def memory_type(self, ptr: int) -> str:
        """'pageable', 'pinned', 'device' or 'managed'."""
        kind = _code(self.call("cudaPointerGetAttributes", ptr).type)
        return MEMORY_TYPES.get(kind, f"type {kind}")

    def memcpy_async(self, dst: int, src: int, nbytes: int, kind: int, stream: int) -> None:
        self.call("cudaMemcpyAsync", dst, src, nbytes, self.rt.cudaMemcpyKind(kind), stream)
        self.copies[("captured " if stream in self._capturing else "") + _KIND_NAMES[kind]] += 1

    def memset_async(self, ptr: int, value: int, nbytes: int, stream: int) -> None:
        self.call("cudaMemsetAsync", ptr, value, nbytes, stream)

    # streams
    def stream_create(self) -> int:
        return int(self.call("cudaStreamCreateWithFlags", self.rt.cudaStreamNonBlocking))

    def stream_destroy(self, stream: int) -> None:
        self.call("cudaStreamDestroy", stream)

    def stream_synchronize(self, stream: int) -> None:
        self.call("cudaStreamSynchronize", stream)

    # graphs
    def begin_capture(self, stream: int) -> None:
        self.call("cudaStreamBeginCapture", stream, self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal)
        self._capturing.add(stream)

    def end_capture(self, stream: int) -> int:
        """The captured graph (cudaGraph_t)."""
        self._capturing.discard(stream)
        return int(self.call("cudaStreamEndCapture", stream))

    def graph_instantiate(self, graph: int) -> int:
        """An executable graph (cudaGraphExec_t)."""
        return int(self.call("cudaGraphInstantiateWithFlags", graph, 0))

    def graph_launch(self, graph_exec: int, stream: int) -> None:
        self.call("cudaGraphLaunch", graph_exec, stream)

    def graph_exec_destroy(self, graph_exec: int) -> None:
        self.call("cudaGraphExecDestroy", graph_exec)

    def graph_destroy(self, graph: int) -> None:
        self.call("cudaGraphDestroy", graph)

    def _graph_nodes(self, graph: int) -> list[tuple[int, int]]:
        """(node, cudaGraphNodeType) of every top-level node of a graph."""
        _, count = self.call("cudaGraphGetNodes", graph, 0)
        nodes, _ = self.call("cudaGraphGetNodes", graph, count) if count else ([], 0)
        return [(int(node), _code(self.call("cudaGraphNodeGetType", node))) for node in nodes]

    def graph_node_types(self, graph: int) -> Counter[str]:
        """How many nodes of each type a graph holds: 'kernel', 'memcpy', 'memset', ... ('type N' for others)."""
        return Counter(_NODE_TYPES.get(t, f"type {t}") for _, t in self._graph_nodes(graph))

    def graph_memcpy_nodes(self, graph: int) -> list[MemcpyNode]:
        """The copies a captured graph holds, with the memory type at each end."""
        result = []
        for node, t in self._graph_nodes(graph):
            if _NODE_TYPES.get(t) != "memcpy":
                continue
            p = self.call("cudaGraphMemcpyNodeGetParams", node)
            src, dst = int(p.srcPtr.ptr or 0), int(p.dstPtr.ptr or 0)
            nbytes = int(p.extent.width) * max(int(p.extent.height), 1) * max(int(p.extent.depth), 1)
            result.append(MemcpyNode(src, dst, nbytes, self.memory_type(src), self.memory_type(dst)))
        return result


_RUNTIME: CudaRuntime | None = None


def cudart() -> CudaRuntime:
    """The process's CUDA runtime calls, cuda-bindings imported on first use; CudaUnavailableError if absent."""
    global _RUNTIME
    if _RUNTIME is None:
        try:
            import cuda.bindings
            from cuda.bindings import runtime as rt
        except ImportError as e:
            raise CudaUnavailableError(
                f"the CUDA runtime binding cuda-bindings is not installed here ({e}): {INSTALL} "
                "(cuda-bindings>=12.6,<13, NVIDIA's cuda-python for the CUDA 12 runtime of JetPack 6)") from e
        _RUNTIME = CudaRuntime(rt, cuda.bindings.__version__)
    return _RUNTIME
