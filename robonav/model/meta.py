"""PolicyMeta: what every reader of a trained policy agrees on, as one frozen dataclass.

A checkpoint, its ONNX export, a quantized model, a TensorRT engine, the runtime's backends, the loop, eval and HIL
all describe the same policy by the same facts: the observation layout (an ObservationSpec, or None for the
simulator's 'plain' observer), the action limits, the control period, the head, the recurrent state's shape, the
precision the model computes in and the hashes of the files it came from. `to_dict` / `from_dict` are the one place
these facts become JSON and come back (the sidecar, robonav.model.sidecar, adds the file's own facts around them).

    >>> meta = PolicyMeta(observation_spec=None, obs_dim=40, action_limits=(0.5, 2.0), control_period=0.1,
    ...                   head="gaussian", state_layers=1, hidden=64)
    >>> meta.observation, meta.state_shape
    ('plain', (1, 1, 64))
    >>> PolicyMeta.from_dict(meta.to_dict()) == meta
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from robonav.errors import UserError
from robonav.model.heads import HEADS

if TYPE_CHECKING:  # robonav.sensors loads numba: imported where a spec is built, so the registry stays engine-free
    from robonav.sensors.spec import ObservationSpec, PreprocessorConfig

__all__ = ["FIELDS", "PRECISIONS", "ModelRefusedError", "PolicyMeta", "PolicyMetaError", "observation_spec"]

PRECISIONS = ("fp32", "fp16", "int8")
OBSERVATIONS = ("preprocessor", "plain")
HASHES = ("checkpoint_sha256", "model_sha256", "weights_sha256")
FIELDS = ("observation", "observation_spec", "obs_dim", "action_limits", "control_period", "head", "state_layers",
          "hidden", "precision", *HASHES)
"""Keys of `PolicyMeta.to_dict`."""
OPTIONAL = ("head", "weights_sha256")
"""Keys sidecars written before robonav recorded them lack (read as None and '')."""


class ModelRefusedError(UserError, ValueError):
    """A model (or its metadata) that must not run; subclasses say which check failed."""


class PolicyMetaError(ModelRefusedError):
    """A policy's metadata lacks or mistypes a field, or contradicts itself."""


def observation_spec(kind: str, preprocessor: PreprocessorConfig, v_max: float, omega_max: float
                     ) -> ObservationSpec | None:
    """The layout the simulator's observer ``kind`` writes for a robot with these limits, without building it:
    the Preprocessor's ObservationSpec (its command block scaled by the robot's v_max, omega_max), or None for
    'plain' (robonav.sim.observation.make_observer builds the same)."""
    if kind == "plain":
        return None
    if kind != "preprocessor":
        raise PolicyMetaError(f"observation {kind!r}: expected one of {OBSERVATIONS}")
    from robonav.sensors.spec import ObservationSpec

    if (preprocessor.v_max, preprocessor.omega_max) != (v_max, omega_max):
        preprocessor = replace(preprocessor, v_max=v_max, omega_max=omega_max)
    return ObservationSpec(preprocessor)


def _limits(value: Any) -> tuple[float, float]:
    """(v_max, omega_max) from a JSON list; a ValueError for another length."""
    v_max, omega_max = (float(x) for x in value)
    return v_max, omega_max


