"""The model sidecar ``<model>.json``: what a runtime must know about a model file, and the checks it runs.

Export, quantize and (later) engine build write one beside every ``.onnx`` / ``.engine`` (DESIGN.md "Model
sidecar"). The on-robot path reads only the model file, this sidecar and, for the Numba backend, ``<model>.npz``.
A runtime refuses a model whose file hash, inputs, outputs or embedded metadata disagree with its sidecar, with a
message that says what, where, expected, found, and what to do.

    {"format": "robonav.model/1", "model_file": "policy.onnx", "model_sha256": "...", "precision": "fp32",
     "checkpoint_sha256": "...", "observation": "preprocessor", "observation_spec": {...}, "obs_dim": 651,
     "action_limits": [0.5, 2.0], "control_period": 0.1, "state_layers": 1, "hidden": 128,
     "inputs": [{"name": "obs", "dtype": "float32", "shape": [1, 651]}, ...], "outputs": [...],
     "opset": 20, "ir_version": 10, "extra": {...}}

``extra`` holds what tools add and no runtime checks: the producer, parity results, calibration settings.
The same facts (minus the hashes of the file itself) are embedded in the ONNX metadata_props under
``robonav.*`` keys (`metadata_props`), so a model separated from its sidecar still says what it is.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from robonav.errors import UserError

__all__ = [
    "FORMAT", "INPUT_NAMES", "OUTPUT_NAMES", "PRECISIONS", "ModelHashError", "ModelIOError", "ModelMetadataError",
    "ModelRefusedError", "ModelSidecar", "SidecarError", "TensorSpec", "check_io", "check_metadata", "file_sha256",
    "metadata_props", "read_sidecar", "sidecar_path", "weights_path", "write_sidecar",
]

FORMAT = "robonav.model/1"
INPUT_NAMES = ("obs", "h_in", "c_in")
OUTPUT_NAMES = ("action", "h_out", "c_out")
PRECISIONS = ("fp32", "fp16", "int8")
_META = "robonav."


class ModelRefusedError(UserError, ValueError):
    """A model (or its sidecar) that a runtime must not run; subclasses say which check failed."""


class SidecarError(ModelRefusedError):
    """The sidecar ``<model>.json`` is missing, not JSON, of another format, or lacks or mistypes a field."""


class ModelHashError(ModelRefusedError):
    """The model file is not the one its sidecar describes (sha256 differs)."""


class ModelIOError(ModelRefusedError):
    """The model lacks an input or output of the step-model contract, or has another dtype or shape."""


class ModelMetadataError(ModelRefusedError):
    """The model's embedded robonav metadata is missing or disagrees with the sidecar."""


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of the step model."""

    name: str
    """Tensor name (DESIGN.md: obs, h_in, c_in -> action, h_out, c_out)."""
    dtype: str
    """NumPy dtype name; every step-model tensor is 'float32' whatever the precision inside."""
    shape: tuple[int, ...]
    """Static shape."""

    def describe(self) -> str:
        return f"{self.name} {self.dtype} {list(self.shape)}"


def step_io(obs_dim: int, state_layers: int, hidden: int, actions: int = 2
            ) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The inputs and outputs the step-model contract fixes for these sizes (batch 1, static shapes)."""
    state = (state_layers, 1, hidden)
    inputs = (TensorSpec("obs", "float32", (1, obs_dim)), TensorSpec("h_in", "float32", state),
              TensorSpec("c_in", "float32", state))
    outputs = (TensorSpec("action", "float32", (1, actions)), TensorSpec("h_out", "float32", state),
               TensorSpec("c_out", "float32", state))
    return inputs, outputs


