"""A small ctypes binding to the CUDA runtime (libcudart), as Polygraphy has (polygraphy/cuda/cuda.py).

The TensorRT backend needs a handful of runtime calls: device and pinned host memory, asynchronous copies and
memsets, a stream, and CUDA graphs (capture, instantiate, launch, inspect). A ctypes binding keeps the robot's
venv free of another wheel (JetPack ships libcudart in /usr/local/cuda/lib64) and works with CUDA 11 to 13.
Importing this module loads nothing: `cudart()` loads the library on first use and raises `CudaUnavailableError`
naming libcudart and where it looked when it is absent.

Which libcudart: ``ROBONAV_CUDART`` (a path) if set; else one this process has already loaded (torch's, say, so
both share one runtime); else the loader's (LD_LIBRARY_PATH, ld.so cache), then /usr/local/cuda and the pip
``nvidia-*`` runtime wheels on sys.path.

Every copy issued through this binding is counted in `CudaRuntime.copies` by direction, split into direct calls
and calls recorded into a graph under capture; `graph_memcpy_nodes` reads back the copies a captured graph holds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import sys
from collections import Counter
from dataclasses import dataclass

from robonav.errors import RobonavError, UserError

__all__ = ["D2D", "D2H", "H2D", "CudaError", "CudaRuntime", "CudaUnavailableError", "MemcpyNode", "cudart"]

H2D, D2H, D2D = 1, 2, 3  # cudaMemcpyKind
_KIND_NAMES = {0: "HtoH", H2D: "HtoD", D2H: "DtoH", D2D: "DtoD", 4: "default"}
_CAPTURE_THREAD_LOCAL = 1  # cudaStreamCaptureModeThreadLocal
_STREAM_NON_BLOCKING = 1
_NODE_MEMCPY = 1  # cudaGraphNodeTypeMemcpy
_ATTR_CC_MAJOR, _ATTR_CC_MINOR = 75, 76  # cudaDevAttrComputeCapabilityMajor / Minor
MEMORY_TYPES = {0: "pageable", 1: "pinned", 2: "device", 3: "managed"}  # cudaMemoryType
_NAMES = ("libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0")


class CudaError(RobonavError, RuntimeError):
    """A CUDA runtime call returned an error."""


class CudaUnavailableError(UserError, CudaError):
    """No CUDA runtime library (libcudart) could be loaded, or no GPU is visible."""


class _Pos(ctypes.Structure):
    _fields_ = [("x", ctypes.c_size_t), ("y", ctypes.c_size_t), ("z", ctypes.c_size_t)]


class _PitchedPtr(ctypes.Structure):
    _fields_ = [("ptr", ctypes.c_void_p), ("pitch", ctypes.c_size_t), ("xsize", ctypes.c_size_t),
                ("ysize", ctypes.c_size_t)]


class _Memcpy3DParms(ctypes.Structure):
    _fields_ = [("srcArray", ctypes.c_void_p), ("srcPos", _Pos), ("srcPtr", _PitchedPtr), ("dstArray", ctypes.c_void_p),
                ("dstPos", _Pos), ("dstPtr", _PitchedPtr), ("extent", _Pos), ("kind", ctypes.c_int)]


class _PointerAttributes(ctypes.Structure):
    # CUDA 13 appended `long reserved[8]` (88 bytes; 24 before) and writes all of it: without the field, the call
    # overwrote 64 bytes past the struct and crashed the process on a CUDA 13 H100. Older runtimes write less.
    _fields_ = [("type", ctypes.c_int), ("device", ctypes.c_int), ("devicePointer", ctypes.c_void_p),
                ("hostPointer", ctypes.c_void_p), ("reserved", ctypes.c_long * 8)]


@dataclass(frozen=True)
class MemcpyNode:
    """One copy held by a captured graph."""

    src: int
    """Source address."""
    dst: int
    """Destination address."""
    nbytes: int
    """Bytes copied (1-D copies: the extent's width)."""
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


_p, _sz, _i, _u, _ull = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_uint, ctypes.c_ulonglong
_PP, _IP = ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int)
_SIGNATURES: dict[str, list[object]] = {
    "cudaGetErrorString": [_i], "cudaGetDeviceCount": [_IP], "cudaSetDevice": [_i], "cudaGetDevice": [_IP],
    "cudaDeviceGetAttribute": [_IP, _i, _i], "cudaRuntimeGetVersion": [_IP], "cudaDriverGetVersion": [_IP],
    "cudaMalloc": [_PP, _sz], "cudaFree": [_p], "cudaHostAlloc": [_PP, _sz, _u], "cudaFreeHost": [_p],
    "cudaMemcpyAsync": [_p, _p, _sz, _i, _p], "cudaMemsetAsync": [_p, _i, _sz, _p],
    "cudaStreamCreateWithFlags": [_PP, _u], "cudaStreamDestroy": [_p], "cudaStreamSynchronize": [_p],
    "cudaStreamBeginCapture": [_p, _i], "cudaStreamEndCapture": [_p, _PP],
    "cudaGraphInstantiateWithFlags": [_PP, _p, _ull], "cudaGraphLaunch": [_p, _p], "cudaGraphExecDestroy": [_p],
    "cudaGraphDestroy": [_p], "cudaGraphGetNodes": [_p, _PP, ctypes.POINTER(_sz)],
    "cudaGraphNodeGetType": [_p, _IP], "cudaGraphMemcpyNodeGetParams": [_p, ctypes.POINTER(_Memcpy3DParms)],
    "cudaPointerGetAttributes": [ctypes.POINTER(_PointerAttributes), _p],
}


