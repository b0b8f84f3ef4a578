"""The Numba backend: the FP32 policy step on one CPU core, torch-free and onnx-free, from ``<model>.npz``.

For robots without a GPU, and as the fallback everywhere: it needs only numpy and numba (robonav's core
dependencies), the model's sidecar ``<model>.json`` and the weights export writes beside the ONNX file
(robonav.deploy.export.write_weights). Opening refuses weights or an .onnx whose sha256 differs from the sidecar's:
the .onnx is not run here, but it is the model the sidecar and the weights belong to. Everything is allocated when
the backend opens: the packed weights, two state vectors that swap roles every step (ping-pong: the kernel reads
one and writes the other, no copy), the action and the kernel's scratch. A step is one call of
`robonav.runtime.backends.numba_kernels.policy_step`.

    with NumbaBackend("policy.onnx") as policy:      # reads policy.json and policy.npz, checks both files' sha256
        action = policy.step(obs)

Parity: the kernel matches `numpy_step` to about 1e-6 and ONNX Runtime's FP32 model to `TOLERANCE` over
recorded episodes through resets (tests/runtime/backends/test_numba_backend.py).
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from robonav.model.heads import HEADS, head_kind
from robonav.model.sidecar import (
    ModelRefusedError,
    ModelSidecar,
    check_file_hash,
    read_sidecar,
    sidecar_path,
    weights_path,
)
from robonav.runtime.backends.base import Backend
from robonav.runtime.backends.numba_kernels import PackedWeights, aligned_zeros, pack_weights, policy_step

__all__ = ["TOLERANCE", "WEIGHTS_FORMAT", "NumbaBackend", "WeightsError", "load_model_weights", "load_weights"]

WEIGHTS_FORMAT = "robonav.weights/1"
TOLERANCE = 1e-5
"""Max |action| error (SI units) allowed against ONNX Runtime's FP32 model over recorded episodes: the same
bound as FP32 ONNX Runtime against torch (robonav.deploy.parity.TOLERANCE); measured about 1e-6."""


class WeightsError(ModelRefusedError):
    """``<model>.npz`` is missing, of another format, or disagrees with the model's sidecar."""


def load_model_weights(model: str | os.PathLike[str], sidecar: ModelSidecar) -> dict[str, np.ndarray]:
    """The weights ``<model>.npz`` of the model ``model`` (.onnx), after checking that both the model file and the
    weights are the exported ones (their sha256 against ``sidecar``): a backend that runs the .npz refuses it when
    either was replaced (ModelHashError naming the file and both hashes)."""
    model = Path(model)
    check_file_hash(model, sidecar.model_sha256, "model", sidecar_path(model))
    return load_weights(weights_path(model), sidecar, sidecar_path(model))


