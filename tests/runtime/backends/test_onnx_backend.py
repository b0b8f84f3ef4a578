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
