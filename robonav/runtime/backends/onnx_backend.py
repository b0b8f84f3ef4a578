"""The ONNX Runtime backend: a step model (FP32, FP16 or INT8 QDQ), hidden state kept inside.

Execution providers: ``providers`` names them in priority order, ``cpu`` (default), ``cuda`` and ``tensorrt``
(CPUExecutionProvider, CUDAExecutionProvider, TensorrtExecutionProvider; the GPU ones come with
``onnxruntime-gpu``, on a Jetson with its JetPack build). A provider this ONNX Runtime lacks, or one the session
dropped while loading (ONNX Runtime otherwise falls back to the CPU with a warning), is refused: on the robot, doubt
means stop. ONNX Runtime still runs on the CPU the nodes a GPU provider does not take.

ONNX Runtime is stateless, so the state goes in and out of every run explicitly (onnxruntime issue 11085): the
backend feeds its h, c as ``h_in``, ``c_in`` and keeps ``h_out``, ``c_out`` for the next step. Opening checks the
model against its sidecar: file hash, the inputs and outputs by name, dtype and shape, and the embedded
``robonav.*`` metadata; any mismatch refuses the model with the reason (robonav.model.sidecar).

`OnnxPolicy` drives N simulated robots for evaluation (the Policy protocol of robonav.eval.runner): one shared
session, one backend (state) per env, stepped in turn at batch 1 — the same graph and call the robot runs.

onnxruntime is imported when a backend opens, never at import time (robonav.runtime's import floor).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from robonav.errors import UserError
from robonav.model.sidecar import (
    OUTPUT_NAMES,
    ModelRefusedError,
    ModelSidecar,
    TensorSpec,
    check_file_hash,
    check_io,
    check_metadata,
    read_sidecar,
    sidecar_path,
)
from robonav.runtime.backends.base import Backend, BackendError, BackendStateError

__all__ = ["PROVIDERS", "OnnxBackend", "OnnxLoadError", "OnnxPolicy", "OrtProviderError", "load_session",
           "resolve_providers"]

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
"""The ``providers`` names the ort backend takes -> ONNX Runtime's execution provider."""
_GPU_INSTALL = "pip install onnxruntime-gpu (in place of onnxruntime; on a Jetson, the JetPack build of it)"


class OnnxLoadError(ModelRefusedError):
    """ONNX Runtime cannot load the model file: not ONNX, damaged, or using what this ONNX Runtime lacks."""


class OrtProviderError(UserError, BackendError):
    """An execution provider that is unknown, not in this ONNX Runtime, or dropped by the session."""


def resolve_providers(names: tuple[str, ...] | list[str], available: list[str]) -> list[str]:
    """ONNX Runtime provider names for ``names`` (cpu, cuda, tensorrt; priority order), each checked against
    ``available`` (onnxruntime.get_available_providers()); OrtProviderError with what to do otherwise."""
    if not names:
        raise OrtProviderError(f"ort_providers is empty; expected one or more of {list(PROVIDERS)}, e.g. [cpu]")
    unknown = [n for n in names if n not in PROVIDERS]
    if unknown:
        raise OrtProviderError(f"ort_providers {list(names)}: unknown {unknown}; expected names from "
                               f"{list(PROVIDERS)}")
    wanted = list(dict.fromkeys(PROVIDERS[n] for n in names))
    missing = [p for p in wanted if p not in available]
    if missing:
        raise OrtProviderError(f"ort_providers {list(names)} asks for {missing}, which this ONNX Runtime lacks "
                               f"(available: {available}): {_GPU_INSTALL}, or set ort_providers: [cpu]")
    return wanted

_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
               "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(uint8)": "uint8",
               "tensor(bool)": "bool"}


def _specs(args: list[Any]) -> list[TensorSpec]:
    """ORT NodeArgs -> TensorSpec; a dynamic (named or unknown) dimension becomes -1, so it never matches."""
    return [TensorSpec(a.name, _ORT_DTYPES.get(a.type, a.type),
                       tuple(d if isinstance(d, int) else -1 for d in a.shape)) for a in args]


