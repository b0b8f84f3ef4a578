"""The TensorRT backend: engine sidecar checks (no TensorRT needed), its refusal without TensorRT, the lazy CUDA
calls through cuda-bindings (their refusal without a GPU: the real runtime's error code), and (marked gpu) the
CUDA half (pinned buffers, two graphs, ping-pong, reset) with a stand-in engine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from robonav.errors import UserError
from robonav.model.sidecar import SidecarError
from robonav.runtime.backends.cuda import CudaError, CudaUnavailableError, cudart
from robonav.runtime.backends.trt_backend import (
    ENGINE_KEY,
    CudaGraphStep,
    EngineMismatchError,
    ShiftRegisterEngine,
    TrtBackend,
    TrtUnavailableError,
    _check_io,
    _host_view,
    check_engine,
    shift_register_reference,
)

ROOT = Path(__file__).resolve().parents[3]


def _has_tensorrt() -> bool:
    try:
        import tensorrt
    except ImportError:
        return False
    return hasattr(tensorrt, "Builder")  # tensorrt-stubs alone makes the import succeed


def _gpu() -> object | None:
    try:
        cuda = cudart()
    except CudaUnavailableError:
        return None
    return cuda if cuda.device_count() > 0 else None


HOST = {"tensorrt": "10.3.0.30", "gpu": "Orin", "compute_capability": "8.7"}


def engine_sidecar(toys, **changes):
    side = toys.sidecar("toy.engine")
    io = [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape), "mode": mode}
          for mode, specs in (("input", side.inputs), ("output", side.outputs)) for t in specs]
    return side.with_extra(**{ENGINE_KEY: {**HOST, "io": io, **changes}})


def test_engine_facts_are_checked_against_this_machine(toys):
    sidecar = engine_sidecar(toys)
    assert check_engine("toy.engine", sidecar, HOST)["gpu"] == "Orin"
    with pytest.raises(SidecarError, match=r"toy.engine: the sidecar has no extra.engine facts .* `robonav build`"):
        check_engine("toy.engine", toys.sidecar("toy.engine"), HOST)
    cases = [({"tensorrt": "10.7.0.23"}, r"built for TensorRT version '10.3.0.30', but this machine has '10.7.0.23'"),
             ({"compute_capability": "8.6"}, r"built for compute capability '8.7', but this machine has '8.6'"),
             ({"gpu": "NVIDIA H100"}, r"built for GPU 'Orin', but this machine has 'NVIDIA H100'; an engine runs only "
                                      r"on the TensorRT version and GPU model that built it: rebuild it here")]
    for change, message in cases:
        with pytest.raises(EngineMismatchError, match=message):
            check_engine("toy.engine", sidecar, {**HOST, **change})


def test_engine_io_must_follow_the_contract_and_the_build_record(toys):
    sidecar = engine_sidecar(toys)
    facts = sidecar.extra[ENGINE_KEY]
    _check_io("toy.engine", sidecar, facts["io"], facts)
    half = [dict(t, dtype="float16") if t["name"] == "obs" else t for t in facts["io"]]
    with pytest.raises(ValueError, match=r"input 'obs' expected float32 \[1, 5\], actual float16 \[1, 5\]"):
        _check_io("toy.engine", sidecar, half, facts)
    with pytest.raises(EngineMismatchError, match=r"differs from its sidecar's"):
        _check_io("toy.engine", sidecar, facts["io"], {**facts, "io": facts["io"][::-1]})


def test_shift_register_reference_pinned_by_hand():
    """n = 2: the action is (h[1], c[1]) before the step; h' = (obs[0], h[0]), c' = h."""
    obs = np.array([[1.0, 9.0], [2.0, 9.0], [3.0, 9.0], [4.0, 9.0], [5.0, 9.0]], np.float32)
    starts = np.array([True, False, False, False, True])
    # t0: h (0, 0) c (0, 0) -> a (0, 0); t1: h (1, 0) -> a (0, 0); t2: h (2, 1) c (1, 0) -> a (1, 0);
    # t3: h (3, 2) c (2, 1) -> a (2, 1); t4: reset -> a (0, 0)
    np.testing.assert_array_equal(shift_register_reference(obs, starts, 2), [[0, 0], [0, 0], [1, 0], [2, 1], [0, 0]])


@pytest.mark.skipif(_has_tensorrt(), reason="checks the refusal on a machine without TensorRT")
def test_without_tensorrt_the_backend_says_so(tmp_path, toys):
    with pytest.raises(TrtUnavailableError, match=r"needs TensorRT, which is not installed here .* ONNX Runtime or "
                                                  r"Numba backend"):
        TrtBackend(tmp_path / "toy.engine", sidecar=engine_sidecar(toys)).open()


def test_importing_loads_neither_cuda_bindings_nor_tensorrt():
    code = ("import sys; import robonav.runtime.backends.trt_backend, robonav.runtime.backends.cuda; "
            "maps = open('/proc/self/maps').read(); "
            "print('cuda.bindings' in sys.modules, 'cuda.bindings.runtime' in sys.modules, 'libnvinfer' in maps, "
            "'tensorrt' in sys.modules, 'torch' in sys.modules)")
    # (cuda-bindings' .pth file imports the empty namespace package `cuda` at start-up; the bindings stay out)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "False", "False", "False"]


def test_no_ctypes_binding_to_cuda_remains():
    """CUDA is reached only through cuda-bindings: no module of robonav loads a CUDA library by hand."""
    offenders = []
    for path in sorted((ROOT / "robonav").rglob("*.py")):
        text = path.read_text()
        if "libcudart" in text or "import ctypes" in text or "CDLL(" in text:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_a_missing_cuda_bindings_is_named():
    code = ("import sys; sys.modules['cuda'] = None  # as if cuda-bindings were not installed\n"
            "from robonav.runtime.backends.cuda import cudart, CudaUnavailableError\n"
            "try:\n    cudart()\nexcept CudaUnavailableError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("the CUDA runtime binding cuda-bindings is not installed here (")
    assert "pip install 'robonav[trt]' (cuda-bindings>=12.6,<13" in out and len(out.strip().splitlines()) == 1


def test_the_cuda_bindings_structs_have_the_fields_read():
    """cudaPointerAttributes, cudaMemcpy3DParms and cudaDeviceProp come from cuda-bindings, sized by its CUDA
    headers (a hand-written struct once let CUDA 13 write past its end); the fields read must exist."""
    rt = cudart().rt
    attrs, params = rt.cudaPointerAttributes(), rt.cudaMemcpy3DParms()
    assert int(attrs.type) == 0 and int(params.srcPtr.ptr) == 0 and int(params.dstPtr.ptr) == 0
    assert (params.extent.width, params.extent.height, params.extent.depth) == (0, 0, 0)
    assert rt.cudaDeviceProp().name is not None
    assert [int(rt.cudaMemoryType(k)) for k in range(4)] == [0, 1, 2, 3]  # pageable, pinned (host), device, managed
    assert int(rt.cudaGraphNodeType.cudaGraphNodeTypeMemcpy) == 1
    assert [int(rt.cudaMemcpyKind(k)) for k in (1, 2, 3)] == [1, 2, 3]  # H2D, D2H, D2D as this module numbers them


def test_the_host_view_is_the_memory_at_the_address():
    backing = np.zeros(6, np.float32)
    view = _host_view(backing.__array_interface__["data"][0], (2, 3))
    view[1, 2] = 7.5
    backing[0] = -1.0
    assert backing[5] == 7.5 and view[0, 0] == -1.0 and view.shape == (2, 3) and view.dtype == np.float32


@pytest.mark.skipif(_gpu() is not None, reason="checks the refusal on a machine without a CUDA device")
def test_without_a_gpu_the_runtime_error_becomes_one_line(toys):
    cuda = cudart()
    with pytest.raises(CudaUnavailableError) as info:
        cuda.require_device()
    message = str(info.value)
    assert isinstance(info.value, UserError) and "\n" not in message
    assert message.startswith("no CUDA GPU is usable here (cudaGetDeviceCount returned cudaError")
    assert message.endswith("run on the robot's GPU (JetPack 6), or use the ONNX Runtime or Numba backend")
    with pytest.raises(CudaError, match=r"^cudaMalloc failed with cudaError\w+ \(.+\) \[cuda-bindings 12\."):
        cuda.malloc(16)
    sidecar = toys.sidecar("toy.engine")
    with pytest.raises(CudaUnavailableError, match=r"no CUDA GPU is usable here"):
        CudaGraphStep(ShiftRegisterEngine(cuda, sidecar), sidecar, cuda).open()


needs_gpu = pytest.mark.skipif(_gpu() is None, reason="no CUDA device (cuda-bindings' cudaGetDeviceCount finds none)")


def _episodes(rng, steps, d):
    obs = rng.normal(size=(steps, d)).astype(np.float32)
    starts = np.zeros(steps, bool)
    starts[[0, 17, 18, 60]] = True
    return obs, starts


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("graphs", [True, False])
def test_cuda_half_with_a_stand_in_engine_matches_its_twin(toys, graphs):
    cuda = _gpu()
    sidecar = toys.sidecar("toy.engine")
    obs, starts = _episodes(np.random.default_rng(0), 100, sidecar.obs_dim)
    step = CudaGraphStep(ShiftRegisterEngine(cuda, sidecar), sidecar, cuda, graphs=graphs).open()
    try:
        out = []
        for t in range(len(obs)):
            if starts[t]:
                step.reset()
            out.append(step.step(obs[t : t + 1]))
        np.testing.assert_array_equal(out, shift_register_reference(obs, starts, sidecar.hidden))
    finally:
        step.close()


@pytest.mark.gpu
@needs_gpu
def test_each_graph_moves_only_obs_in_and_action_out(toys):
    cuda = _gpu()
    sidecar = toys.sidecar("toy.engine")
    step = CudaGraphStep(ShiftRegisterEngine(cuda, sidecar), sidecar, cuda).open()
    try:
        before = dict(cuda.copies)
        for _ in range(10):
            step.step(np.ones((1, sidecar.obs_dim), np.float32))
        assert dict(cuda.copies) == before  # steps issue no copy of their own: the graphs hold them
        for graph in step.graph:
            host = [n for n in cuda.graph_memcpy_nodes(graph) if n.direction != "DtoD"]
            assert sorted((n.direction, n.nbytes) for n in host) == [("DtoH", 8), ("HtoD", 4 * sidecar.obs_dim)]
            assert {n.src for n in host if n.direction == "HtoD"} == {step.host["obs"]}
            assert {n.dst for n in host if n.direction == "DtoH"} == {step.host["action"]}
            assert all(n.src_type == "pinned" or n.dst_type == "pinned" for n in host)
    finally:
        step.close()
