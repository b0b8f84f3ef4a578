"""The TensorRT backend: engine sidecar checks (no TensorRT needed), its refusal without TensorRT, the lazy CUDA
binding, and (marked gpu) the CUDA half (pinned buffers, two graphs, ping-pong, reset) with a stand-in engine."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from robonav.model.sidecar import SidecarError
from robonav.runtime.backends.base import BackendError
from robonav.runtime.backends.trt_backend import (
    ENGINE_KEY,
    CudaGraphStep,
    EngineMismatchError,
    ShiftRegisterEngine,
    TrtBackend,
    TrtUnavailableError,
    _check_io,
    check_engine,
    shift_register_reference,
)


def _has_tensorrt() -> bool:
    try:
        import tensorrt
    except ImportError:
        return False
    return hasattr(tensorrt, "Builder")  # tensorrt-stubs alone makes the import succeed


def _gpu() -> object | None:
    from robonav.runtime.backends.cuda import CudaUnavailableError, cudart

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


def test_importing_loads_neither_libcudart_nor_tensorrt():
    code = ("import sys; import robonav.runtime.backends.trt_backend, robonav.runtime.backends.cuda; "
            "maps = open('/proc/self/maps').read(); "
            "print('libcudart' in maps, 'libnvinfer' in maps, 'tensorrt' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "False", "False"]


def test_a_missing_libcudart_is_named():
    code = ("from robonav.runtime.backends.cuda import cudart, CudaUnavailableError\n"
            "try:\n    cudart()\nexcept CudaUnavailableError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"ROBONAV_CUDART": "/nonexistent/libcudart.so", "PATH": "/usr/bin"}).stdout
    assert "the CUDA runtime library libcudart could not be loaded (tried /nonexistent/libcudart.so" in out
    assert "set ROBONAV_CUDART to the path of libcudart.so" in out


def test_ctypes_structs_hold_what_cuda_13_writes():
    """cudaPointerAttributes in CUDA 13's driver_types.h: enum type, int device, void *devicePointer, void
    *hostPointer, long reserved[8] = 4 + 4 + 8 + 8 + 64 = 88 bytes; the runtime writes all of them, so a smaller
    struct lets it overwrite Python's memory (it crashed the GPU check on a CUDA 13 H100).
    cudaMemcpy3DParms: array 8, pos 24, pitched ptr 32, array 8, pos 24, pitched ptr 32, extent 24, kind 4 (+4)."""
    import ctypes

    from robonav.runtime.backends.cuda import _Memcpy3DParms, _PointerAttributes

    assert ctypes.sizeof(_PointerAttributes) == 88
    assert ctypes.sizeof(_Memcpy3DParms) == 160


def test_cuda_half_without_a_gpu_says_so(toys):
    from robonav.runtime.backends.cuda import CudaUnavailableError, cudart

    try:
        cuda = cudart()
    except CudaUnavailableError:
        pytest.skip("no libcudart here")
    if cuda.device_count() > 0:
        pytest.skip("a GPU is visible")
    sidecar = toys.sidecar("toy.engine")
    with pytest.raises(BackendError, match=r"no CUDA GPU is visible to .*libcudart.* Numba backend"):
        CudaGraphStep(ShiftRegisterEngine(cuda, sidecar), sidecar, cuda).open()


needs_gpu = pytest.mark.skipif(_gpu() is None, reason="needs a CUDA GPU and libcudart")


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
