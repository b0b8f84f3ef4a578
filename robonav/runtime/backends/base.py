"""The lifecycle every inference backend shares: ``open()`` -> ``reset()`` -> ``step(obs)`` ... -> ``close()``.

Only the observation goes in and only the action comes out; the recurrent state (h, c) lives inside the backend,
where it computes (host arrays for ONNX Runtime, device memory for TensorRT), and is zeroed by ``reset()``. The
loop that drives a backend owns the reset: on every episode or goal change (docs/design.md "Runtime backend").

    with OnnxBackend("policy.onnx") as policy:     # open() checks the model against its sidecar and resets
        action = policy.step(obs)                   # obs float32 [D] or [1, D] -> action float32 [A] (SI units)
        policy.reset()                              # new episode

Subclasses implement ``_open``, ``_reset``, ``_step`` and ``_close``; this base checks the lifecycle order and
the observation by dtype and shape at the boundary, with one fixed message (as Polygraphy's runners do).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import TypeVar

import numpy as np

from robonav.errors import RobonavError
from robonav.model.sidecar import ModelSidecar, TensorSpec

__all__ = ["Backend", "BackendError", "BackendStateError", "InputError", "check_input"]

_B = TypeVar("_B", bound="Backend")


class BackendError(RobonavError, RuntimeError):
    """Base of the errors an inference backend raises."""


class BackendStateError(BackendError):
    """A lifecycle call out of order: step or reset before open, or after close."""


class InputError(BackendError, ValueError):
    """An input whose dtype or shape differs from the model's."""


_F32 = np.dtype(np.float32)


def check_input(value: object, spec: TensorSpec, backend: str = "backend") -> np.ndarray:
    """``value`` as the C-contiguous array ``spec`` describes, or InputError saying what differs.

    The batch-1 axis may be left out (an observation [D] is taken as [1, D]); the dtype is never converted, so a
    float64 observation is a caller's bug reported here, not a silent cast on the robot.
    """
    if not isinstance(value, np.ndarray):
        raise InputError(f"{backend}: input {spec.name!r} expected a numpy array {spec.dtype} {list(spec.shape)}, "
                         f"actual {type(value).__name__}")
    if value.dtype != np.dtype(spec.dtype):
        raise InputError(f"{backend}: input {spec.name!r} expected dtype {spec.dtype}, actual {value.dtype}; "
                         f"convert it where it is made (the preprocessor writes {spec.dtype})")
    shape = tuple(value.shape)
    if shape != spec.shape and not (shape == spec.shape[1:] and spec.shape[0] == 1):
        raise InputError(f"{backend}: input {spec.name!r} expected shape {list(spec.shape)} (or "
                         f"{list(spec.shape[1:])}), actual {list(shape)}: the observation layout differs from the "
                         "model's ObservationSpec; build the preprocessor from the model's sidecar")
    return np.ascontiguousarray(value.reshape(spec.shape))


class Backend(ABC):
    """One policy on one inference engine, for one robot: recurrent state inside, obs in, action out."""

    def __init__(self, sidecar: ModelSidecar) -> None:
        self.sidecar = sidecar
        self._open_state = "new"  # new -> open -> closed
        spec = sidecar.inputs[0]
        self._obs_shape = tuple(spec.shape)  # the hot path's checks, without building messages or dtypes
        self._obs_flat = self._obs_shape[1:] if self._obs_shape[:1] == (1,) else None  # [D] stands for [1, D]
        self._obs_dtype = np.dtype(spec.dtype)

    @property
    def name(self) -> str:
        """Short label used in messages: the class and the model file."""
        return f"{type(self).__name__}({self.sidecar.model_file})"

    @property
    def obs_spec(self) -> TensorSpec:
        """The observation input: float32 [1, D]."""
        return self.sidecar.inputs[0]

    @property
    def is_open(self) -> bool:
        return self._open_state == "open"

    def open(self: _B) -> _B:
        """Load the model (checked against its sidecar), allocate the state, reset it; returns self."""
        if self._open_state == "open":
            return self
        if self._open_state == "closed":
            raise BackendStateError(f"{self.name}: open() after close(); make a new backend")
        self._open()
        self._open_state = "open"
        self.reset()
        return self

    def reset(self) -> None:
        """Zero the recurrent state: call on every new episode or goal."""
        self._require_open("reset")
        self._reset()

    def prewarm(self) -> None:
        """Run the step's work once where nothing it writes is kept (state and the last action untouched), so
        the next step finds the weights and the code hot; the control loop calls it just before a tick
        (LoopConfig.prewarm). Engines that cannot step without replacing their state do nothing (the default)."""
        return None

    def step(self, obs: np.ndarray) -> np.ndarray:
        """One control step: obs float32 [D] or [1, D] -> action float32 [A] (v m/s, omega rad/s)."""
        if self._open_state != "open":
            self._require_open("step")
        # The loop's case first (a C-contiguous float32 [1, D] or [D]), checked without allocating; anything else
        # goes through check_input, which says what differs.
        if (type(obs) is np.ndarray and obs.dtype == self._obs_dtype and obs.flags.c_contiguous
                and (obs.shape == self._obs_shape or obs.shape == self._obs_flat)):
            x = obs if obs.ndim == 2 else obs.reshape(self._obs_shape)
        else:
            x = check_input(obs, self.obs_spec, self.name)
        out = self._step(x)
        if type(out) is np.ndarray and out.dtype == _F32 and out.ndim == 1:
            return out
        return np.asarray(out, dtype=np.float32).reshape(-1)

    def close(self) -> None:
        """Release the engine and state; idempotent."""
        if self._open_state == "open":
            self._close()
        self._open_state = "closed"

    def __enter__(self: _B) -> _B:
        return self.open()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _require_open(self, what: str) -> None:
        if self._open_state != "open":
            hint = "call open() first (or use `with`)" if self._open_state == "new" else "it was closed"
            raise BackendStateError(f"{self.name}: {what}() on a backend that is not open; {hint}")

    @abstractmethod
    def _open(self) -> None:
        """Load the engine, check the model against the sidecar, allocate the state."""

    @abstractmethod
    def _reset(self) -> None:
        """Zero the recurrent state where it lives."""

    @abstractmethod
    def _step(self, obs: np.ndarray) -> np.ndarray:
        """obs float32 [1, D] (checked) -> action [1, A]; advance the state."""

    @abstractmethod
    def _close(self) -> None:
        """Release what _open took."""
