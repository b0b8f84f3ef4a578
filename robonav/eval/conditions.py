"""Named conditions: sensor, robot and world variations that any suite combines with (docs/design.md "Conditions").

A condition is data: a name and the dotted SimConfig overrides it makes, applied with the machinery of
``--set`` (`robonav.settings.apply_overrides`) on top of the evaluation config. The values are fixed here, so
nobody tunes a condition to a result:

    nominal      nothing changed (eval's nominal sensor with its noise, one tick of latency)
    dynamic      moving obstacles: 4 per free area of a 7x7 maze of 1 m cells, scaled with area; 0.3 to 1.0 m/s;
                 half of them oblivious to the robot (needs sim.dynamic)
    fov120       a 120-degree forward sensor
    fov90        a 90-degree forward sensor
    odom-harsh   2 % wheel-scale error and 0.01 rad/m heading drift (standard deviations of the per-episode draws)
    noisy        3 cm range noise, 8 % dropouts
    latency2     two ticks of command latency
    wide-robot   a robot of radius 0.21 m

Several conditions combine (``fov90,noisy``) when they set different keys; their names are recorded, in this
order, in the eval JSON and the episode list, so paired comparisons stay paired.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from typing import Any

from robonav.errors import UserError
from robonav.sim.config import DYNAMIC_DENSITY, SimConfig  # 4 movers in a 7x7 maze of 1 m cells (97 m^2 free)

__all__ = ["CONDITIONS", "DYNAMIC_DENSITY", "NOMINAL", "ConditionError", "apply_conditions", "apply_sim_settings",
           "parse_conditions"]

NOMINAL = "nominal"

CONDITIONS: dict[str, dict[str, Any]] = {
    NOMINAL: {},
    "dynamic": {"dynamic.density": DYNAMIC_DENSITY, "dynamic.speed": [0.3, 1.0], "dynamic.oblivious_fraction": 0.5},
    "fov120": {"scanner.fov_deg": 120.0},
    "fov90": {"scanner.fov_deg": 90.0},
    "odom-harsh": {"odometry.scale_std": 0.02, "odometry.heading_drift_std": 0.01},
    "noisy": {"scanner.noise_std": 0.03, "scanner.dropout": 0.08},
    "latency2": {"latency_ticks": 2},
    "wide-robot": {"robot.radius": 0.21},
}
"""Condition name -> dotted SimConfig overrides (keys below ``sim.``)."""

EVAL_KEYS = ("robot.", "scanner.", "odometry.", "safety.", "dynamic.", "latency_ticks", "substeps", "goal_radius",
             "time_limit_factor", "time_limit_extra", "raycaster", "preprocessor.laser_odometry",
             "preprocessor.guidance_budget")
"""Settings (below ``sim.``) that ``robonav eval --set`` may change: what the robot, its sensors and the world do.
The others belong to the policy (period, observation, preprocessor), to training (reward, maze sampling,
randomization: eval runs the nominal robot) or to the physics layout (slot_size), and are refused."""


class ConditionError(UserError, ValueError):
    """A condition or ``--set`` key that does not exist, does not combine or that eval does not use."""


def _has_field(path: str) -> bool:
    """True if the dotted ``path`` names a field of SimConfig (through nested dataclasses)."""
    cls: Any = SimConfig
    for part in path.split("."):
        if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
            return False
        found = {f.name: f for f in dataclasses.fields(cls)}.get(part)
        if found is None:
            return False
        cls = _field_type(cls, part)
    return True


def _field_type(cls: type, name: str) -> Any:
    import typing

    return typing.get_type_hints(cls)[name]


def parse_conditions(spec: str | Sequence[str] | None) -> tuple[str, ...]:
    """Condition names from ``"a,b"`` or a list: known, no repeats, ``nominal`` only alone; in `CONDITIONS` order.

    >>> parse_conditions("noisy,fov90")
    ('fov90', 'noisy')
    >>> parse_conditions(None)
    ('nominal',)
    """
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec or [])]
    names = [n for n in names if n] or [NOMINAL]
    accepted = ", ".join(CONDITIONS)
    for n in names:
        if n not in CONDITIONS:
            raise ConditionError(f"--condition: unknown condition {n!r}; accepted: {accepted} (combine with commas, "
                                 "e.g. fov90,noisy)")
    if len(set(names)) != len(names):
        raise ConditionError(f"--condition: {','.join(names)} names a condition twice; give each once")
    if NOMINAL in names and len(names) > 1:
        raise ConditionError(f"--condition: 'nominal' means no change and does not combine; drop it from "
                             f"{','.join(names)}")
    keys: dict[str, str] = {}
    for n in names:
        for key in CONDITIONS[n]:
            if key in keys:
                raise ConditionError(f"--condition: {keys[key]} and {n} both set sim.{key}; they do not combine, "
                                     "run them separately")
            keys[key] = n
    order = list(CONDITIONS)
    return tuple(sorted(names, key=order.index))


def _override_strings(overrides: dict[str, Any]) -> list[str]:
    return [f"{key}={json.dumps(value)}" for key, value in overrides.items()]


def _replace(cfg: SimConfig, items: Iterable[str], what: str) -> SimConfig:
    from robonav.settings import SettingsError, apply_overrides, from_dict, to_dict

    try:
        return from_dict(SimConfig, apply_overrides(to_dict(cfg), list(items)), "sim")
    except SettingsError as e:
        raise ConditionError(f"{what}: {e}") from e


def apply_conditions(cfg: SimConfig, names: str | Sequence[str] | None) -> SimConfig:
    """``cfg`` with the overrides of every named condition (a new config; ``cfg`` is not changed)."""
    parsed = parse_conditions(names)
    for n in parsed:
        for key in CONDITIONS[n]:
            if not _has_field(key):
                section = key.split(".")[0]
                raise ConditionError(f"--condition {n} needs sim.{section}, not in this build; run the other "
                                     f"conditions ({', '.join(c for c in CONDITIONS if c != n)})")
    items = [s for n in parsed for s in _override_strings(CONDITIONS[n])]
    return _replace(cfg, items, f"--condition {','.join(parsed)}") if items else cfg


def apply_sim_settings(cfg: SimConfig, overrides: Sequence[str]) -> SimConfig:
    """``cfg`` with ``--set sim.KEY=VALUE`` overrides; keys eval does not use (see `EVAL_KEYS`) are refused."""
    items = []
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if "=" not in item:
            raise ConditionError(f"--set {item!r}: expected sim.KEY=VALUE, e.g. --set sim.scanner.num_beams=64")
        if not key.startswith("sim."):
            raise ConditionError(f"--set {key}: eval takes sim.* settings only (the robot, its sensors, the world); "
                                 f"e.g. --set sim.robot.radius=0.2")
        sub = key[len("sim."):]
        if not _has_field(sub):
            raise ConditionError(f"--set {key}: no such setting in sim; see the sim section of launch/sim.yaml")
        if not any(sub == k or (k.endswith(".") and sub.startswith(k)) for k in EVAL_KEYS):
            raise ConditionError(f"--set {key}: eval does not use it (it belongs to the policy, to training or to "
                                 f"the physics layout); eval accepts sim.{{{', '.join(EVAL_KEYS)}}}")
        items.append(item[len("sim."):])
    return _replace(cfg, items, "--set") if items else cfg