@dataclass(frozen=True)
class ModelSidecar:
    """Everything a runtime reads about one model file (DESIGN.md "Model sidecar")."""

    model_file: str
    """File name (no folder) of the model this sidecar describes, in the same folder."""
    model_sha256: str
    """sha256 of the model file."""
    precision: str
    """'fp32', 'fp16' or 'int8' (what runs inside; the I/O is float32 for all)."""
    checkpoint_sha256: str
    """sha256 of the training checkpoint the model was exported from."""
    observation: str
    """Observation builder the policy was trained on: 'preprocessor' or 'plain' (robonav.sim.config)."""
    observation_spec: dict[str, Any] | None
    """ObservationSpec.to_dict() of the preprocessor (None for the 'plain' builder)."""
    obs_dim: int
    """Length D of the observation vector."""
    action_limits: tuple[float, float]
    """[v_max m/s, omega_max rad/s]: the action is clamped to +- these."""
    control_period: float
    """Control period (s) the policy was trained at; the runtime runs at it."""
    state_layers: int
    """L of the recurrent state [L, 1, H] (a separate critic's rows included; they pass through)."""
    hidden: int
    """H of the recurrent state."""
    inputs: tuple[TensorSpec, ...]
    """Model inputs, in order."""
    outputs: tuple[TensorSpec, ...]
    """Model outputs, in order."""
    opset: int
    """ONNX opset of the default domain."""
    ir_version: int
    """ONNX IR version."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Tool-written facts no runtime checks: producer versions, parity, calibration, source model."""

    def __post_init__(self) -> None:
        where = f"sidecar of {self.model_file!r}"
        if self.precision not in PRECISIONS:
            raise SidecarError(f"{where}: precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.observation not in ("preprocessor", "plain"):
            raise SidecarError(f"{where}: observation must be 'preprocessor' or 'plain', got {self.observation!r}")
        for name in ("obs_dim", "state_layers", "hidden", "opset", "ir_version"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SidecarError(f"{where}: {name} must be an integer >= 1, got {v!r}")
        if not (isinstance(self.control_period, (int, float)) and math.isfinite(self.control_period)
                and self.control_period > 0):
            raise SidecarError(f"{where}: control_period must be a number of seconds > 0, got {self.control_period!r}")
        if len(self.action_limits) != 2 or not all(isinstance(x, (int, float)) and x > 0 for x in self.action_limits):
            raise SidecarError(f"{where}: action_limits must be [v_max, omega_max] > 0, got {self.action_limits!r}")
        want_in, want_out = step_io(self.obs_dim, self.state_layers, self.hidden, len(self.action_limits))
        if self.inputs != want_in or self.outputs != want_out:
            raise SidecarError(
                f"{where}: inputs/outputs {[t.describe() for t in self.inputs + self.outputs]} do not follow the "
                f"step-model contract for obs_dim={self.obs_dim}, state [{self.state_layers}, 1, {self.hidden}]: "
                f"expected {[t.describe() for t in want_in + want_out]}; re-export the model")
        if self.observation_spec is not None:
            from robonav.sensors.spec import ObservationSpec  # floor 1: numpy only

            try:
                size = ObservationSpec.from_dict(self.observation_spec).size
            except (ValueError, TypeError, KeyError) as e:
                raise SidecarError(f"{where}: observation_spec is not valid for this robonav ({e})") from e
            if size != self.obs_dim:
                raise SidecarError(f"{where}: observation_spec describes {size} floats but obs_dim is "
                                   f"{self.obs_dim}; the sidecar was edited or written by a broken tool")

    @property
    def state_shape(self) -> tuple[int, int, int]:
        """Shape [L, 1, H] of h and c."""
        return (self.state_layers, 1, self.hidden)

    def with_extra(self, **items: Any) -> ModelSidecar:
        """A copy with ``items`` merged into ``extra``."""
        return replace(self, extra={**self.extra, **items})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["format"] = FORMAT
        d["action_limits"] = list(self.action_limits)
        d["inputs"] = [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape)} for t in self.inputs]
        d["outputs"] = [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape)} for t in self.outputs]
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "sidecar") -> ModelSidecar:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise SidecarError(f"{where}: expected format {FORMAT!r}, found {found!r}: not a robonav model sidecar, "
                               "or one from an incompatible version; re-export the model")
        names = {f for f in cls.__dataclass_fields__}
        missing = sorted(names - set(data) - {"extra"})
        unknown = sorted(set(data) - names - {"format"})
        if missing or unknown:
            raise SidecarError(f"{where}: missing field(s) {missing}, unknown field(s) {unknown}; expected the fields "
                               f"{sorted(names)}; re-export the model")
        try:
            fields = {k: data[k] for k in names if k in data}
            fields["action_limits"] = tuple(float(x) for x in data["action_limits"])
            for key in ("inputs", "outputs"):
                fields[key] = tuple(TensorSpec(str(t["name"]), str(t["dtype"]), tuple(int(s) for s in t["shape"]))
                                    for t in data[key])
            return cls(**fields)
        except (TypeError, KeyError, ValueError) as e:
            if isinstance(e, SidecarError):
                raise
            raise SidecarError(f"{where}: a field has the wrong type ({type(e).__name__}: {e})") from e


def sidecar_path(model: str | os.PathLike[str]) -> Path:
    """``<model>.json`` beside ``model`` (policy.int8.onnx -> policy.int8.json)."""
    return Path(model).with_suffix(".json")


