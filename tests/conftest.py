"""Shared fixtures: toy step models for the model and runtime tests, built with onnx.helper (no torch): small,
stateful, fully known.

The toy follows the step-model contract with D = 5, L = 1, H = 2:
    action = obs @ W + h_in[0]          (W [5, 2] = 0.1 * arange)
    h_out  = h_in + 1                   c_out = c_in * 0.5
so the first action after a reset is obs @ W, the next obs @ W + 1, and so on: the state is visible.
Variants break one thing each (a missing input, a wrong shape, no metadata) for the loader's refusals.
"""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from robonav.model.sidecar import ModelSidecar, file_sha256, metadata_props, write_sidecar

D, H = 5, 2
W = (0.1 * np.arange(D * 2, dtype=np.float32)).reshape(D, 2)


def toy_sidecar(name: str, obs_dim: int = D) -> ModelSidecar:
    return ModelSidecar(model_file=name, model_sha256="", precision="fp32", checkpoint_sha256="c" * 64,
                        observation_spec=None, obs_dim=obs_dim, action_limits=(0.5, 2.0), control_period=0.1,
                        head="gaussian", state_layers=1, hidden=H, opset=20, ir_version=10)


def toy_model(obs_dim: int = D, drop_input: str | None = None, metadata: dict[str, str] | None = None
              ) -> onnx.ModelProto:
    f = TensorProto.FLOAT
    ins = [helper.make_tensor_value_info("obs", f, [1, obs_dim]), helper.make_tensor_value_info("h_in", f, [1, 1, H]),
           helper.make_tensor_value_info("c_in", f, [1, 1, H])]
    outs = [helper.make_tensor_value_info("action", f, [1, 2]), helper.make_tensor_value_info("h_out", f, [1, 1, H]),
            helper.make_tensor_value_info("c_out", f, [1, 1, H])]
    w = np.resize(W, (obs_dim, 2)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.array([1, H], np.int64), "shape"),
             numpy_helper.from_array(np.array(1.0, np.float32), "one"),
             numpy_helper.from_array(np.array(0.5, np.float32), "half")]
    nodes = [helper.make_node("MatMul", ["obs", "W"], ["xw"]), helper.make_node("Reshape", ["h_in", "shape"], ["h2"]),
             helper.make_node("Add", ["xw", "h2"], ["action"]), helper.make_node("Add", ["h_in", "one"], ["h_out"]),
             helper.make_node("Mul", ["c_in", "half"], ["c_out"])]
    if drop_input is not None:  # the dropped input becomes a constant zero inside the graph
        ins = [i for i in ins if i.name != drop_input]
        inits.append(numpy_helper.from_array(np.zeros((1, 1, H), np.float32), drop_input))
    model = helper.make_model(helper.make_graph(nodes, "toy", ins, outs, inits),
                              opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 10
    for k, v in (metadata or {}).items():
        model.metadata_props.add(key=k, value=v)
    return model


def write_toy(folder, name: str = "toy.onnx", sidecar_obs_dim: int = D, with_metadata: bool = True,
              metadata_from: ModelSidecar | None = None, **model_kw):
    """Write a toy model and a sidecar whose hash matches it; returns the model path."""
    sidecar = toy_sidecar(name, sidecar_obs_dim)
    meta = metadata_props(metadata_from or sidecar) if with_metadata else None
    path = folder / name
    onnx.save(toy_model(metadata=meta, **model_kw), str(path))
    write_sidecar(path, dataclasses.replace(sidecar, model_sha256=file_sha256(path)))
    return path


@pytest.fixture()
def toys():
    return types.SimpleNamespace(write=write_toy, sidecar=toy_sidecar, W=W, D=D, H=H)