@dataclass(frozen=True)
class PolicyMeta:
    """The typed contract of one trained policy (docs/design.md "Model sidecar")."""

    observation_spec: ObservationSpec | None
    """Layout of the Preprocessor's observation the policy reads; None: the simulator's 'plain' observer."""
    obs_dim: int
    """Length D of the observation vector."""
    action_limits: tuple[float, float]
    """(v_max m/s, omega_max rad/s): the action is clamped to +- these."""
    control_period: float
    """Control period (s) the policy was trained at; the runtime runs at it."""
    head: str | None
    """'gaussian' (actor-critic) or 'argmax' (Q network), robonav.model.heads; None in sidecars written before
    robonav recorded it."""
    state_layers: int
    """L of the recurrent state [L, 1, H] (a separate critic's rows included; they pass through)."""
    hidden: int
    """H of the recurrent state."""
    precision: str = "fp32"
    """'fp32', 'fp16' or 'int8': what runs inside the model (its I/O is float32 for all)."""
    checkpoint_sha256: str = ""
    """sha256 of the training checkpoint the policy comes from."""
    model_sha256: str = ""
    """sha256 of the model file (.onnx or .engine); empty for a checkpoint."""
    weights_sha256: str = ""
    """sha256 of the weights file ``<model>.npz`` export writes; empty where there is none (quantized, engines)."""

    def __post_init__(self) -> None:
        where = "policy metadata"
        if self.precision not in PRECISIONS:
            raise PolicyMetaError(f"{where}: precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name in ("obs_dim", "state_layers", "hidden"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise PolicyMetaError(f"{where}: {name} must be an integer >= 1, got {v!r}")
        if not (isinstance(self.control_period, (int, float)) and math.isfinite(self.control_period)
                and self.control_period > 0):
            raise PolicyMetaError(f"{where}: control_period must be a number of seconds > 0, got "
                                  f"{self.control_period!r}")
        if len(self.action_limits) != 2 or not all(isinstance(x, (int, float)) and x > 0 for x in self.action_limits):
            raise PolicyMetaError(f"{where}: action_limits must be (v_max, omega_max) > 0, got {self.action_limits!r}")
        if self.head is not None and self.head not in HEADS:
            raise PolicyMetaError(f"{where}: head must be one of {sorted(HEADS)}, got {self.head!r}")
        if self.observation_spec is not None:
            from robonav.sensors.spec import ObservationSpec

            if not isinstance(self.observation_spec, ObservationSpec):
                raise PolicyMetaError(f"{where}: observation_spec must be an ObservationSpec or None, got "
                                      f"{type(self.observation_spec).__name__}")
            if self.observation_spec.size != self.obs_dim:
                raise PolicyMetaError(f"{where}: observation_spec describes {self.observation_spec.size} floats but "
                                      f"obs_dim is {self.obs_dim}; the metadata was edited or written by a broken tool")
        for name in HASHES:
            if not isinstance(getattr(self, name), str):
                raise PolicyMetaError(f"{where}: {name} must be a hex string ('' if none), got "
                                      f"{getattr(self, name)!r}")

    @property
    def observation(self) -> Literal["preprocessor", "plain"]:
        """The observation builder: 'preprocessor' when there is a spec, else 'plain'."""
        return "plain" if self.observation_spec is None else "preprocessor"

    @property
    def state_shape(self) -> tuple[int, int, int]:
        """Shape [L, 1, H] of h and c."""
        return (self.state_layers, 1, self.hidden)

    @property
    def actions(self) -> int:
        """A: the length of the action (v, omega)."""
        return len(self.action_limits)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; the observation builder is written beside its spec for a reader's eye."""
        return {
            "observation": self.observation,
            "observation_spec": None if self.observation_spec is None else self.observation_spec.to_dict(),
            "obs_dim": self.obs_dim, "action_limits": list(self.action_limits),
            "control_period": self.control_period, "head": self.head, "state_layers": self.state_layers,
            "hidden": self.hidden, "precision": self.precision, "checkpoint_sha256": self.checkpoint_sha256,
            "model_sha256": self.model_sha256, "weights_sha256": self.weights_sha256,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "policy metadata") -> PolicyMeta:
        """Rebuild from `to_dict` output (other keys are the caller's to check); raises PolicyMetaError saying
        which field is missing, mistyped or inconsistent, and where."""
        missing = [k for k in FIELDS if k not in data and k not in OPTIONAL]
        if missing:
            raise PolicyMetaError(f"{where}: missing field(s) {missing}; re-export the model")
        from robonav.sensors.spec import ObservationSpec, ObservationSpecError, PreprocessorConfigError

        mode, spec = data["observation"], data["observation_spec"]
        if mode not in OBSERVATIONS or (mode == "plain") != (spec is None):
            raise PolicyMetaError(f"{where}: observation {mode!r} with observation_spec "
                                  f"{'null' if spec is None else 'set'}: expected 'preprocessor' with a spec or "
                                  "'plain' with null; the metadata was edited or written by a broken tool")
        try:
            return cls(
                observation_spec=None if spec is None else ObservationSpec.from_dict(spec),
                obs_dim=data["obs_dim"], action_limits=_limits(data["action_limits"]),
                control_period=data["control_period"], head=data.get("head"), state_layers=data["state_layers"],
                hidden=data["hidden"], precision=data["precision"], checkpoint_sha256=data["checkpoint_sha256"],
                model_sha256=data["model_sha256"], weights_sha256=data.get("weights_sha256") or "")
        except PolicyMetaError as e:
            raise PolicyMetaError(str(e).replace("policy metadata", where, 1)) from e
        except (ObservationSpecError, PreprocessorConfigError) as e:
            raise PolicyMetaError(f"{where}: observation_spec is not valid for this robonav ({e})") from e
        except (TypeError, ValueError, AttributeError) as e:
            raise PolicyMetaError(f"{where}: a field has the wrong type ({type(e).__name__}: {e})") from e