def _candidates() -> list[str]:
    """Paths or names to try, in order (see the module docstring)."""
    found: list[str] = []
    if os.environ.get("ROBONAV_CUDART"):
        return [os.environ["ROBONAV_CUDART"]]
    try:
        with open("/proc/self/maps") as maps:
            found += sorted({line.split()[-1] for line in maps if "libcudart.so" in line and "/" in line})
    except OSError:
        pass
    name = ctypes.util.find_library("cudart")
    found += ([name] if name else []) + list(_NAMES)
    folders = ["/usr/local/cuda/lib64", *glob.glob("/usr/local/cuda/targets/*/lib")]
    for entry in sys.path:
        folders += glob.glob(os.path.join(entry, "nvidia", "*", "lib"))
    for folder in folders:
        found += sorted(glob.glob(os.path.join(folder, "libcudart.so*")), reverse=True)
    return list(dict.fromkeys(found))


class CudaRuntime:
    """The runtime calls robonav uses, on one loaded libcudart (get it with `cudart()`)."""

    def __init__(self, lib: ctypes.CDLL, path: str) -> None:
        self.lib, self.path = lib, path
        for name, args in _SIGNATURES.items():
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = args, ctypes.c_int
        lib.cudaGetErrorString.restype = ctypes.c_char_p
        self._props = getattr(lib, "cudaGetDeviceProperties_v2", None) or lib.cudaGetDeviceProperties
        self._props.argtypes, self._props.restype = [ctypes.c_void_p, ctypes.c_int], ctypes.c_int
        self.copies: Counter[str] = Counter()
        """Copies issued through `memcpy_async`: 'HtoD' etc. for direct calls, 'captured HtoD' etc. for copies
        recorded into a graph."""
        self._capturing: set[int] = set()

    def check(self, status: int, call: str) -> None:
        if status != 0:
            text = self.lib.cudaGetErrorString(status).decode(errors="replace")
            raise CudaError(f"{call} failed with CUDA error {status} ({text}) [libcudart: {self.path}]")

    def _out(self, call: str, *args: object) -> int:
        ptr = ctypes.c_void_p()
        self.check(getattr(self.lib, call)(ctypes.byref(ptr), *args), call)
        return int(ptr.value or 0)

    # devices
    def device_count(self) -> int:
        n = ctypes.c_int(0)
        status = self.lib.cudaGetDeviceCount(ctypes.byref(n))
        return n.value if status == 0 else 0  # cudaErrorNoDevice / InsufficientDriver: none usable

    def set_device(self, device: int) -> None:
        self.check(self.lib.cudaSetDevice(device), "cudaSetDevice")

    def current_device(self) -> int:
        n = ctypes.c_int(0)
        self.check(self.lib.cudaGetDevice(ctypes.byref(n)), "cudaGetDevice")
        return n.value

    def compute_capability(self, device: int = 0) -> str:
        """'major.minor', e.g. '8.7' for a Jetson Orin."""
        values = []
        for attr in (_ATTR_CC_MAJOR, _ATTR_CC_MINOR):
            v = ctypes.c_int(0)
            self.check(self.lib.cudaDeviceGetAttribute(ctypes.byref(v), attr, device), "cudaDeviceGetAttribute")
            values.append(v.value)
        return f"{values[0]}.{values[1]}"

    def device_name(self, device: int = 0) -> str:
        """The GPU's name (the first field of cudaDeviceProp, read from a buffer larger than any version's)."""
        buf = ctypes.create_string_buffer(16384)
        self.check(self._props(buf, device), "cudaGetDeviceProperties")
        return buf.raw[:256].split(b"\0", 1)[0].decode(errors="replace")

    def versions(self) -> tuple[int, int]:
        """(runtime, driver) versions as CUDA encodes them (12060 = 12.6)."""
        r, d = ctypes.c_int(0), ctypes.c_int(0)
        self.check(self.lib.cudaRuntimeGetVersion(ctypes.byref(r)), "cudaRuntimeGetVersion")
        self.check(self.lib.cudaDriverGetVersion(ctypes.byref(d)), "cudaDriverGetVersion")
        return r.value, d.value

    # memory
    def malloc(self, nbytes: int) -> int:
        return self._out("cudaMalloc", ctypes.c_size_t(nbytes))

    def free(self, ptr: int) -> None:
        self.check(self.lib.cudaFree(ctypes.c_void_p(ptr)), "cudaFree")

    def host_alloc(self, nbytes: int) -> int:
        """Pinned (page-locked) host memory: copies from and to it are truly asynchronous and capturable."""
        return self._out("cudaHostAlloc", ctypes.c_size_t(nbytes), 0)

    def free_host(self, ptr: int) -> None:
        self.check(self.lib.cudaFreeHost(ctypes.c_void_p(ptr)), "cudaFreeHost")

    def memory_type(self, ptr: int) -> str:
        """'pageable', 'pinned', 'device' or 'managed'."""
        attrs = _PointerAttributes()
        self.check(self.lib.cudaPointerGetAttributes(ctypes.byref(attrs), ctypes.c_void_p(ptr)),
                   "cudaPointerGetAttributes")
        return MEMORY_TYPES.get(attrs.type, f"type {attrs.type}")

    def memcpy_async(self, dst: int, src: int, nbytes: int, kind: int, stream: int) -> None:
        self.check(self.lib.cudaMemcpyAsync(ctypes.c_void_p(dst), ctypes.c_void_p(src), ctypes.c_size_t(nbytes),
                                            kind, ctypes.c_void_p(stream)), "cudaMemcpyAsync")
        self.copies[("captured " if stream in self._capturing else "") + _KIND_NAMES[kind]] += 1

    def memset_async(self, ptr: int, value: int, nbytes: int, stream: int) -> None:
        self.check(self.lib.cudaMemsetAsync(ctypes.c_void_p(ptr), value, ctypes.c_size_t(nbytes),
                                            ctypes.c_void_p(stream)), "cudaMemsetAsync")

    # streams
    def stream_create(self) -> int:
        return self._out("cudaStreamCreateWithFlags", _STREAM_NON_BLOCKING)

    def stream_destroy(self, stream: int) -> None:
        self.check(self.lib.cudaStreamDestroy(ctypes.c_void_p(stream)), "cudaStreamDestroy")

    def stream_synchronize(self, stream: int) -> None:
        self.check(self.lib.cudaStreamSynchronize(ctypes.c_void_p(stream)), "cudaStreamSynchronize")

    # graphs
    def begin_capture(self, stream: int) -> None:
        self.check(self.lib.cudaStreamBeginCapture(ctypes.c_void_p(stream), _CAPTURE_THREAD_LOCAL),
                   "cudaStreamBeginCapture")
        self._capturing.add(stream)

    def end_capture(self, stream: int) -> int:
        """The captured graph (cudaGraph_t)."""
        self._capturing.discard(stream)
        ptr = ctypes.c_void_p()
        self.check(self.lib.cudaStreamEndCapture(ctypes.c_void_p(stream), ctypes.byref(ptr)), "cudaStreamEndCapture")
        return int(ptr.value or 0)

    def graph_instantiate(self, graph: int) -> int:
        """An executable graph (cudaGraphExec_t)."""
        return self._out("cudaGraphInstantiateWithFlags", ctypes.c_void_p(graph), ctypes.c_ulonglong(0))

    def graph_launch(self, graph_exec: int, stream: int) -> None:
        self.check(self.lib.cudaGraphLaunch(ctypes.c_void_p(graph_exec), ctypes.c_void_p(stream)), "cudaGraphLaunch")

    def graph_exec_destroy(self, graph_exec: int) -> None:
        self.check(self.lib.cudaGraphExecDestroy(ctypes.c_void_p(graph_exec)), "cudaGraphExecDestroy")

    def graph_destroy(self, graph: int) -> None:
        self.check(self.lib.cudaGraphDestroy(ctypes.c_void_p(graph)), "cudaGraphDestroy")

    def _graph_nodes(self, graph: int) -> list[tuple[int, int]]:
        """(node, cudaGraphNodeType) of every top-level node of a graph."""
        count = ctypes.c_size_t(0)
        self.check(self.lib.cudaGraphGetNodes(ctypes.c_void_p(graph), None, ctypes.byref(count)), "cudaGraphGetNodes")
        nodes = (ctypes.c_void_p * count.value)()
        self.check(self.lib.cudaGraphGetNodes(ctypes.c_void_p(graph), nodes, ctypes.byref(count)), "cudaGraphGetNodes")
        out = []
        for node in nodes:
            t = ctypes.c_int(0)
            self.check(self.lib.cudaGraphNodeGetType(ctypes.c_void_p(node), ctypes.byref(t)), "cudaGraphNodeGetType")
            out.append((int(node or 0), t.value))
        return out

    def graph_node_types(self, graph: int) -> Counter[str]:
        """How many nodes of each type a graph holds: 'kernel', 'memcpy', 'memset', ... ('type N' for others)."""
        names = {0: "kernel", 1: "memcpy", 2: "memset", 3: "host", 4: "child graph", 5: "empty", 6: "event wait",
                 7: "event record"}
        return Counter(names.get(t, f"type {t}") for _, t in self._graph_nodes(graph))

    def graph_memcpy_nodes(self, graph: int) -> list[MemcpyNode]:
        """The copies a captured graph holds, with the memory type at each end."""
        result = []
        for node, t in self._graph_nodes(graph):
            if t != _NODE_MEMCPY:
                continue
            p = _Memcpy3DParms()
            self.check(self.lib.cudaGraphMemcpyNodeGetParams(ctypes.c_void_p(node), ctypes.byref(p)),
                       "cudaGraphMemcpyNodeGetParams")
            src, dst = int(p.srcPtr.ptr or 0), int(p.dstPtr.ptr or 0)
            nbytes = p.extent.x * max(p.extent.y, 1) * max(p.extent.z, 1)
            result.append(MemcpyNode(src, dst, nbytes, self.memory_type(src), self.memory_type(dst)))
        return result


_RUNTIME: CudaRuntime | None = None


def cudart() -> CudaRuntime:
    """The process's CUDA runtime binding, loaded on first use; CudaUnavailableError if libcudart is absent."""
    global _RUNTIME
    if _RUNTIME is None:
        tried = _candidates()
        errors = []
        for name in tried:
            try:
                _RUNTIME = CudaRuntime(ctypes.CDLL(name), name)
                break
            except (OSError, AttributeError) as e:
                errors.append(f"{name}: {e}")
        else:
            raise CudaUnavailableError(
                "the CUDA runtime library libcudart could not be loaded (tried "
                f"{', '.join(tried[:8])}{', ...' if len(tried) > 8 else ''}; {errors[0] if errors else ''}): "
                "install the CUDA runtime (JetPack puts it in /usr/local/cuda/lib64) or set ROBONAV_CUDART to the "
                "path of libcudart.so")
    return _RUNTIME
