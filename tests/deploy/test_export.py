"""Export: the step-model I/O contract, metadata, checker, TensorRT op list, sidecar and the .npz weights."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from robonav.deploy.export import export_onnx
from robonav.deploy.trt_ops import SUPPORTED, check_trt_compatible
from robonav.model.sidecar import file_sha256, read_sidecar
from robonav.policy.actor_critic import PolicyConfig
from robonav.policy.checkpoint import file_hash, load_checkpoint


def _io(model):
    name = onnx.TensorProto.DataType.Name
    return [(v.name, name(v.type.tensor_type.elem_type), [d.dim_value if d.HasField("dim_value") else d.dim_param
                                                          for d in v.type.tensor_type.shape.dim])
            for v in [*model.graph.input, *model.graph.output]]


def test_io_contract_static_shapes_and_versions(exported):
    model = onnx.load(str(exported.onnx))
    d, h = exported.meta.obs_dim, exported.meta.hidden
    assert d == 101 and h == 16
    assert _io(model) == [("obs", "FLOAT", [1, d]), ("h_in", "FLOAT", [1, 1, h]), ("c_in", "FLOAT", [1, 1, h]),
                          ("action", "FLOAT", [1, 2]), ("h_out", "FLOAT", [1, 1, h]), ("c_out", "FLOAT", [1, 1, h])]
    assert model.ir_version <= 10
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 20)]
    onnx.checker.check_model(model, full_check=True)


def test_lstm_is_matmuls_and_gates_and_every_op_is_on_the_tensorrt_list(exported):
    model = onnx.load(str(exported.onnx))
    ops = {n.op_type for n in model.graph.node}
    assert {"MatMul", "Gemm", "Sigmoid", "Tanh"} <= ops   # gates written out...
    assert not ops & {"LSTM", "Loop", "Scan"}               # ...not the fused ONNX LSTM
    assert ops <= set(SUPPORTED)
    check_trt_compatible(model)
    assert exported.ops == {op: sum(n.op_type == op for n in model.graph.node) for op in ops}


def test_metadata_carries_spec_limits_period_hash_and_precision(exported, checkpoint):
    model = onnx.load(str(exported.onnx))
    props = {p.key: p.value for p in model.metadata_props}
    meta = load_checkpoint(checkpoint)["meta"]
    assert json.loads(props["robonav.observation_spec"]) == meta["observation_spec"]
    assert json.loads(props["robonav.action_limits"]) == [0.5, 2.0]
    assert float(props["robonav.control_period"]) == 0.1
    assert props["robonav.precision"] == "fp32"
    assert props["robonav.checkpoint_sha256"] == file_hash(checkpoint)
    assert json.loads(props["robonav.state"]) == {"layers": 1, "hidden": 16}


def test_sidecar_describes_the_file_beside_it(exported, checkpoint):
    assert exported.sidecar == exported.onnx.with_suffix(".json")
    sidecar = read_sidecar(exported.onnx)  # checks the hash
    assert sidecar.model_sha256 == file_sha256(exported.onnx)
    assert sidecar.checkpoint_sha256 == file_hash(checkpoint)
    assert (sidecar.precision, sidecar.obs_dim, sidecar.state_shape) == ("fp32", 101, (1, 1, 16))
    assert sidecar.observation == "preprocessor" and sidecar.observation_spec is not None
    assert sidecar.observation_spec.size == 101 and sidecar.head == "gaussian"
    assert sidecar.weights_sha256 == file_sha256(exported.weights)  # the Numba and PyTorch backends check it
    assert exported.smoke_error < 1e-5


def npz_step(w, obs, h, c):
    """Plain NumPy forward of the .npz layout documented in robonav.deploy.export.write_weights."""
    x = np.clip((obs - w["obs_mean"]) / w["obs_std"], -w["obs_clip"], w["obs_clip"])
    k = 0
    while f"encoder_w{k}" in w:
        x = x @ w[f"encoder_w{k}"].T + w[f"encoder_b{k}"]
        x = np.where(x > 0, x, np.expm1(np.minimum(x, 0)))  # ELU(alpha=1)
        k += 1
    n = int(w["actor_layers"])
    h, c = h.copy(), c.copy()
    for layer in range(n):
        gates = x @ w[f"lstm_w_ih{layer}"].T + h[layer] @ w[f"lstm_w_hh{layer}"].T + w[f"lstm_b{layer}"]
        i, f, g, o = np.split(gates, 4, axis=-1)
        sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
        c[layer] = sig(f) * c[layer] + sig(i) * np.tanh(g)
        x = h[layer] = sig(o) * np.tanh(c[layer])
    return np.clip(x @ w["mu_w"].T + w["mu_b"], -1, 1) * w["action_scale"], h, c


@pytest.fixture(scope="module")
def critic_variant(tmp_path_factory, helpers):
    """A two-layer LSTM with a separate critic: the state has four rows, the critic's two pass through."""
    folder = tmp_path_factory.mktemp("variant")
    ckpt = helpers.make_checkpoint(folder / "v.pt", PolicyConfig(encoder=(24, 24), hidden=8, layers=2,
                                                                  separate_critic=True), seed=3)
    return ckpt, export_onnx(ckpt, folder / "v.onnx")


@pytest.mark.parametrize("which", ["tiny", "variant"])
def test_npz_weights_reproduce_the_torch_step(which, exported, policy, critic_variant, rng):
    from robonav.policy.agent import load_policy

    model, result = (policy, exported) if which == "tiny" else (load_policy(critic_variant[0])[0], critic_variant[1])
    w = dict(np.load(result.weights))
    assert str(w["format"]) == "robonav.weights/1" and str(w["core"]) == "lstm"
    shape = result.meta.state_shape
    h, c = rng.normal(size=shape).astype(np.float32), rng.normal(size=shape).astype(np.float32)
    th, tc = torch.from_numpy(h), torch.from_numpy(c)
    for _ in range(5):  # state fed back: errors would compound
        obs = rng.normal(size=(1, result.meta.obs_dim)).astype(np.float32) * 2
        a, h, c = npz_step(w, obs, h, c)
        with torch.no_grad():
            ta, th, tc = model.step(torch.from_numpy(obs), th, tc)
        np.testing.assert_allclose(a, ta.numpy(), atol=2e-5)
        np.testing.assert_allclose(h, th.numpy(), atol=2e-5)
        np.testing.assert_allclose(c, tc.numpy(), atol=2e-5)


def test_variant_with_separate_critic_keeps_the_critic_rows(critic_variant, rng):
    from robonav.runtime.backends.onnx_backend import load_session

    _, result = critic_variant
    assert result.meta.state_shape == (4, 1, 8)
    session = load_session(result.onnx, result.meta)
    h = rng.normal(size=(4, 1, 8)).astype(np.float32)
    c = rng.normal(size=(4, 1, 8)).astype(np.float32)
    _, h2, c2 = session.run(None, {"obs": np.zeros((1, result.meta.obs_dim), np.float32), "h_in": h, "c_in": c})
    np.testing.assert_array_equal(h2[2:], h[2:])   # the critic's layers pass through untouched
    np.testing.assert_array_equal(c2[2:], c[2:])
    assert not np.allclose(h2[:2], h[:2])           # the actor's move


def test_export_refuses_an_output_that_is_not_onnx(checkpoint, tmp_path):
    with pytest.raises(ValueError, match=r"export output must end in \.onnx"):
        export_onnx(checkpoint, tmp_path / "policy.pt")
