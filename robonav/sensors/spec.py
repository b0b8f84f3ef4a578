"""Preprocessor settings and the observation layout they produce (saved with every model).

``PreprocessorConfig`` holds every setting of the sensor pipeline; ``ObservationSpec`` derives from it the
float32 observation vector's layout: one ``Block`` per part (name, offset, shape, bounds, normalisation). The
spec round-trips through ``to_dict``/``from_dict`` (plain JSON types); unknown keys and a layout that does not
match what this code derives are refused, so a model never runs on an observation it was not trained on.

Patch layout: a patch block of shape ``(P, P)`` is stored row-major; row ``r`` runs forward (x), column ``c``
runs left (y), both increasing, with the robot at the centre: pixel ``(r, c)`` is centred at
``((r - (P-1)/2) * pixel, (c - (P-1)/2) * pixel)`` in the robot frame.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from robonav.errors import UserError

__all__ = ["Block", "ObservationSpec", "ObservationSpecError", "PreprocessorConfig", "PreprocessorConfigError"]

SPEC_FORMAT = "robonav.observation/1"


class PreprocessorConfigError(UserError, ValueError):
    """A PreprocessorConfig field (or a key of its dict form) is unknown, mistyped or out of range."""


class ObservationSpecError(UserError, ValueError):
    """A saved ObservationSpec does not match the layout this code derives from its config."""


@dataclass(frozen=True)
class PreprocessorConfig:
    """Every setting of the sensor pipeline. Nothing that belongs to a sensor's description lives here: range
    limits and beam angles come from each frame's ScanSpec."""

    num_bins: int = 32
    """Angular bins of the min-pooled scan; bin k is centred on angle 2*pi*k/num_bins (bin 0 on +x)."""
    max_range: float = 3.5
    """Range (m) that maps to 1.0 in the scan block, so the observation means the same across sensors."""
    below_range_min: str = "invalid"
    """A finite range below the ScanSpec's range_min (0, negative): 'invalid' (ignored, like NaN, as LaserScan
    says) or 'too_close' (like -inf)."""
    above_range_max: str = "invalid"
    """A finite range above the ScanSpec's range_max: 'invalid' (ignored, like NaN, as LaserScan says) or
    'no_return' (like +inf)."""
    goal_clip: float = 10.0
    """Goal distance (m) that maps to 1.0; farther goals saturate."""
    v_max: float = 0.5
    """Linear speed (m/s) that maps to 1.0 in the command block."""
    omega_max: float = 2.0
    """Angular speed (rad/s) that maps to 1.0 in the command block."""
    grid_cells: int = 384
    """Cells per side of both memory grids (384 x 0.125 m = 48 m, enough for an 11x11 maze anywhere)."""
    grid_resolution: float = 0.125
    """Side (m) of a memory grid cell."""
    fine_pixels: int = 12
    """Pixels per side of the fine (local) patches."""
    fine_pixel_size: float = 0.25
    """Side (m) of a fine patch pixel; an integer multiple of grid_resolution."""
    coarse_pixels: int = 12
    """Pixels per side of the coarse (wide) patches."""
    coarse_pixel_size: float = 1.0
    """Side (m) of a coarse patch pixel; an integer multiple of fine_pixel_size."""
    map_range: float = 3.5
    """Farthest range (m) written into the obstacle memory (hits beyond it are skipped, clearing stops there)."""
    clear_rays: int = 64
    """Free-space clearing rays per scan: beams are grouped into this many equal angular sectors and each sector
    clears once along its mean direction up to its nearest return (one ray per beam for sparser scans)."""
    clear_margin: float = 0.125
    """Clearing stops this far (m) short of a return, so a wall is never cleared by the beam that hit it."""
    hit_log_odds: float = 0.85
    """Log-odds added to a cell that a beam ends in."""
    miss_log_odds: float = -0.4
    """Log-odds added to a cell a clearing ray crosses."""
    log_odds_min: float = -2.0
    """Clamp (lower) of the obstacle log-odds."""
    log_odds_max: float = 3.5
    """Clamp (upper) of the obstacle log-odds."""
    log_odds_quantum: float = 0.05
    """Log-odds per stored unit (the memory keeps int8 units)."""
    obstacle_decay_steps: int = 0
    """Obstacle evidence moves one unit toward 'unknown' every this many steps (0: never)."""
    visit_scale: float = 4.0
    """Trajectory channel value is 1 - exp(-visits / visit_scale)."""
    visit_decay_steps: int = 0
    """Visit counts drop by one every this many steps (0: never)."""
    trail_radius: float = 0.25
    """Cells within this distance (m) of the robot's cell count a visit each time the robot enters a new cell."""
    obstacle_fine: bool = True
    """Include the fine obstacle patch."""
    obstacle_coarse: bool = True
    """Include the coarse obstacle patch."""
    trajectory_fine: bool = True
    """Include the fine trajectory patch."""
    trajectory_coarse: bool = True
    """Include the coarse trajectory patch."""
    guidance: bool = False
    """Include the guidance block: where an A* path on the obstacle memory leads (robonav.sensors.guidance)."""
    guidance_every: int = 5
    """Steps between guidance plans (the path is followed every step in between)."""
    guidance_lookahead: float = 0.6
    """Distance (m) along the path of the near guidance point; the far point lies three times as far."""
    laser_odometry: bool = False
    """Correct each odometry delta by matching the scan to a map of earlier scans (robonav.sensors.scanmatch)
    before it is integrated: memories, goal and guidance then live in the corrected frame. The layout is the same
    either way."""
    guidance_budget: int = 0
    """Most A* expansions per step (0: each plan runs to its end in the step it starts, as the shipped policies
    were trained). With a budget a plan searches the cost map of the step it started over the next steps, and the
    previous path is followed until it ends (robonav.sensors.plan)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            _check_type(f.name, getattr(self, f.name), f.type)
        positive = ("max_range", "goal_clip", "v_max", "omega_max", "grid_resolution", "fine_pixel_size",
                    "coarse_pixel_size", "map_range", "log_odds_quantum", "visit_scale", "hit_log_odds",
                    "guidance_lookahead")
        for name in positive:
            _require(name, getattr(self, name), math.isfinite(getattr(self, name)) and getattr(self, name) > 0,
                     "a finite number > 0")
        for name in ("num_bins", "grid_cells", "fine_pixels", "coarse_pixels", "clear_rays", "guidance_every"):
            _require(name, getattr(self, name), getattr(self, name) >= 1, "an integer >= 1")
        for name in ("obstacle_decay_steps", "visit_decay_steps"):
            _require(name, getattr(self, name), getattr(self, name) >= 0, "an integer >= 0 (0: no decay)")
        _require("guidance_budget", self.guidance_budget, self.guidance_budget >= 0,
                 "an integer >= 0 (0: each plan in one step)")
        for name in ("clear_margin", "trail_radius"):
            _require(name, getattr(self, name), math.isfinite(getattr(self, name)) and getattr(self, name) >= 0,
                     "a finite number >= 0")
        _require("below_range_min", self.below_range_min, self.below_range_min in ("invalid", "too_close"),
                 "'invalid' or 'too_close'")
        _require("above_range_max", self.above_range_max, self.above_range_max in ("invalid", "no_return"),
                 "'invalid' or 'no_return'")
        _require("miss_log_odds", self.miss_log_odds, self.miss_log_odds < 0, "a number < 0")
        _require("log_odds_min", self.log_odds_min, self.log_odds_min < 0, "a number < 0")
        units = {n: getattr(self, n) / self.log_odds_quantum
                 for n in ("hit_log_odds", "miss_log_odds", "log_odds_min", "log_odds_max")}
        for name, u in units.items():
            _require(name, getattr(self, name), math.isfinite(u) and 1 <= abs(round(u)) <= 127,
                     f"between 1 and 127 units of log_odds_quantum={self.log_odds_quantum} in magnitude")
        _require("fine_pixel_size", self.fine_pixel_size, _is_multiple(self.fine_pixel_size, self.grid_resolution),
                 f"an integer multiple of grid_resolution={self.grid_resolution}")
        _require("coarse_pixel_size", self.coarse_pixel_size,
                 _is_multiple(self.coarse_pixel_size, self.fine_pixel_size),
                 f"an integer multiple of fine_pixel_size={self.fine_pixel_size}")
        _require("grid_cells", self.grid_cells, self.grid_cells % self.coarse_factor == 0,
                 f"a multiple of coarse_pixel_size / grid_resolution = {self.coarse_factor}")
        room = self.grid_cells - 2 * self.recentre_margin_cells
        _require("grid_cells", self.grid_cells, room >= 2 * self.coarse_factor,
                 f"larger: the recentring margin is {self.recentre_margin_cells} cells on each side (set by "
                 f"map_range and the patch sizes), which leaves {room} cells; at least {2 * self.coarse_factor} are "
                 "needed")

    @property
    def mid_factor(self) -> int:
        """Grid cells per fine patch pixel (side)."""
        return round(self.fine_pixel_size / self.grid_resolution)

    @property
    def coarse_factor(self) -> int:
        """Grid cells per coarse patch pixel (side)."""
        return self.mid_factor * round(self.coarse_pixel_size / self.fine_pixel_size)

    @property
    def recentre_margin_cells(self) -> int:
        """The grids recentre when the robot comes this close (cells) to an edge: far enough that every patch
        sample and every beam written stays inside."""
        reach = max(
            self.map_range,
            self.fine_pixels * self.fine_pixel_size * math.sqrt(0.5) + self.fine_pixel_size,
            self.coarse_pixels * self.coarse_pixel_size * math.sqrt(0.5) + self.coarse_pixel_size,
        )
        return math.ceil(reach / self.grid_resolution) + self.coarse_factor

    def log_odds_units(self, name: str) -> int:
        """A log-odds setting ('hit_log_odds', 'miss_log_odds', 'log_odds_min', 'log_odds_max') in stored units."""
        return round(getattr(self, name) / self.log_odds_quantum)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, every field but those added after policies shipped while they are off
        (`ADDED_OFF`), so a model exported without them keeps the metadata and hashes it had."""
        data = asdict(self)
        for name in ADDED_OFF:
            if not data[name]:
                del data[name]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessorConfig:
        """Build from ``to_dict`` output; unknown keys are refused, missing keys take their defaults."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PreprocessorConfigError(
                f"PreprocessorConfig has no field(s) {unknown}; known fields: {sorted(known)}. Check the spelling "
                "or the robonav version that wrote this config."
            )
        return cls(**data)


def _check_type(name: str, value: object, annotation: object) -> None:
    """Refuse a value of the wrong JSON type (bool is not an int here; an int is a fine float)."""
    kind = str(annotation)
    if kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "int":
        ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    elif kind == "float":
        ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise PreprocessorConfigError(
            f"PreprocessorConfig.{name} must be of type {kind}, got {type(value).__name__}: {value!r}"
        )


def _require(name: str, value: object, ok: bool, expected: str) -> None:
    if not ok:
        raise PreprocessorConfigError(f"PreprocessorConfig.{name} must be {expected}, got {value!r}")


def _is_multiple(size: float, unit: float) -> bool:
    ratio = size / unit
    return round(ratio) >= 1 and abs(ratio - round(ratio)) < 1e-9 * max(1.0, ratio)


@dataclass(frozen=True)
class Block:
    """One part of the observation vector."""

    name: str
    """Block name, e.g. 'scan' or 'obstacle_coarse'."""
    offset: int
    """Index of the block's first element in the observation vector."""
    shape: tuple[int, ...]
    """Shape of the block (row-major); patches are (forward, left)."""
    low: float
    """Smallest value any element can take."""
    high: float
    """Largest value any element can take."""
    normalisation: str
    """How raw quantities become the stored values."""

    @property
    def size(self) -> int:
        """Number of float32 elements."""
        return math.prod(self.shape)

    @property
    def slice(self) -> slice:
        """Where the block lies in the observation vector."""
        return slice(self.offset, self.offset + self.size)