def load_session(model: str | os.PathLike[str], sidecar: ModelSidecar, threads: int = 1,
                 providers: tuple[str, ...] | list[str] = ("cpu",)) -> Any:
    """An ``onnxruntime.InferenceSession`` on ``threads`` CPU threads and ``providers`` (`resolve_providers`) for
    ``model``, after checking its hash, inputs, outputs and metadata against ``sidecar`` (raises a
    ModelRefusedError subclass; OrtProviderError for providers it cannot have)."""
    import onnxruntime as ort

    model = Path(model)
    wanted = resolve_providers(providers, ort.get_available_providers())
    check_file_hash(model, sidecar.model_sha256, "model", sidecar_path(model))
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: FP16 models on a CPU log a warning per inserted cast
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

    refused = (ort_errors.Fail, ort_errors.InvalidArgument, ort_errors.InvalidGraph, ort_errors.InvalidProtobuf,
               ort_errors.NoSuchFile, ort_errors.NotImplemented)
    try:
        session = ort.InferenceSession(str(model), options, providers=wanted)
    except refused as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise OnnxLoadError(f"{model}: ONNX Runtime cannot load it ({reason}); expected an ONNX step model as "
                            "`robonav export` writes it: re-export it, or copy the file again") from e
    dropped = [p for p in wanted if p not in session.get_providers()]
    if dropped:
        raise OrtProviderError(f"{model}: ONNX Runtime dropped {dropped} while loading it (session has "
                               f"{session.get_providers()}; its log says why: a CUDA, cuDNN or TensorRT library it "
                               "could not load): fix that install, or set ort_providers: [cpu]")
    check_io(model, sidecar.inputs, _specs(session.get_inputs()), "input")
    check_io(model, sidecar.outputs, _specs(session.get_outputs()), "output")
    check_metadata(model, sidecar, dict(session.get_modelmeta().custom_metadata_map))
    return session


class OnnxBackend(Backend):
    """A step model in ONNX Runtime for one robot: ``step(obs) -> action``, state inside."""

    def __init__(self, model: str | os.PathLike[str], threads: int = 1, sidecar: ModelSidecar | None = None,
                 providers: tuple[str, ...] | list[str] = ("cpu",)) -> None:
        self.path = Path(model)
        super().__init__(sidecar if sidecar is not None else read_sidecar(self.path, check_hash=False))
        self.threads = threads
        self.providers = tuple(providers)
        self._session: Any = None
        self._feed: dict[str, np.ndarray] = {}

    def _open(self) -> None:
        if self._session is None:
            self._session = load_session(self.path, self.sidecar, self.threads, self.providers)
        shape = self.sidecar.state_shape
        self._feed = {"h_in": np.zeros(shape, np.float32), "c_in": np.zeros(shape, np.float32)}

    def _reset(self) -> None:
        self._feed["h_in"] = np.zeros(self.sidecar.state_shape, np.float32)
        self._feed["c_in"] = np.zeros(self.sidecar.state_shape, np.float32)

    def _step(self, obs: np.ndarray) -> np.ndarray:
        self._feed["obs"] = obs
        action, self._feed["h_in"], self._feed["c_in"] = self._session.run(OUTPUT_NAMES, self._feed)
        return action

    def _close(self) -> None:
        self._session = None
        self._feed = {}

    def clone(self) -> OnnxBackend:
        """Another open backend on the same session (no second load), with its own zeroed state."""
        if not self.is_open:
            raise BackendStateError(f"{self.name}: clone() needs an open backend; call open() first")
        other = OnnxBackend(self.path, self.threads, self.sidecar, self.providers)
        other._session = self._session
        return other.open()


class OnnxPolicy:
    """N robots on one ONNX model, for evaluation: ``act(obs [N, D]) -> [N, 2]`` commands (v m/s, omega rad/s).

    Implements robonav.eval.runner.Policy; ``reset(env_ids)`` zeroes those envs' state.
    """

    def __init__(self, model: str | os.PathLike[str], num_envs: int, threads: int = 1) -> None:
        first = OnnxBackend(model, threads).open()
        self.backends = [first] + [first.clone() for _ in range(num_envs - 1)]
        self.sidecar = first.sidecar

    def reset(self, env_ids: np.ndarray) -> None:
        for i in np.asarray(env_ids, dtype=np.int64).reshape(-1):
            self.backends[int(i)].reset()

    def act(self, obs: np.ndarray, frames: Any = None, sim: Any = None) -> np.ndarray:
        out = np.empty((len(self.backends), len(self.sidecar.action_limits)), dtype=np.float64)
        for i, backend in enumerate(self.backends):
            out[i] = backend.step(obs[i])
        return out

    def close(self) -> None:
        for backend in self.backends:
            backend.close()
