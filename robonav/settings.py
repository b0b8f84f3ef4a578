"""Typed settings: nested dataclasses loaded from YAML launch files and overridden with ``--set key=value``.

Unknown keys are errors (a typo must not silently fall back to a default); values are checked against the
field's type; a loaded config is never mutated by its readers (use ``dataclasses.replace``). Floor 1: pyyaml
and the standard library only, so the on-robot runtime can use it too.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from robonav.errors import UserError

T = TypeVar("T")


class SettingsError(UserError, ValueError):
    """A launch file or override does not fit the settings it configures."""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check (and gently convert) ``value`` to the annotated type ``tp``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except SettingsError as e:
                errors.append(str(e))
        raise SettingsError(f"{where}: expected {tp}, got {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise SettingsError(f"{where}: expected one of {list(args)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise SettingsError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise SettingsError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise SettingsError(f"{where}: expected {len(args)} items, got {len(value)}: {value!r}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        inner = args[0] if args else Any
        items = [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise SettingsError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SettingsError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingsError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise SettingsError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise SettingsError(f"{where}: expected a string, got {value!r}")
        return str(value)
    if isinstance(tp, type) and not isinstance(value, tp):
        raise SettingsError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    return value


def tagged_arm(union: Any, data: dict[str, Any], where: str = "") -> type:
    """The dataclass of a tagged union of settings dataclasses (``A | B``) that ``data`` names: the tag is the one
    field whose type is a Literal in every arm (e.g. ``algo``); absent from ``data``, the first arm's default."""
    arms: list[type] = [a for a in typing.get_args(union) if isinstance(a, type) and dataclasses.is_dataclass(a)]
    literals = [{f.name: typing.get_args(h) for f in dataclasses.fields(a)
                 if typing.get_origin(h := typing.get_type_hints(a)[f.name]) is typing.Literal} for a in arms]
    tags = set.intersection(*(set(lit) for lit in literals)) if literals else set()
    if len(arms) != len(typing.get_args(union)) or len(tags) != 1:
        raise TypeError(f"{union} is not a union of settings dataclasses with one Literal tag field")
    tag = tags.pop()
    first = next(f for f in dataclasses.fields(arms[0]) if f.name == tag)
    value = data.get(tag, first.default)
    for arm, lit in zip(arms, literals):
        if value in lit[tag]:
            return arm
    choices = [v for lit in literals for v in lit[tag]]
    raise SettingsError(f"{where + '.' if where else ''}{tag}: expected one of {choices}, got {value!r}")