def weights_path(model: str | os.PathLike[str]) -> Path:
    """``<model>.npz`` beside ``model``: the weights for the Numba backend (written by export)."""
    return Path(model).with_suffix(".npz")


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 hex digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_sidecar(model: str | os.PathLike[str], sidecar: ModelSidecar) -> Path:
    """Write ``<model>.json`` atomically (temporary file in the same folder, then rename)."""
    path = sidecar_path(model)
    text = json.dumps(sidecar.to_dict(), indent=1, sort_keys=True) + "\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # plain open(): the usual file mode, unlike mkstemp
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_sidecar(model: str | os.PathLike[str], check_hash: bool = True) -> ModelSidecar:
    """The sidecar of ``model``; refuses a missing or malformed one and (``check_hash``) a model file whose
    sha256 differs from the recorded one."""
    model = Path(model)
    path = sidecar_path(model)
    if not path.is_file():
        raise SidecarError(f"{model}: no sidecar {path.name} beside it; a runtime needs it to know the observation "
                           "layout, limits and period: export the model with `robonav export` (or quantize it with "
                           "`robonav quantize`), which writes both")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SidecarError(f"{path}: not readable JSON ({e}); re-export the model") from e
    sidecar = ModelSidecar.from_dict(data, str(path))
    if sidecar.model_file != model.name:
        raise SidecarError(f"{path}: describes model file {sidecar.model_file!r}, not {model.name!r}; a renamed "
                           "model must keep its sidecar's name in step: re-export or rename both together")
    if check_hash:
        if not model.is_file():
            raise ModelHashError(f"{model}: no such model file (its sidecar {path.name} exists)")
        found = file_sha256(model)
        if found != sidecar.model_sha256:
            raise ModelHashError(f"{model}: sha256 {found[:16]}... differs from the sidecar's "
                                 f"{sidecar.model_sha256[:16]}...: the model file was changed or replaced after "
                                 "export; re-export it (or restore the matching file)")
    return sidecar


def metadata_props(sidecar: ModelSidecar) -> dict[str, str]:
    """The ``robonav.*`` metadata_props export embeds in the model (strings, JSON where structured)."""
    return {
        f"{_META}format": FORMAT,
        f"{_META}precision": sidecar.precision,
        f"{_META}checkpoint_sha256": sidecar.checkpoint_sha256,
        f"{_META}observation": sidecar.observation,
        f"{_META}observation_spec": json.dumps(sidecar.observation_spec, sort_keys=True),
        f"{_META}obs_dim": str(sidecar.obs_dim),
        f"{_META}action_limits": json.dumps(list(sidecar.action_limits)),
        f"{_META}control_period": repr(float(sidecar.control_period)),
        f"{_META}state": json.dumps({"layers": sidecar.state_layers, "hidden": sidecar.hidden}),
    }


def check_metadata(model: str | os.PathLike[str], sidecar: ModelSidecar, found: dict[str, str]) -> None:
    """Refuse a model whose embedded metadata lacks a robonav key or disagrees with its sidecar."""
    expected = metadata_props(sidecar)
    missing = sorted(k for k in expected if k not in found)
    if missing:
        raise ModelMetadataError(f"{model}: metadata_props lacks {missing}: the model was not written by robonav "
                                 "export/quantize (or its metadata was stripped by another tool); re-export it")
    for key, want in expected.items():
        got = found[key]
        if key.endswith(("observation_spec", "action_limits", "state")):
            same = json.loads(got) == json.loads(want)
        elif key.endswith("control_period"):
            same = float(got) == float(want)
        else:
            same = got == want
        if not same:
            raise ModelMetadataError(f"{model}: metadata {key} is {got[:120]!r} but the sidecar says {want[:120]!r}; "
                                     "the model and sidecar come from different exports: re-export both together")


def check_io(model: str | os.PathLike[str], expected: tuple[TensorSpec, ...], found: list[TensorSpec],
             kind: str) -> None:
    """Refuse a model whose inputs (or outputs, ``kind``) differ from the contract by name, dtype or shape."""
    by_name = {t.name: t for t in found}
    for want in expected:
        got = by_name.get(want.name)
        if got is None:
            raise ModelIOError(f"{model}: {kind} {want.name!r} is missing; expected {want.describe()}, the model has "
                               f"{[t.describe() for t in found]}: it does not follow the robonav step-model contract "
                               "(DESIGN.md); export it with `robonav export`")
        if got.dtype != want.dtype or got.shape != want.shape:
            raise ModelIOError(f"{model}: {kind} {want.name!r} expected {want.dtype} {list(want.shape)}, actual "
                               f"{got.dtype} {list(got.shape)}: the model was exported for another observation or "
                               "state size (or with dynamic axes); re-export it from the checkpoint")
    extra = sorted(set(by_name) - {t.name for t in expected})
    if extra:
        raise ModelIOError(f"{model}: unexpected {kind}(s) {extra}; the step model has exactly "
                           f"{[t.name for t in expected]}")
