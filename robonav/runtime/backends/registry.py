"""Backends by name: ``open_backend("ort" | "numba" | "torch" | "trt", model, **kw)`` -> an open Backend.

Each backend lives in its own module and its engine (onnxruntime, torch, TensorRT) is imported only when that
backend is asked for, so the on-robot loop carries only what it runs. A backend whose module or engine is absent
fails with `BackendUnavailableError`, naming the missing module and what to install.

    kind    class                      engine        install
    ort     onnx_backend.OnnxBackend   onnxruntime   pip install robonav[deploy]
    numba   numba_backend.NumbaBackend numba         pip install robonav (core)
    torch   torch_backend.TorchBackend torch         pip install robonav[train]
    trt     trt_backend.TrtBackend     tensorrt      JetPack's TensorRT + pip install robonav[trt]

``model`` is the step model the backend reads: the ``.onnx`` (ort; numba and torch read the ``<model>.npz`` and
sidecar beside it) or the ``.engine`` (trt).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from robonav.errors import UserError
from robonav.runtime.backends.base import Backend, BackendError

__all__ = ["BACKENDS", "BackendInfo", "BackendUnavailableError", "backend_class", "open_backend"]


class BackendUnavailableError(UserError, BackendError):
    """A backend that cannot run here: its robonav module or its engine is not installed, or no device for it."""


@dataclass(frozen=True)
class BackendInfo:
    """Where a backend lives and what it needs."""

    module: str
    """robonav module holding the class."""
    cls: str
    """Backend class name."""
    engine: str
    """Top-level module of its inference engine."""
    install: str
    """What to install for it, said in the error when it is absent."""


BACKENDS: dict[str, BackendInfo] = {
    "ort": BackendInfo("robonav.runtime.backends.onnx_backend", "OnnxBackend", "onnxruntime",
                       "pip install 'robonav[deploy]'"),
    "numba": BackendInfo("robonav.runtime.backends.numba_backend", "NumbaBackend", "numba", "pip install robonav"),
    "torch": BackendInfo("robonav.runtime.backends.torch_backend", "TorchBackend", "torch",
                         "pip install torch (see the README), then 'robonav[train]'"),
    "trt": BackendInfo("robonav.runtime.backends.trt_backend", "TrtBackend", "tensorrt",
                       "JetPack's TensorRT (apt, a venv with --system-site-packages) and pip install 'robonav[trt]'"),
}
"""Backend kinds, by the name --backend takes."""


def _engine_present(info: BackendInfo) -> bool:
    """Whether the engine module is importable (TensorRT: a real one, not tensorrt-stubs' empty package)."""
    if importlib.util.find_spec(info.engine) is None:
        return False
    if info.engine == "tensorrt":  # tensorrt-stubs makes `import tensorrt` succeed without TensorRT
        return hasattr(importlib.import_module("tensorrt"), "Builder")
    return True


def backend_class(kind: str) -> Callable[..., Backend]:
    """The Backend subclass of ``kind``, after checking its module and engine are installed."""
    info = BACKENDS.get(kind)
    if info is None:
        raise BackendUnavailableError(f"unknown backend {kind!r}; expected one of {', '.join(BACKENDS)}")
    if not _engine_present(info):
        raise BackendUnavailableError(f"backend {kind!r} needs the module {info.engine!r}, which is not installed "
                                      f"here: {info.install}, or choose another backend ({', '.join(BACKENDS)})")
    try:
        module = importlib.import_module(info.module)
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] != "robonav":
            raise BackendUnavailableError(f"backend {kind!r} ({info.module}) needs the module {e.name!r}, which "
                                          f"is not installed here: {info.install}") from e
        raise BackendUnavailableError(f"backend {kind!r}: {e.name} is not part of this robonav install; "
                                      f"upgrade robonav or choose another backend ({', '.join(BACKENDS)})") from e
    cls: Callable[..., Backend] = getattr(module, info.cls)
    return cls


def open_backend(kind: str, model: str | os.PathLike[str], **kw: Any) -> Backend:
    """An open backend of ``kind`` on ``model`` (checked against its sidecar); ``kw`` goes to the class
    (ort: threads; torch: device; ...). Close it (or use `with`) when done."""
    return backend_class(kind)(model, **kw).open()