def load_weights(path: str | os.PathLike[str], sidecar: ModelSidecar,
                 sidecar_file: str | os.PathLike[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays of a weights file, checked against ``sidecar``: its sha256 (``weights_sha256``), then sizes,
    state layout, head and precision; raises WeightsError (ModelHashError for the hash) saying what differs."""
    path = Path(path)
    if sidecar.precision != "fp32":
        raise WeightsError(f"{path}: the Numba backend runs FP32 weights, but {sidecar.model_file} is "
                           f"{sidecar.precision}; give it the FP32 export (policy.onnx, whose policy.npz export wrote)")
    if not path.is_file():
        raise WeightsError(f"{path}: no weights file; `robonav export` writes it beside the .onnx and the Numba "
                           "backend needs it (copy it to the robot with the model and its .json)")
    check_file_hash(path, sidecar.weights_sha256, "weights", sidecar_file or sidecar_path(path))
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:  # truncated or damaged
        raise WeightsError(f"{path}: not a readable .npz ({e}); re-export the model") from e
    fmt = str(arrays.get("format", ""))
    if fmt != WEIGHTS_FORMAT:
        raise WeightsError(f"{path}: format {fmt!r}, expected {WEIGHTS_FORMAT!r}: written by another robonav "
                           "version or tool; re-export the model")
    _check_arrays(path, arrays, sidecar)
    return arrays


def _check_arrays(path: Path, a: dict[str, np.ndarray], sidecar: ModelSidecar) -> None:
    d, hidden = sidecar.obs_dim, sidecar.hidden
    head = head_kind(a)
    if head not in HEADS:
        raise WeightsError(f"{path}: head {head!r}, expected one of {sorted(HEADS)}; re-export the model")
    if sidecar.head is not None and head != sidecar.head:
        raise WeightsError(f"{path}: head {head!r}, expected {sidecar.head!r} (the sidecar's head); the weights come "
                           "from another export: re-export the model")
    need = ["core", "obs_mean", "obs_std", "obs_clip", "actor_layers", "state_layers", "hidden", *HEADS[head]]
    missing = [k for k in need if k not in a]
    if missing:
        raise WeightsError(f"{path}: lacks {missing}; re-export the model")
    core, actor_layers, n_act = str(a["core"]), int(a["actor_layers"]), len(sidecar.action_limits)
    found: dict[str, object] = {"state_layers": int(a["state_layers"]), "hidden": int(a["hidden"]),
                                "obs_mean": a["obs_mean"].shape}
    expected: dict[str, object] = {"state_layers": sidecar.state_layers, "hidden": hidden, "obs_mean": (d,)}
    shapes: list[tuple[str, tuple[int, ...]]] = [("obs_std", (d,))]
    if head == "gaussian":
        shapes += [("mu_w", (n_act, hidden)), ("mu_b", (n_act,)), ("action_scale", (n_act,))]
    else:
        n_q = a["primitives"].shape[0] if a["primitives"].ndim else 0
        if n_q < 2:
            raise WeightsError(f"{path}: {n_q} motion primitives, expected at least 2 to choose from; re-export the "
                               "model")
        shapes += [("q_w", (n_q, hidden)), ("q_b", (n_q,)), ("primitives", (n_q, n_act))]
    width, k = d, 0
    while f"encoder_w{k}" in a:
        out = a[f"encoder_w{k}"].shape[0]
        shapes += [(f"encoder_w{k}", (out, width)), (f"encoder_b{k}", (out,))]
        width, k = out, k + 1
    if core == "lstm":
        for layer in range(actor_layers):
            shapes += [(f"lstm_w_ih{layer}", (4 * hidden, width)), (f"lstm_w_hh{layer}", (4 * hidden, hidden)),
                       (f"lstm_b{layer}", (4 * hidden,))]
            width = hidden
    elif core == "mlp":
        shapes += [("core_w", (hidden, width)), ("core_b", (hidden,))]
    else:
        raise WeightsError(f"{path}: core {core!r}, expected 'lstm' or 'mlp'; re-export the model")
    for name, shape in shapes:
        found[name] = a[name].shape if name in a else None
        expected[name] = shape
    bad = {k: (expected[k], v) for k, v in found.items() if v != expected[k]}
    if not 1 <= actor_layers <= sidecar.state_layers:
        bad["actor_layers"] = (f"1..{sidecar.state_layers}", actor_layers)
    if bad:
        detail = "; ".join(f"{k} expected {e}, found {f}" for k, (e, f) in bad.items())
        raise WeightsError(f"{path}: does not match the sidecar {sidecar.model_file} (obs_dim {d}, state "
                           f"{list(sidecar.state_shape)}): {detail}; the weights come from another export")
    floats = [k for k, v in a.items() if v.dtype.kind == "f" and v.dtype != np.float32]
    if floats:
        raise WeightsError(f"{path}: arrays {floats} are not float32; re-export the model")


class NumbaBackend(Backend):
    """The FP32 step as a Numba kernel for one robot: ``step(obs) -> action``, state inside (host memory)."""

    def __init__(self, model: str | os.PathLike[str], sidecar: ModelSidecar | None = None) -> None:
        path = Path(model)
        self.path = path.with_suffix(".onnx") if path.suffix == ".npz" else path
        super().__init__(sidecar if sidecar is not None else read_sidecar(self.path, check_hash=False))
        self.weights_file = weights_path(self.path)  # both files' hashes are checked when the backend opens
        self.packed: PackedWeights | None = None
        size = 2 * self.sidecar.state_layers * self.sidecar.hidden
        self._state_in = aligned_zeros(size)
        self._state_out = aligned_zeros(size)
        self._action = np.zeros(len(self.sidecar.action_limits), np.float32)
        self._scratch = np.zeros(0, np.float32)
        self._warm_obs = np.zeros((1, self.sidecar.obs_dim), np.float32)

    def _open(self) -> None:
        self.packed = pack_weights(load_model_weights(self.path, self.sidecar))
        self._scratch = aligned_zeros(self.packed.scratch_size)
        self.warmup()

    def warmup(self) -> None:
        """Compile (or load from numba's cache) and run the kernel once, so the first control tick is not slow."""
        self.prewarm()

    def prewarm(self) -> None:
        """The kernel on a zero observation: it reads the state and writes only the next state's buffer (which
        the next step overwrites, the ping-pong of the module docstring) and the action (returned as a copy)."""
        assert self.packed is not None
        policy_step(self._warm_obs, self._state_in, self._state_out, self._action, self.packed.weights,
                    self.packed.layout, self._scratch)

    def _reset(self) -> None:
        self._state_in[:] = 0.0

    def _step(self, obs: np.ndarray) -> np.ndarray:
        packed = self.packed
        assert packed is not None
        policy_step(obs, self._state_in, self._state_out, self._action, packed.weights, packed.layout,
                    self._scratch)
        self._state_in, self._state_out = self._state_out, self._state_in
        return self._action.copy()

    def _close(self) -> None:
        self.packed = None
        self._scratch = np.zeros(0, np.float32)

    @property
    def state(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of (h, c), each [L, 1, H]: for tests and debugging, not for the control loop."""
        shape = (2, *self.sidecar.state_shape)
        hc = self._state_in.reshape(shape).copy()
        return hc[0], hc[1]
