"""open_backend: each kind by name, lazily imported, the same actions as ONNX Runtime; absent ones say what to
install."""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from robonav.runtime.backends import registry as backends
from robonav.runtime.backends.onnx_backend import OnnxBackend
from robonav.runtime.backends.registry import (
    BACKENDS,
    BackendInfo,
    BackendUnavailableError,
    backend_class,
    open_backend,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import loop_toys as toys


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny random ActorCritic on loop_toys.SPEC, exported (.onnx, .json sidecar, .npz weights)."""
    torch = pytest.importorskip("torch")
    from robonav.deploy.export import export_onnx
    from robonav.policy.actor_critic import ActorCritic, PolicyConfig
    from robonav.policy.checkpoint import save_checkpoint

    config = PolicyConfig(encoder=(32,), hidden=16)
    torch.manual_seed(0)
    model = ActorCritic(toys.D, config)
    meta = {"policy": {**dataclasses.asdict(config), "encoder": list(config.encoder)}, "obs_dim": toys.D,
            "observation_spec": toys.SPEC.to_dict(), "action_limits": [0.5, 2.0], "control_period": 0.1,
            "observation": "preprocessor"}
    folder = tmp_path_factory.mktemp("tiny")
    return export_onnx(save_checkpoint(folder / "tiny.pt", model.state_dict(), meta), folder / "tiny.onnx").onnx


def test_ort_by_name_is_the_onnx_backend_opened(tmp_path):
    with open_backend("ort", toys.write_toy(tmp_path), threads=1) as backend:
        assert isinstance(backend, OnnxBackend) and backend.is_open
        obs = np.full(toys.D, 0.5, np.float32)
        np.testing.assert_allclose(backend.step(obs), obs @ toys.W, rtol=1e-6)


@pytest.mark.parametrize("kind, kw", [("numba", {}), ("torch", {"device": "cpu"})])
def test_cpu_backends_by_name_match_onnx_runtime_through_a_reset(exported, kind, kw):
    if importlib.util.find_spec(BACKENDS[kind].module) is None:
        pytest.skip(f"{BACKENDS[kind].module} is not in this checkout yet")
    obs = np.random.default_rng(0).uniform(-1, 1, (60, toys.D)).astype(np.float32)
    with open_backend(kind, exported, **kw) as backend, open_backend("ort", exported) as reference:
        assert type(backend).__name__ == BACKENDS[kind].cls
        err = 0.0
        for t, o in enumerate(obs):
            if t == 30:
                backend.reset()
                reference.reset()
            err = max(err, float(np.abs(backend.step(o) - reference.step(o)).max()))
    assert err <= 1e-5


def test_an_unknown_kind_lists_the_known_ones():
    with pytest.raises(BackendUnavailableError, match=r"unknown backend 'tensorflow'; expected one of ort, numba, "
                                                      r"torch, trt"):
        open_backend("tensorflow", "policy.onnx")


def test_a_missing_engine_names_the_module_and_what_to_install(monkeypatch):
    monkeypatch.setitem(BACKENDS, "fancy", BackendInfo("robonav.runtime.backends.onnx_backend", "OnnxBackend",
                                                       "no_such_engine_here", "pip install fancy-engine"))
    with pytest.raises(BackendUnavailableError, match=r"backend 'fancy' needs the module 'no_such_engine_here', "
                                                      r"which is not installed here: pip install fancy-engine"):
        backend_class("fancy")


def test_a_backend_module_missing_from_the_install_says_so(monkeypatch):
    monkeypatch.setitem(BACKENDS, "later", BackendInfo("robonav.runtime.later_backend", "LaterBackend", "numpy",
                                                       "pip install robonav"))
    with pytest.raises(BackendUnavailableError, match=r"robonav.runtime.later_backend is not part of this robonav "
                                                      "install"):
        backend_class("later")


def test_trt_without_tensorrt_is_refused_with_the_reason():
    if backends._engine_present(BACKENDS["trt"]):
        pytest.skip("TensorRT is installed here")
    with pytest.raises(BackendUnavailableError, match=r"backend 'trt' needs the module 'tensorrt'.*JetPack"):
        open_backend("trt", "policy.engine")


def test_backends_module_imports_no_engine():
    code = ("import sys, robonav.runtime.backends.registry; "
            "print(','.join(m for m in ('onnxruntime', 'torch', 'tensorrt', 'numba') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