@typing.overload
def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T: ...
@typing.overload
def from_dict(cls: Any, data: dict[str, Any], where: str = "") -> Any: ...
def from_dict(cls: Any, data: dict[str, Any], where: str = "") -> Any:
    """Build dataclass ``cls`` from a (nested) mapping; unknown keys and wrong types raise SettingsError. ``cls``
    may be a tagged union of dataclasses (``PPOTrainConfig | R2D2TrainConfig``): `tagged_arm` picks the one."""
    if typing.get_origin(cls) in (typing.Union, types.UnionType):
        cls = tagged_arm(cls, data, where)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise SettingsError(
            f"{where or cls.__name__}: unknown key(s) {unknown}; valid keys are {sorted(names)}"
        )
    kwargs = {k: _coerce(v, hints[k], f"{where + '.' if where else ''}{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise SettingsError(f"{where or cls.__name__}: {e}") from e


def to_dict(obj: Any) -> Any:
    """Plain YAML/JSON-able form of a settings dataclass (tuples become lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Return a copy of ``data`` with ``key.sub=value`` overrides applied (values parsed as YAML)."""
    import copy

    out = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise SettingsError(f"--set {item!r}: expected key=value, e.g. --set sim.substeps=2")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw)
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            child = node.get(p)
            if child is None:
                child = node[p] = {}
            if not isinstance(child, dict):
                raise SettingsError(f"--set {key}: {p!r} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; an empty file is an empty mapping. A file that is not UTF-8 YAML text (a binary, a
    folder, an unreadable file) raises SettingsError naming it."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise SettingsError(f"launch file {p}: cannot be read ({e.strerror or e}); expected a YAML file such as "
                            "launch/robot.yaml") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SettingsError(f"launch file {p} is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}); "
                            "expected a YAML launch file such as launch/robot.yaml: is it a binary?") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SettingsError(f"{p}: not valid YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"{p}: expected a mapping at the top level, got {type(data).__name__}")
    return data


PACKAGED_LAUNCH = ("sim", "train", "train_q", "robot", "hil")
"""The launch files robonav ships (launch/*.yaml), by the bare names ``--launch`` takes."""


def resolve_launch(name: str | Path) -> Path:
    """A launch file path, or a bare name (``train``, ``robot``, ``hil``) resolved to the packaged file."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") or p.is_file():
        if p.is_dir():
            raise SettingsError(_folder_message(p))
        if not p.exists():
            raise SettingsError(f"launch file {p} does not exist")
        return p
    from robonav.data import ResourceNotFoundError, resource

    try:
        return resource("launch", f"{name}.yaml")
    except ResourceNotFoundError as e:
        if p.is_dir():
            raise SettingsError(_folder_message(p)) from e
        raise SettingsError(
            f"no launch file named {name!r}: give a path to a .yaml file or one of the packaged names "
            f"({', '.join(PACKAGED_LAUNCH)})"
        ) from e


def _folder_message(p: Path) -> str:
    return (f"launch file {p} is a directory; expected a YAML file (e.g. {p / 'robot.yaml'}) or a packaged name "
            f"({', '.join(PACKAGED_LAUNCH)})")


class MissingSectionError(SettingsError):
    """A launch file lacks the top-level section a verb reads (it would otherwise run on silent defaults)."""


def require_sections(path: Path, data: dict[str, Any], sections: list[str] | tuple[str, ...],
                     reader: str | None = None, suggest: str | None = None) -> None:
    """Refuse a launch file (``data``, read from ``path``) that lacks one of ``sections``, naming what the verb
    ``reader`` (e.g. 'robonav run') reads and the packaged file ``suggest`` that has it."""
    missing = [s for s in sections if s not in data]
    if not missing:
        return
    who = f"{reader} reads" if reader else "read"
    has = f"; it has {', '.join(repr(k) for k in data)}" if data else "; it is empty"
    fix = f"use --launch {suggest} or add the section" if suggest else "add the section"
    names = f"{', '.join(repr(m) for m in missing)} section{'s' if len(missing) > 1 else ''}"
    raise MissingSectionError(f"launch file {path} has no {names} (the sections {who}: {', '.join(sections)})"
                              f"{has}; {fix}")


@typing.overload
def load_settings(cls: type[T], launch: str | Path | None, overrides: list[str] | tuple[str, ...] = (),
                  section: str | None = None, reader: str | None = None, suggest: str | None = None) -> T: ...
@typing.overload
def load_settings(cls: Any, launch: str | Path | None, overrides: list[str] | tuple[str, ...] = (),
                  section: str | None = None, reader: str | None = None, suggest: str | None = None) -> Any: ...
def load_settings(cls: Any, launch: str | Path | None, overrides: list[str] | tuple[str, ...] = (),
                  section: str | None = None, reader: str | None = None, suggest: str | None = None) -> Any:
    """Load ``cls`` from a launch file (optionally one top-level ``section`` of it) plus overrides.

    With a section, an override may name it or not: ``--set train.seed=1`` and ``--set seed=1`` are the same; a
    launch file without the section is refused (MissingSectionError; ``reader`` and ``suggest`` word the message).
    """
    if section is not None:
        overrides = [o[len(section) + 1:] if o.startswith(f"{section}.") else o for o in overrides]
    data: dict[str, Any] = {}
    where = _type_name(cls)
    if launch is not None:
        path = resolve_launch(launch)
        data = load_yaml(path)
        where = str(path)
        if section is not None:
            require_sections(path, data, [section], reader, suggest)
            data = data[section] or {}
            if not isinstance(data, dict):
                raise SettingsError(f"{path}:{section}: expected a mapping of settings, got {data!r}")
    data = apply_overrides(data, overrides)
    return from_dict(cls, data, where if section is None else f"{where}:{section}")


def write_settings(path: str | Path, sections: dict[str, Any]) -> Path:
    """Write resolved settings dataclasses as a launch file (``{section: settings}``), atomically: what a run
    really used, beside its outputs; `load_settings(cls, path, section=...)` reads each back unchanged."""
    from robonav.atomic import write_text_atomic

    text = yaml.safe_dump({k: to_dict(v) for k, v in sections.items()}, sort_keys=False)
    write_text_atomic(path, text)
    return Path(path)
