"""The model sidecar ``<model>.json``: a policy's PolicyMeta and the facts of its model file, and the checks a
runtime runs on them.

Export, quantize and engine build write one beside every ``.onnx`` / ``.engine`` (docs/design.md "Model sidecar"). The
on-robot path reads only the model file, this sidecar and, for the Numba and PyTorch backends, ``<model>.npz``. A
runtime refuses a model whose file hash, weights hash, inputs, outputs or embedded metadata disagree with its
sidecar, with a message that says what, where, expected, found, and what to do.

    {"format": "robonav.model/1", "model_file": "policy.onnx", "model_sha256": "...", "weights_sha256": "...",
     "precision": "fp32", "checkpoint_sha256": "...", "observation": "preprocessor", "observation_spec": {...},
     "obs_dim": 651, "action_limits": [0.5, 2.0], "control_period": 0.1, "head": "gaussian", "state_layers": 1,
     "hidden": 128, "inputs": [{"name": "obs", "dtype": "float32", "shape": [1, 651]}, ...], "outputs": [...],
     "opset": 20, "ir_version": 10, "extra": {...}}

The policy's fields are PolicyMeta's (robonav.model.meta: its to_dict/from_dict); ``inputs``/``outputs`` follow
from them (the step-model contract), are written for a reader's eye and checked on reading. ``head`` and
``weights_sha256`` are absent from sidecars written before robonav recorded them (read as None and ''). ``extra``
holds what tools add and no runtime checks: the producer, parity results, calibration settings, engine facts.
The policy's facts (minus the hashes of the file itself) are embedded in the ONNX metadata_props under
``robonav.*`` keys (`metadata_props`), so a model separated from its sidecar still says what it is.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from robonav.atomic import write_text_atomic
from robonav.model.meta import FIELDS, OPTIONAL, PRECISIONS, ModelRefusedError, PolicyMeta, PolicyMetaError

__all__ = [
    "FORMAT", "INPUT_NAMES", "OUTPUT_NAMES", "PRECISIONS", "ModelHashError", "ModelIOError", "ModelMetadataError",
    "ModelRefusedError", "ModelSidecar", "SidecarError", "TensorSpec", "check_file_hash", "check_io",
    "check_metadata", "file_sha256", "metadata_props", "read_sidecar", "sidecar_path", "step_io", "weights_path",
    "write_sidecar",
]

FORMAT = "robonav.model/1"
INPUT_NAMES = ("obs", "h_in", "c_in")
OUTPUT_NAMES = ("action", "h_out", "c_out")
_META = "robonav."


class SidecarError(PolicyMetaError):
    """The sidecar ``<model>.json`` is missing, not JSON, of another format, or lacks or mistypes a field."""


class ModelHashError(ModelRefusedError):
    """A model or weights file is not the one its sidecar describes (sha256 differs), or is absent."""


class ModelIOError(ModelRefusedError):
    """The model lacks an input or output of the step-model contract, or has another dtype or shape."""


class ModelMetadataError(ModelRefusedError):
    """The model's embedded robonav metadata is missing or disagrees with the sidecar."""


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of the step model."""

    name: str
    """Tensor name (docs/design.md: obs, h_in, c_in -> action, h_out, c_out)."""
    dtype: str
    """NumPy dtype name; every step-model tensor is 'float32' whatever the precision inside."""
    shape: tuple[int, ...]
    """Static shape."""

    def describe(self) -> str:
        return f"{self.name} {self.dtype} {list(self.shape)}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


def step_io(obs_dim: int, state_layers: int, hidden: int, actions: int = 2
            ) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The inputs and outputs the step-model contract fixes for these sizes (batch 1, static shapes)."""
    state = (state_layers, 1, hidden)
    inputs = (TensorSpec("obs", "float32", (1, obs_dim)), TensorSpec("h_in", "float32", state),
              TensorSpec("c_in", "float32", state))
    outputs = (TensorSpec("action", "float32", (1, actions)), TensorSpec("h_out", "float32", state),
               TensorSpec("c_out", "float32", state))
    return inputs, outputs


