"""Helpers of the loop tests: a toy step model on the real Preprocessor's observation, and synthetic frames.

The toy follows the step-model contract with the observation of SPEC (D = 101), L = 1, H = 2, built with
onnx.helper (no torch):
    action = obs @ W + h_in[0]        W [D, 2]: column 0 = 0.02, column 1 = alternating +-0.03
    h_out  = 0.5 * h_in + 0.1         c_out = 0.5 * c_in
so the first action after a reset is obs @ W and later ones add 0.1, 0.15, 0.175, ...: a missed reset shows.
Frames are synthetic (numpy only): a 64-beam scan of a room with a wall ahead, odometry creeping forward.

Test files import this module after putting its folder on sys.path (pytest runs with --import-mode=importlib).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from robonav.model.sidecar import ModelSidecar, file_sha256, metadata_props, write_sidecar
from robonav.runtime.backends.base import Backend
from robonav.sensors.frame import ScanSpec, SensorFrame
from robonav.sensors.spec import ObservationSpec, PreprocessorConfig

SPEC = ObservationSpec(PreprocessorConfig(num_bins=16, fine_pixels=4, coarse_pixels=4, grid_cells=128))
D, H = SPEC.size, 2
W = np.stack([np.full(D, 0.02), 0.03 * (-1.0) ** np.arange(D)], axis=1).astype(np.float32)  # [D, 2]
SCAN = ScanSpec.evenly_spaced(64, range_max=3.5)


def toy_sidecar(name: str, period: float = 0.1) -> ModelSidecar:
    return ModelSidecar(model_file=name, model_sha256="", precision="fp32", checkpoint_sha256="c" * 64,
                        observation_spec=SPEC, obs_dim=D, action_limits=(0.5, 2.0), control_period=period,
                        head="gaussian", state_layers=1, hidden=H, opset=20, ir_version=10)


def write_toy(folder: Path, name: str = "toy.onnx", period: float = 0.1) -> Path:
    """Write the toy model and its sidecar (hash matching) into ``folder``; returns the model path."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    f = TensorProto.FLOAT
    state = [1, 1, H]
    ins = [helper.make_tensor_value_info("obs", f, [1, D]), helper.make_tensor_value_info("h_in", f, state),
           helper.make_tensor_value_info("c_in", f, state)]
    outs = [helper.make_tensor_value_info("action", f, [1, 2]), helper.make_tensor_value_info("h_out", f, state),
            helper.make_tensor_value_info("c_out", f, state)]
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(np.array([1, H], np.int64), "shape"),
             numpy_helper.from_array(np.array(0.1, np.float32), "tenth"),
             numpy_helper.from_array(np.array(0.5, np.float32), "half")]
    nodes = [helper.make_node("MatMul", ["obs", "W"], ["xw"]), helper.make_node("Reshape", ["h_in", "shape"], ["h2"]),
             helper.make_node("Add", ["xw", "h2"], ["action"]), helper.make_node("Mul", ["h_in", "half"], ["hh"]),
             helper.make_node("Add", ["hh", "tenth"], ["h_out"]), helper.make_node("Mul", ["c_in", "half"], ["c_out"])]
    model = helper.make_model(helper.make_graph(nodes, "toy_loop", ins, outs, inits),
                              opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 10
    sidecar = toy_sidecar(name, period)
    for k, v in metadata_props(sidecar).items():
        model.metadata_props.add(key=k, value=v)
    path = Path(folder) / name
    onnx.save(model, str(path))
    write_sidecar(path, dataclasses.replace(sidecar, model_sha256=file_sha256(path)))
    return path


def room_scan(rng: np.random.Generator, wall_ahead: float = 1.5) -> np.ndarray:
    """float32 [64]: a wall ``wall_ahead`` m ahead (beams within 30 degrees of +x), side walls at 1 m, nothing
    behind (+inf), a little noise and a NaN or two (REP 117)."""
    a = SCAN.beam_angles()
    r = np.full(a.shape, np.inf)
    ahead = np.abs(a) < np.radians(30)
    r[ahead] = wall_ahead / np.cos(a[ahead])
    side = ~ahead & (np.abs(np.sin(a)) > 0.5) & (np.cos(a) > -0.2)
    r[side] = 1.0 / np.abs(np.sin(a[side]))
    r = np.where(r > SCAN.range_max, np.inf, r) + rng.normal(0.0, 0.01, a.shape)
    r[rng.integers(0, len(a), 2)] = np.nan
    return r.astype(np.float32)


def frames(n: int, episode_id: int = 1, seed: int = 0, wall_ahead: float = 1.5, first_seq: int = 0
           ) -> list[SensorFrame]:
    """``n`` frames of one episode: the robot creeps 2 cm per frame and turns a little, goal 4 m ahead-left."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        delta = np.zeros(3) if k == 0 else np.array([0.02, 0.0, 0.01])
        out.append(SensorFrame(room_scan(rng, wall_ahead), SCAN, delta, np.array([4.0, 1.0]),
                               episode_id=episode_id, stamp=0.1 * k, seq=first_seq + k))
    return out



class NumpyToy(Backend):
    """The toy step model in plain NumPy with preallocated buffers: a Backend whose step keeps nothing, so the
    loop's own allocations can be measured without an engine's (ONNX Runtime's binding keeps a few bytes per
    run, see test_loop.py)."""

    def __init__(self, period: float = 0.1) -> None:
        super().__init__(toy_sidecar("numpy-toy.onnx", period))
        self._h = np.zeros((1, 2), np.float32)
        self._out = np.zeros((1, 2), np.float32)

    def _open(self) -> None:
        pass

    def _reset(self) -> None:
        self._h[:] = 0.0

    def _step(self, obs: np.ndarray) -> np.ndarray:
        np.dot(obs, W, out=self._out)  # [1, D] @ [D, 2]
        self._out += self._h
        self._h *= 0.5
        self._h += 0.1
        return self._out

    def _close(self) -> None:
        pass
