"""The backend lifecycle, its input checks, state kept inside, the N-env eval policy, and the import floor."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from robonav.runtime.backends.base import BackendStateError, InputError
from robonav.runtime.backends.onnx_backend import OnnxBackend, OnnxPolicy


def test_state_lives_inside_and_reset_zeroes_it(tmp_path, toys):
    obs = np.arange(toys.D, dtype=np.float32)
    xw = obs @ toys.W  # first action after a reset; each step adds 1 to h (toy model, see conftest)
    with OnnxBackend(toys.write(tmp_path)) as backend:
        np.testing.assert_allclose(backend.step(obs), xw, rtol=1e-6)
        np.testing.assert_allclose(backend.step(obs), xw + 1, rtol=1e-6)
        np.testing.assert_allclose(backend.step(obs[None]), xw + 2, rtol=1e-6)  # [1, D] works too
        backend.reset()
        out = backend.step(obs)
        np.testing.assert_allclose(out, xw, rtol=1e-6)
        assert out.dtype == np.float32 and out.shape == (2,)


def test_lifecycle_order_is_checked(tmp_path, toys):
    backend = OnnxBackend(toys.write(tmp_path))
    obs = np.zeros(toys.D, np.float32)
    with pytest.raises(BackendStateError, match=r"step\(\) on a backend that is not open; call open\(\) first"):
        backend.step(obs)
    with pytest.raises(BackendStateError, match=r"reset\(\)"):
        backend.reset()
    assert backend.open() is backend and backend.open() is backend  # open twice: once
    backend.close()
    backend.close()
    with pytest.raises(BackendStateError, match="it was closed"):
        backend.step(obs)
    with pytest.raises(BackendStateError, match=r"open\(\) after close\(\)"):
        backend.open()


@pytest.mark.parametrize("obs, message", [
    (np.zeros(5, np.float64), r"input 'obs' expected dtype float32, actual float64"),
    (np.zeros(6, np.float32), r"input 'obs' expected shape \[1, 5\] \(or \[5\]\), actual \[6\]"),
    (np.zeros((2, 5), np.float32), r"expected shape \[1, 5\] \(or \[5\]\), actual \[2, 5\]"),
    ([0.0] * 5, r"expected a numpy array float32 \[1, 5\], actual list"),
])
def test_inputs_are_checked_by_dtype_and_shape(tmp_path, toys, obs, message):
    with OnnxBackend(toys.write(tmp_path)) as backend, pytest.raises(InputError, match=message):
        backend.step(obs)


def test_policy_keeps_one_state_per_env_and_resets_only_those_asked(tmp_path, toys):
    policy = OnnxPolicy(toys.write(tmp_path), num_envs=3)
    assert len({id(b._session) for b in policy.backends}) == 1  # one session shared
    obs = np.ones((3, toys.D), np.float32)
    xw = obs[0] @ toys.W
    policy.act(obs)
    policy.act(obs)
    policy.reset(np.array([1]))
    out = policy.act(obs)
    assert out.shape == (3, 2) and out.dtype == np.float64
    np.testing.assert_allclose(out, [xw + 2, xw, xw + 2], rtol=1e-6)
    policy.close()


def test_clone_needs_an_open_backend(tmp_path, toys):
    with pytest.raises(BackendStateError, match=r"clone\(\) needs an open backend"):
        OnnxBackend(toys.write(tmp_path)).clone()


def test_runtime_imports_no_torch_onnx_or_simulator_even_when_running(tmp_path, toys):
    path = toys.write(tmp_path)
    code = ("import sys, numpy as np; import robonav.runtime as rt; "
            "from robonav.runtime.backends import onnx_backend, base as backend; from robonav.model import sidecar; "
            "before = [m for m in ('onnxruntime', 'onnx', 'torch', 'pybullet', 'gymnasium') if m in sys.modules]; "
            f"b = rt.OnnxBackend({str(path)!r}).open(); b.step(np.zeros({toys.D}, np.float32)); "
            "after = [m for m in ('onnx', 'torch', 'pybullet', 'gymnasium') if m in sys.modules]; "
            "print(before, after, 'onnxruntime' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[] [] True"  # onnxruntime only once a backend opens; never onnx or torch


def test_provider_names_map_to_onnx_runtime_in_priority_order():
    from robonav.runtime.backends.onnx_backend import resolve_providers

    every = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert resolve_providers(("cpu",), ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert resolve_providers(["tensorrt", "cuda", "cpu"], every) == every
    assert resolve_providers(["cuda", "cuda"], every) == ["CUDAExecutionProvider"]


@pytest.mark.parametrize("names, message", [
    ((), r"ort_providers is empty; expected one or more of \['cpu', 'cuda', 'tensorrt'\]"),
    (("gpu",), r"ort_providers \['gpu'\]: unknown \['gpu'\]; expected names from \['cpu', 'cuda', 'tensorrt'\]"),
])
def test_unknown_providers_are_refused(names, message):
    from robonav.runtime.backends.onnx_backend import OrtProviderError, resolve_providers

    with pytest.raises(OrtProviderError, match=message):
        resolve_providers(names, ["CPUExecutionProvider"])


def test_the_default_is_the_cpu_provider(tmp_path, toys):
    with OnnxBackend(toys.write(tmp_path)) as backend:
        assert backend._session.get_providers() == ["CPUExecutionProvider"]


@pytest.mark.parametrize("name, provider", [("cuda", "CUDAExecutionProvider"),
                                            ("tensorrt", "TensorrtExecutionProvider")])
def test_a_provider_this_onnx_runtime_lacks_is_refused_not_replaced_by_the_cpu(tmp_path, toys, name, provider):
    import onnxruntime

    from robonav.errors import UserError
    from robonav.runtime.backends.onnx_backend import OrtProviderError

    available = onnxruntime.get_available_providers()
    if provider in available:
        pytest.skip(f"this onnxruntime has {provider}: checks the refusal where it is absent")
    backend = OnnxBackend(toys.write(tmp_path), providers=(name, "cpu"))
    with pytest.raises(OrtProviderError) as info:
        backend.open()
    message = str(info.value)
    assert isinstance(info.value, UserError) and "\n" not in message
    assert message.startswith(f"ort_providers ['{name}', 'cpu'] asks for ['{provider}'], which this ONNX Runtime "
                              f"lacks (available: {available}): pip install onnxruntime-gpu")
    assert not backend.is_open


def test_run_settings_carry_the_providers_to_the_backend(tmp_path, toys):
    from robonav.runtime.backends.onnx_backend import OrtProviderError
    from robonav.runtime.run import RunSettings, backend_kwargs, open_run_backend
    from robonav.settings import load_settings

    model = toys.write(tmp_path)
    settings = load_settings(RunSettings, "robot", [f"model={model}", "backend=ort", "ort_providers=[cuda]"],
                             section="run")
    assert settings.ort_providers == ("cuda",)
    assert backend_kwargs(settings) == {"threads": 1, "providers": ("cuda",)}
    assert load_settings(RunSettings, "robot", [], section="run").ort_providers == ("cpu",)
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(OrtProviderError, match=r"asks for \['CUDAExecutionProvider'\]"):
            open_run_backend(settings)