@dataclass(frozen=True, kw_only=True)
class ModelSidecar(PolicyMeta):
    """A policy's PolicyMeta plus the facts of its model file: everything a runtime reads about one model."""

    model_file: str
    """File name (no folder) of the model this sidecar describes, in the same folder."""
    opset: int
    """ONNX opset of the default domain."""
    ir_version: int
    """ONNX IR version."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Tool-written facts no runtime checks: producer versions, parity, calibration, source model, engine."""

    def __post_init__(self) -> None:
        where = f"sidecar of {self.model_file!r}"
        try:
            super().__post_init__()
        except PolicyMetaError as e:
            raise SidecarError(str(e).replace("policy metadata", where, 1)) from e
        for name in ("opset", "ir_version"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SidecarError(f"{where}: {name} must be an integer >= 1, got {v!r}")

    @classmethod
    def for_policy(cls, meta: PolicyMeta, model_file: str, opset: int, ir_version: int,
                   extra: dict[str, Any] | None = None) -> ModelSidecar:
        """The sidecar of ``model_file`` holding ``meta``."""
        policy = {f.name: getattr(meta, f.name) for f in fields(PolicyMeta)}
        return cls(**policy, model_file=model_file, opset=opset, ir_version=ir_version, extra=dict(extra or {}))

    @property
    def policy(self) -> PolicyMeta:
        """The PolicyMeta part alone."""
        return PolicyMeta(**{f.name: getattr(self, f.name) for f in fields(PolicyMeta)})

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        """Model inputs, in order: the step-model contract for these sizes."""
        return step_io(self.obs_dim, self.state_layers, self.hidden, self.actions)[0]

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        """Model outputs, in order."""
        return step_io(self.obs_dim, self.state_layers, self.hidden, self.actions)[1]

    def with_extra(self, **items: Any) -> ModelSidecar:
        """A copy with ``items`` merged into ``extra``."""
        return replace(self, extra={**self.extra, **items})

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "model_file": self.model_file, **super().to_dict(),
                "inputs": [t.to_dict() for t in self.inputs], "outputs": [t.to_dict() for t in self.outputs],
                "opset": self.opset, "ir_version": self.ir_version, "extra": self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "sidecar") -> ModelSidecar:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise SidecarError(f"{where}: expected format {FORMAT!r}, found {found!r}: not a robonav model sidecar, "
                               "or one from an incompatible version; re-export the model")
        names = {*FIELDS, "model_file", "inputs", "outputs", "opset", "ir_version", "extra"}
        missing = sorted(names - set(data) - {"extra", *OPTIONAL})
        unknown = sorted(set(data) - names - {"format"})
        if missing or unknown:
            raise SidecarError(f"{where}: missing field(s) {missing}, unknown field(s) {unknown}; expected the fields "
                               f"{sorted(names)}; re-export the model")
        try:
            meta = PolicyMeta.from_dict(data, where)
            found = tuple(TensorSpec(str(t["name"]), str(t["dtype"]), tuple(int(s) for s in t["shape"]))
                          for t in [*data["inputs"], *data["outputs"]])
            sidecar = cls.for_policy(meta, data["model_file"], data["opset"], data["ir_version"],
                                     data.get("extra") or {})
        except SidecarError:
            raise
        except PolicyMetaError as e:
            raise SidecarError(str(e)) from e
        except (TypeError, KeyError, ValueError) as e:
            raise SidecarError(f"{where}: a field has the wrong type ({type(e).__name__}: {e})") from e
        want = sidecar.inputs + sidecar.outputs
        if found != want:
            raise SidecarError(
                f"{where}: inputs/outputs {[t.describe() for t in found]} do not follow the step-model contract for "
                f"obs_dim={sidecar.obs_dim}, state [{sidecar.state_layers}, 1, {sidecar.hidden}]: expected "
                f"{[t.describe() for t in want]}; re-export the model")
        return sidecar


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
    """Write ``<model>.json`` atomically (robonav.atomic: temporary file, fsync, rename, fsync of the folder)."""
    path = sidecar_path(model)
    write_text_atomic(path, json.dumps(sidecar.to_dict(), indent=1, sort_keys=True) + "\n")
    return path


def check_file_hash(path: str | os.PathLike[str], expected: str, what: str, sidecar: str | os.PathLike[str]) -> None:
    """Refuse ``path`` (the model or its weights, ``what``) when absent, when its sidecar records no hash for it,
    or when its sha256 differs from ``expected``; the message names the file and both hashes."""
    path = Path(path)
    side = Path(sidecar).name
    if not expected:
        raise ModelHashError(f"{path}: its sidecar {side} records no sha256 for the {what} (written by an older "
                             "robonav): nothing proves the file is the exported one; re-export the model with "
                             "`robonav export`")
    if not path.is_file():
        raise ModelHashError(f"{path}: no such {what} file (its sidecar {side} expects sha256 {expected}); copy it "
                             "with the model, or re-export")
    found = file_sha256(path)
    if found != expected:
        raise ModelHashError(f"{path}: {what} sha256 {found} differs from the sidecar's {expected} ({side}): the "
                             f"{what} file was changed or replaced after export; re-export it (or restore the "
                             "matching file)")


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
        check_file_hash(model, sidecar.model_sha256, "model", path)
    return sidecar


def metadata_props(sidecar: PolicyMeta) -> dict[str, str]:
    """The ``robonav.*`` metadata_props export embeds in the model (strings, JSON where structured)."""
    spec = None if sidecar.observation_spec is None else sidecar.observation_spec.to_dict()
    return {
        f"{_META}format": FORMAT,
        f"{_META}precision": sidecar.precision,
        f"{_META}checkpoint_sha256": sidecar.checkpoint_sha256,
        f"{_META}observation": sidecar.observation,
        f"{_META}observation_spec": json.dumps(spec, sort_keys=True),
        f"{_META}obs_dim": str(sidecar.obs_dim),
        f"{_META}action_limits": json.dumps(list(sidecar.action_limits)),
        f"{_META}control_period": repr(float(sidecar.control_period)),
        f"{_META}state": json.dumps({"layers": sidecar.state_layers, "hidden": sidecar.hidden}),
    }


def check_metadata(model: str | os.PathLike[str], sidecar: PolicyMeta, found: dict[str, str]) -> None:
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
                               "(docs/design.md); export it with `robonav export`")
        if got.dtype != want.dtype or got.shape != want.shape:
            raise ModelIOError(f"{model}: {kind} {want.name!r} expected {want.dtype} {list(want.shape)}, actual "
                               f"{got.dtype} {list(got.shape)}: the model was exported for another observation or "
                               "state size (or with dynamic axes); re-export it from the checkpoint")
    extra = sorted(set(by_name) - {t.name for t in expected})
    if extra:
        raise ModelIOError(f"{model}: unexpected {kind}(s) {extra}; the step model has exactly "
                           f"{[t.name for t in expected]}")