@dataclass(frozen=True)
class ObservationSpec:
    """The observation vector's layout, derived from a PreprocessorConfig; saved with every model."""

    config: PreprocessorConfig = field(default_factory=PreprocessorConfig)
    """Settings the layout derives from (and the Preprocessor runs with)."""
    blocks: tuple[Block, ...] = field(init=False)
    """Every block, in order."""
    size: int = field(init=False)
    """Length D of the observation vector."""

    def __post_init__(self) -> None:
        c = self.config
        parts: list[tuple[str, tuple[int, ...], float, float, str]] = [
            ("scan", (c.num_bins,), 0.0, 1.0,
             f"nearest range per bin / {c.max_range} m (clipped to 1); 1.0 where no beam in the bin informs"),
            ("scan_valid", (c.num_bins,), 0.0, 1.0,
             "1 if a beam in the bin gave a range, +inf or -inf; 0 if all its beams were invalid or absent"),
            ("goal", (3,), -1.0, 1.0,
             f"goal in the robot frame: min(distance, {c.goal_clip} m) / {c.goal_clip} m, sin and cos of bearing"),
            ("command", (2,), -1.0, 1.0,
             f"last command after safety: v / {c.v_max} m/s, omega / {c.omega_max} rad/s, clipped to [-1, 1]"),
        ]
        occ = "occupancy probability sigmoid(log-odds), 0.5 unknown; pixel = max of the 2x2 cells around it"
        vis = f"1 - exp(-visits / {c.visit_scale}), 0 never visited; pixel = max of the 2x2 cells around it"
        fine: tuple[int, ...] = (c.fine_pixels, c.fine_pixels)
        coarse: tuple[int, ...] = (c.coarse_pixels, c.coarse_pixels)
        for on, name, shape, text, px in (
            (c.obstacle_fine, "obstacle_fine", fine, occ, c.fine_pixel_size),
            (c.trajectory_fine, "trajectory_fine", fine, vis, c.fine_pixel_size),
            (c.obstacle_coarse, "obstacle_coarse", coarse, occ, c.coarse_pixel_size),
            (c.trajectory_coarse, "trajectory_coarse", coarse, vis, c.coarse_pixel_size),
        ):
            if on:
                parts.append((name, shape, 0.0, 1.0, f"{text}; {px} m pixels, rows forward, columns left"))
        if c.guidance:
            parts.append(("guidance", (6,), -1.0, 1.0,
                          f"A* path on the obstacle memory (unknown free) to the goal: sin, cos of the bearing to the "
                          f"point {c.guidance_lookahead} m and {3 * c.guidance_lookahead:g} m along it, "
                          "min(length, 40 m) / 40 m, 1 if found (else the goal's bearing and distance)"))
        blocks, offset = [], 0
        for name, shape, low, high, text in parts:
            blocks.append(Block(name, offset, shape, low, high, text))
            offset += math.prod(shape)
        object.__setattr__(self, "blocks", tuple(blocks))
        object.__setattr__(self, "size", offset)

    def has(self, name: str) -> bool:
        """Whether the layout includes the block ``name``."""
        return any(b.name == name for b in self.blocks)

    def block(self, name: str) -> Block:
        """The block called ``name``."""
        for b in self.blocks:
            if b.name == name:
                return b
        raise KeyError(f"ObservationSpec has no block {name!r}; blocks: {[b.name for b in self.blocks]}")

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) float32 vectors of length ``size``."""
        low, high = np.empty(self.size, np.float32), np.empty(self.size, np.float32)
        for b in self.blocks:
            low[b.slice], high[b.slice] = b.low, b.high
        return low, high

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types: the format tag, the config, the size and every block."""
        return {
            "format": SPEC_FORMAT,
            "config": self.config.to_dict(),
            "size": self.size,
            "blocks": [
                {"name": b.name, "offset": b.offset, "shape": list(b.shape), "low": b.low, "high": b.high,
                 "normalisation": b.normalisation}
                for b in self.blocks
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObservationSpec:
        """Rebuild from ``to_dict`` output and check that the saved layout is the one this code derives."""
        allowed = {"format", "config", "size", "blocks"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ObservationSpecError(f"ObservationSpec dict has unknown key(s) {unknown}; allowed: {sorted(allowed)}")
        if data.get("format", SPEC_FORMAT) != SPEC_FORMAT:
            raise ObservationSpecError(
                f"ObservationSpec format must be {SPEC_FORMAT!r}, got {data.get('format')!r}: written by another "
                "robonav version; re-export the model with this one"
            )
        if "config" not in data:
            raise ObservationSpecError("ObservationSpec dict has no 'config': nothing to derive the layout from")
        spec = cls(PreprocessorConfig.from_dict(data["config"]))
        saved = data.get("blocks")
        if saved is not None:
            derived = spec.to_dict()["blocks"]
            if [(b.get("name"), b.get("offset"), list(b.get("shape", ()))) for b in saved] != [
                (b["name"], b["offset"], b["shape"]) for b in derived
            ]:
                raise ObservationSpecError(
                    f"saved ObservationSpec blocks {[(b.get('name'), b.get('shape')) for b in saved]} differ from "
                    f"the layout this code derives from the same config {[(b['name'], b['shape']) for b in derived]}:"
                    " the model was trained on another layout; re-export it with this robonav version"
                )
        if "size" in data and data["size"] != spec.size:
            raise ObservationSpecError(
                f"saved ObservationSpec size {data['size']} differs from the derived size {spec.size}; "
                "re-export the model with this robonav version"
            )
        return spec
ADDED_OFF = ("laser_odometry", "guidance_budget")
"""PreprocessorConfig fields added after the shipped policies were exported: written only when on."""

