"""Export a checkpoint's deployment step to ONNX, with its sidecar and its weights for the Numba and torch backends.

``export_onnx(checkpoint, "policy.onnx")`` writes three files side by side:

    policy.onnx   the step model of docs/design.md: obs [1, D], h_in, c_in [L, 1, H] -> action [1, 2], h_out, c_out;
                  static shapes, normalisation, clamp and SI scaling inside, the LSTM as MatMul/Gemm plus element-wise
                  gates; opset 20, IR 10; robonav.* metadata_props; checked with onnx.checker (full_check) and
                  against what TensorRT 10.3's parser supports (robonav.deploy.trt_ops)
    policy.json   the sidecar (robonav.model.sidecar): ObservationSpec, limits, period, precision, hashes, I/O
    policy.npz    the same weights as plain arrays (layout in `write_weights`)

The graph is traced from ``ActorCritic.step`` by ``torch.onnx.export(dynamo=True)`` (torch 2.13's default
exporter; it emits Gemm/MatMul, Add/Sub/Mul/Div, Sigmoid/Tanh/Elu, Clip, Split, Gather and Unsqueeze for this
model, every one on the TensorRT 10.3 list).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from robonav.atomic import atomic_path
from robonav.errors import RobonavError
from robonav.model.sidecar import (
    INPUT_NAMES,
    OUTPUT_NAMES,
    ModelSidecar,
    file_sha256,
    metadata_props,
    weights_path,
    write_sidecar,
)

__all__ = ["OPSET", "ExportError", "ExportResult", "export_onnx", "finish_model", "write_weights"]

OPSET = 20
"""Default-domain opset of exported models (TensorRT 10.3 parses 9 to 20)."""
IR_VERSION = 10
"""IR version of exported models (the highest TensorRT 10.3's ONNX 1.16 reads)."""
WEIGHTS_FORMAT = "robonav.weights/1"


class ExportError(RobonavError, RuntimeError):
    """The exporter produced a graph that breaks the step-model contract (a bug here or in torch.onnx)."""


@dataclass(frozen=True)
class ExportResult:
    """What `export_onnx` wrote and checked."""

    onnx: Path
    """The .onnx file."""
    sidecar: Path
    """Its ``<model>.json``."""
    weights: Path
    """Its ``<model>.npz``: the weights the Numba and PyTorch backends read (layout in `write_weights`)."""
    meta: ModelSidecar
    """The sidecar's content."""
    ops: dict[str, int]
    """Operator type -> count in the graph."""
    bytes: int
    """Size of the .onnx file."""
    smoke_error: float
    """Max |action| difference ONNX Runtime vs torch over a few random steps (the full test is parity.py)."""


def _step_module(model: Any) -> Any:
    import torch

    class StepModel(torch.nn.Module):
        """``ActorCritic.step`` as a module's forward, for tracing."""

        def __init__(self, policy: Any) -> None:
            super().__init__()
            self.policy = policy

        def forward(self, obs: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> Any:
            return self.policy.step(obs, h, c)

    return StepModel(model).eval()


def _trace(model: Any, obs_dim: int, path: Path, opset: int) -> None:
    """torch.onnx.export of the step (dynamo), its progress lines sent to stderr, not into --json stdout."""
    import torch

    state = (model.state_layers, 1, model.cfg.hidden)
    args = (torch.zeros(1, obs_dim), torch.zeros(state), torch.zeros(state))
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(_step_module(model), args, str(path), input_names=list(INPUT_NAMES),
                          output_names=list(OUTPUT_NAMES), opset_version=opset, dynamo=True, external_data=False,
                          verbose=False)


def finish_model(model: Any, sidecar: ModelSidecar, checkpoint_path: str = "") -> Any:
    """Stamp metadata and producer on an onnx.ModelProto, then check it: IR/opset limits, onnx.checker (full),
    the I/O contract, and TensorRT 10.3 support. Returns the model; raises ExportError or TrtCompatibilityError."""
    import onnx

    from robonav import __version__
    from robonav.deploy.trt_ops import IR_MAX, OPSET_MAX, check_trt_compatible

    if model.ir_version > IR_MAX:
        model.ir_version = IR_VERSION
    opsets = {o.domain: o.version for o in model.opset_import}
    if opsets.get("", 0) > OPSET_MAX:
        raise ExportError(f"exported opset {opsets['']} > {OPSET_MAX}: TensorRT 10.3 cannot parse it; export with "
                          f"opset_version <= {OPSET_MAX}")
    del model.metadata_props[:]
    for key, value in metadata_props(sidecar).items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name, model.producer_version = "robonav", __version__
    model.doc_string = f"robonav step model ({sidecar.precision}) from {checkpoint_path}".strip()
    onnx.checker.check_model(model, full_check=True)
    ops = Counter(n.op_type for n in model.graph.node)
    if "LSTM" in ops or "Loop" in ops or "Scan" in ops:
        raise ExportError(f"the graph holds {sorted({'LSTM', 'Loop', 'Scan'} & set(ops))}: the LSTM must be "
                          "MatMul/Gemm plus element-wise gates so quantizers can put Q/DQ around the matmuls")
    elem = onnx.TensorProto.DataType.Name
    found_in = [(i.name, elem(i.type.tensor_type.elem_type), [d.dim_value for d in i.type.tensor_type.shape.dim])
                for i in model.graph.input]
    found_out = [(o.name, elem(o.type.tensor_type.elem_type), [d.dim_value for d in o.type.tensor_type.shape.dim])
                 for o in model.graph.output]
    want_in = [(t.name, "FLOAT", list(t.shape)) for t in sidecar.inputs]
    want_out = [(t.name, "FLOAT", list(t.shape)) for t in sidecar.outputs]
    if found_in != want_in or found_out != want_out:
        raise ExportError(f"graph I/O {found_in} -> {found_out} breaks the step-model contract {want_in} -> "
                          f"{want_out}")
    check_trt_compatible(model)
    return model


def write_weights(model: Any, path: str | os.PathLike[str]) -> Path:
    """The step's weights as float32 arrays in ``path`` (.npz), for the Numba and PyTorch backends. Layout:

    ``format`` (str), ``core`` ('lstm' | 'mlp'), ``obs_mean``, ``obs_std`` (= sqrt(var + eps)), ``obs_clip``;
    ``encoder_w{k}`` [out, in], ``encoder_b{k}`` for k = 0.., each followed by ELU; LSTM layer l: ``lstm_w_ih{l}``
    [4H, in], ``lstm_w_hh{l}`` [4H, H], ``lstm_b{l}`` [4H] (b_ih + b_hh), gate order i, f, g, o; MLP core:
    ``core_w``, ``core_b`` then tanh; ``actor_layers``, ``state_layers``, ``hidden``; state rows past
    ``actor_layers`` (a separate critic's) pass through. Then the head, by ``head``:

    - 'gaussian' (an ActorCritic): ``mu_w`` [2, H], ``mu_b``, ``action_scale`` [2];
      action = clip(mu, -1, 1) * action_scale.
    - 'argmax' (a QNetwork): ``q_w`` [A, H], ``q_b`` [A], ``primitives`` [A, 2];
      action = primitives[argmax(q_w @ h + q_b)], the first index on ties. A dueling head is folded into this one
      affine map (Q = V + A - mean A is linear in the features), in float64 before the cast to float32.

    A file without ``head`` (written before Q networks had weights) is 'gaussian'.
    """
    import torch

    arrays: dict[str, Any] = {}

    def put(name: str, t: torch.Tensor) -> None:
        arrays[name] = t.detach().to(torch.float32).cpu().numpy().copy()

    norm = model.normalizer
    put("obs_mean", norm.mean)
    put("obs_std", torch.sqrt(norm.var + norm.eps))
    arrays["obs_clip"] = np.float32(norm.clip)
    q_network = hasattr(model, "advantage_head")
    body = model.body if q_network else model.actor
    linears = [m for m in body.encoder if isinstance(m, torch.nn.Linear)]
    for k, lin in enumerate(linears):
        put(f"encoder_w{k}", lin.weight)
        put(f"encoder_b{k}", lin.bias)
    if body.recurrent:
        lstm = body.core
        for layer in range(lstm.num_layers):
            put(f"lstm_w_ih{layer}", getattr(lstm, f"weight_ih_l{layer}"))
            put(f"lstm_w_hh{layer}", getattr(lstm, f"weight_hh_l{layer}"))
            put(f"lstm_b{layer}", getattr(lstm, f"bias_ih_l{layer}") + getattr(lstm, f"bias_hh_l{layer}"))
    else:
        put("core_w", body.core[0].weight)
        put("core_b", body.core[0].bias)
    if q_network:
        arrays["head"] = np.array("argmax")
        arrays["q_w"], arrays["q_b"] = _folded_q_head(model)
        put("primitives", model.primitives)
    else:
        arrays["head"] = np.array("gaussian")
        put("mu_w", model.mu.weight)
        put("mu_b", model.mu.bias)
        put("action_scale", model.action_scale)
    arrays["actor_layers"] = np.int64(model.cfg.layers)
    arrays["state_layers"] = np.int64(model.state_layers)
    arrays["hidden"] = np.int64(model.cfg.hidden)
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, format=np.array(WEIGHTS_FORMAT), core=np.array(model.cfg.core), **arrays)
    return path


def _folded_q_head(model: Any) -> tuple[np.ndarray, np.ndarray]:
    """A QNetwork's head as one affine map (q_w [A, H], q_b [A]) in float32: V + A - mean(A) when dueling."""
    adv_w = model.advantage_head.weight.detach().cpu().double().numpy()
    adv_b = model.advantage_head.bias.detach().cpu().double().numpy()
    if model.value_head is not None:
        adv_w = model.value_head.weight.detach().cpu().double().numpy() + adv_w - adv_w.mean(axis=0, keepdims=True)
        adv_b = model.value_head.bias.detach().cpu().double().numpy() + adv_b - adv_b.mean()
    return adv_w.astype(np.float32), adv_b.astype(np.float32)


def _smoke(model: Any, onnx_path: Path, sidecar: ModelSidecar, steps: int = 5) -> float:
    """Max |action| difference ORT vs torch over ``steps`` random observations, state fed back."""
    import torch

    from robonav.runtime.backends.onnx_backend import OnnxBackend

    rng = np.random.default_rng(0)
    h = torch.zeros(sidecar.state_shape)
    c = torch.zeros(sidecar.state_shape)
    worst = 0.0
    with OnnxBackend(onnx_path, sidecar=sidecar) as backend, torch.no_grad():
        for _ in range(steps):
            obs = rng.normal(size=(1, sidecar.obs_dim)).astype(np.float32)
            a, h, c = model.step(torch.from_numpy(obs), h, c)
            worst = max(worst, float(np.abs(backend.step(obs) - a.numpy()[0]).max()))
    return worst


def export_onnx(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], opset: int = OPSET) -> ExportResult:
    """Export ``checkpoint`` (a robonav .pt) to ``out`` (.onnx) with ``<out>.json`` and ``<out>.npz`` beside it;
    each file is written atomically, the sidecar last, holding the sha256 of the other two."""
    import onnx

    from robonav.policy.agent import load_policy
    from robonav.policy.checkpoint import file_hash, policy_meta

    out = Path(out)
    if out.suffix != ".onnx":
        raise ValueError(f"export output must end in .onnx (its sidecar and weights take .json and .npz), got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = Path(checkpoint)
    model, meta = load_policy(checkpoint)
    policy = policy_meta(model, meta, file_hash(checkpoint))
    sidecar = ModelSidecar.for_policy(policy, out.name, opset, IR_VERSION)
    with tempfile.TemporaryDirectory(dir=out.parent) as folder:
        traced = Path(folder) / out.name
        _trace(model, policy.obs_dim, traced, opset)
        proto = finish_model(onnx.load(str(traced)), sidecar, checkpoint.name)
    with atomic_path(out) as tmp:
        onnx.save(proto, str(tmp))
    import torch

    producer = {"robonav": proto.producer_version, "torch": torch.__version__, "onnx": onnx.__version__,
                "exporter": "torch.onnx.export(dynamo=True)"}
    algo = str(meta.get("algo", "ppo"))
    weights = write_weights(model, weights_path(out))
    sidecar = replace(sidecar, model_sha256=file_sha256(out), weights_sha256=file_sha256(weights),
                      ir_version=proto.ir_version).with_extra(
        producer=producer, source=checkpoint.name, policy=meta.get("policy"), algo=algo)
    side = write_sidecar(out, sidecar)
    ops = dict(sorted(Counter(n.op_type for n in proto.graph.node).items()))
    return ExportResult(out, side, weights, sidecar, ops, out.stat().st_size, _smoke(model, out, sidecar))
