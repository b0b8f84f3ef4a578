"""The safety layer: the last word on every velocity command, independent of the policy.

The same filter runs in training, evaluation, HIL and on the robot, so a policy never learns to rely on a
margin the robot does not have. It takes the raw range scan (REP 117 values) rather than the preprocessed
observation, so a bug upstream cannot blind it.

Rules, per env (`SafetyLayer.filter`); e-stop overrides all the others:

1. E-stop: the command is (0, 0) at once, with no deceleration ramp (an e-stop is not a comfort stop); the
   zero becomes the previous command, so after release the robot ramps up from rest.
2. Velocity limits: clip ``|v| <= v_max`` and ``|omega| <= omega_max``.
3. Obstacle rule (target): the forward clearance is the least distance the disc of radius
   ``radius + side_margin`` can move forward before touching a scan point; the backward clearance likewise.
   A point ``(r cos a, r sin a)`` counts forward when its beam points ahead (``cos a > 0``), backward when it
   points behind (``cos a < 0``), and only inside the swept corridor ``|y| < radius + side_margin``; its
   clearance is ``|x| - sqrt((radius + side_margin)**2 - y**2)``. The factor
   ``f = clip((clearance - stop_distance) / (slow_distance - stop_distance), 0, 1)`` of the direction ``v``
   points scales ``v``. Turning (omega) and moving away from an obstacle are never limited by it.
4. Acceleration limits relative to the previous safe command: ``|dv| <= accel_max * dt`` and
   ``|domega| <= alpha_max * dt``. They act on the obstacle-scaled target, so a steady command near an
   obstacle converges on ``f * v`` rather than on something smaller.
5. Braking beats comfort: motion toward an obstacle never exceeds ``f * v_max`` of its direction, even where
   step 4 would keep the previous speed; this decrease of ``|v|`` toward zero is always allowed. The
   direction is that of the accelerated ``v``: a robot still rolling forward while the policy asks to
   reverse is capped by the obstacle ahead. A wall that appears at once (clearance <= stop_distance) stops
   the robot within the same tick.

6. Fail closed (blind directions): the beams that cover the corridor ahead are those pointing within 45
   degrees of forward (``cos a >= |sin a|``: still inside the corridor where the disc's front edge is, x =
   |y| = radius + side_margin; wider beams pass beside the body); those behind likewise around backward.
   When fewer than ``min_valid_fraction`` of them are valid (not NaN), or none exists (a field of view that
   does not reach there), that direction is blind: its factor is 0, so motion that way stops within the tick,
   like a wall at stop_distance. Turning in place is allowed: the footprint is a disc, so rotation sweeps no
   new space, and a robot that cannot see ahead may need to turn to look. ``min_valid_fraction = 0`` turns the
   rule off (the behaviour before it: NaN beams never limit).

Scan values: +inf (no return) beams are valid and ignored by the obstacle rule; NaN (invalid) beams are ignored
by it and counted by the blind rule; -inf (too close) is valid and an obstacle at the beam's angle at distance 0
(at or inside range_min, which the layer does not know: for any range_min below the inflated radius the
factor is 0 either way). Finite ranges below zero are not REP 117 values; they are clamped to 0, which is
the conservative reading (a driver that reports 0 for "no return" stops the robot rather than blinding it).
A non-finite command component (a policy that produced NaN) is replaced by 0 before the rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from robonav.control.envs import env_index
from robonav.errors import RobonavError, UserError

__all__ = [
    "SafetyConfig",
    "SafetyConfigError",
    "SafetyInputError",
    "SafetyLayer",
    "SingleFilter",
    "safety_reference",
]


class SafetyConfigError(UserError, ValueError):
    """A SafetyConfig field has a value the safety layer cannot work with."""


class SafetyInputError(RobonavError, ValueError):
    """An argument of SafetyLayer.filter has the wrong shape, dtype or value."""


@dataclass(frozen=True)
class SafetyConfig:
    """Limits and distances of the safety layer (SI units, robot frame per REP 103)."""

    v_max: float = 0.5
    """Largest |v| in m/s, forward or backward."""
    omega_max: float = 2.0
    """Largest |omega| in rad/s."""
    accel_max: float = 1.0
    """Largest linear acceleration in m/s^2 (braking for an obstacle may exceed it)."""
    alpha_max: float = 4.0
    """Largest angular acceleration in rad/s^2."""
    robot_radius: float = 0.18
    """Radius of the robot's footprint disc in m; `filter(radius=...)` overrides it per env."""
    slow_distance: float = 0.40
    """Clearance in m (beyond the inflated radius) below which motion toward an obstacle is scaled down."""
    stop_distance: float = 0.05
    """Clearance in m at or below which motion toward the obstacle is zero."""
    side_margin: float = 0.03
    """Extra half-width in m of the swept corridor, added to the radius (the disc is inflated by it)."""
    min_valid_fraction: float = 0.5
    """Least share of the beams covering the corridor ahead (behind) that must be valid (not NaN) for motion
    that way; below it, or with no beam there, the direction is blind and v that way is 0. 0 turns the rule off.
    At 0.5, i.i.d. dropout of 8 % blinds a clear 72-beam scan with probability 5e-7 per scan (1 %: 1e-15)."""

    def __post_init__(self) -> None:
        for name in ("v_max", "omega_max", "accel_max", "alpha_max", "robot_radius"):
            value = getattr(self, name)
            if not (value > 0.0):  # also rejects NaN
                raise SafetyConfigError(
                    f"SafetyConfig.{name} must be > 0, actual: {value!r}. "
                    "Set a positive limit (use a large value to make a limit inactive)."
                )
        for name in ("stop_distance", "side_margin"):
            value = getattr(self, name)
            if not (0.0 <= value < math.inf):
                raise SafetyConfigError(f"SafetyConfig.{name} must be finite and >= 0, actual: {value!r}.")
        if not (0.0 <= self.min_valid_fraction <= 1.0):
            raise SafetyConfigError(
                f"SafetyConfig.min_valid_fraction must be in [0, 1], actual: {self.min_valid_fraction!r}. "
                "0 turns the blind-direction rule off; 0.5 is the default."
            )
        if not (self.slow_distance > self.stop_distance) or math.isinf(self.slow_distance):
            raise SafetyConfigError(
                "SafetyConfig.slow_distance must be finite and greater than stop_distance, actual: "
                f"slow_distance={self.slow_distance!r}, stop_distance={self.stop_distance!r}. "
                "The speed toward an obstacle ramps from zero at stop_distance to full at slow_distance."
            )


_EDGE = 1e-9
"""Tolerance of the 45-degree test of rule 6: cos and sin of pi/4 differ in the last bit."""


class _Beams(NamedTuple):
    """Per-beam geometry derived from the beam angles ([B] or [N, B] each)."""

    angles: np.ndarray
    """The angles it was derived from, to tell when it must be derived again."""
    sin: np.ndarray
    """sin(angle): a point's lateral offset per metre of range."""
    abs_cos: np.ndarray
    """|cos(angle)|: a point's distance along x per metre of range, ahead or behind."""
    ahead: np.ndarray
    """cos(angle) > 0: the beam points forward (so does its point, at any range, even 0)."""
    behind: np.ndarray
    """cos(angle) < 0: the beam points backward."""
    cover_ahead: np.ndarray
    """cos(angle) >= |sin(angle)|: the beam covers the corridor ahead (within 45 degrees of forward)."""
    cover_behind: np.ndarray
    """-cos(angle) >= |sin(angle)|: the beam covers the corridor behind."""




class SafetyLayer:
    """Vectorised safety filter for N robots; remembers each env's previous safe command.

    >>> layer = SafetyLayer(SafetyConfig(), num_envs=1)
    >>> angles = np.array([0.0, np.pi], dtype=np.float32)
    >>> ranges = np.array([[np.inf, np.inf]], dtype=np.float32)  # nothing in sight
    >>> layer.filter(np.array([[2.0, 0.0]]), ranges, angles, dt=0.1)  # clipped, then accel-limited
    array([[0.1, 0. ]])
    """

    def __init__(self, config: SafetyConfig, num_envs: int = 1) -> None:
        if num_envs < 1:
            raise SafetyInputError(f"SafetyLayer: num_envs must be >= 1, actual: {num_envs}.")
        self.config = config
        self.num_envs = int(num_envs)
        self._previous = np.zeros((self.num_envs, 2), dtype=np.float64)  # [N, (v, omega)]
        self.obstacle_factor = np.ones(self.num_envs)
        """[N] the obstacle factor (rule 3) of the direction the last `filter` call's v asked for: 1 where
        nothing was in the way, 0 where the robot was stopped; simulators read it to price blocked commands."""
        self.blind = np.zeros((self.num_envs, 2), dtype=bool)
        """[N, (forward, backward)] the directions the last `filter` call found blind (rule 6)."""
        self._beams: _Beams | None = None  # derived from the last beam angles seen

    @property
    def previous(self) -> np.ndarray:
        """A copy of the previous safe command per env, [N, 2] float64."""
        return self._previous.copy()

    def reset(self, env_ids: np.ndarray | list[int] | None = None) -> None:
        """Forgets the previous command of the given envs (all when None): they ramp up from (0, 0)."""
        self._previous[env_index(env_ids, self.num_envs, "SafetyLayer.reset", SafetyInputError)] = 0.0

    def filter(
        self,
        commands: np.ndarray,
        ranges: np.ndarray,
        angles: np.ndarray,
        dt: float,
        radius: np.ndarray | None = None,
        estop: np.ndarray | None = None,
        num_beams: np.ndarray | None = None,
    ) -> np.ndarray:
        """Returns the safe commands [N, 2] float64 for desired `commands` [N, 2] (v, omega).

        `ranges` [N, B] is the raw scan, `angles` [B] or [N, B] the beam angles in the robot frame, `dt` the
        control period in s, `radius` [N] an optional per-env robot radius, `estop` [N] optional bools,
        `num_beams` [N] optional beams in use per env (columns from it on are padding, not beams: a batch of
        scanners with different beam counts). The result becomes each env's previous command for the
        acceleration limits.
        """
        n = self.num_envs
        commands = np.asarray(commands, dtype=np.float64)
        if commands.shape != (n, 2):
            raise SafetyInputError(
                f"SafetyLayer.filter: commands must have shape ({n}, 2) as (v, omega) per env, "
                f"actual: {commands.shape}."
            )
        ranges = np.asarray(ranges)
        if ranges.ndim != 2 or ranges.shape[0] != n:
            raise SafetyInputError(
                f"SafetyLayer.filter: ranges must have shape ({n}, B), actual: {ranges.shape}."
            )
        if not (0.0 < dt < math.inf):
            raise SafetyInputError(f"SafetyLayer.filter: dt must be finite and > 0 s, actual: {dt!r}.")
        beams = self._beam_geometry(angles, ranges.shape)
        inflated = self._inflated_radius(radius)[:, 0]  # [N]
        counts = self._counts(num_beams, ranges.shape)
        stop = np.zeros(n, dtype=np.bool_)
        if estop is not None:
            stop = np.asarray(estop, dtype=bool)
            if stop.shape != (n,):
                raise SafetyInputError(
                    f"SafetyLayer.filter: estop must have shape ({n},) of bools, actual: {stop.shape}."
                )
        if ranges.dtype not in (np.float32, np.float64):
            ranges = ranges.astype(np.float64)
        safe = np.empty((n, 2))
        factor = np.empty(n)
        blind = np.empty((n, 2), dtype=np.bool_)
        self._rules(commands, ranges, counts, beams, inflated, stop, self._limits(dt), safe, factor, blind)
        self.obstacle_factor, self.blind = factor, blind
        self._previous[:] = safe
        return safe

    def _limits(self, dt: float) -> tuple[float, ...]:
        """The rules' scalar settings for a period of ``dt`` s, in the compiled kernel's argument order."""
        cfg = self.config
        return (cfg.stop_distance, cfg.slow_distance - cfg.stop_distance, cfg.min_valid_fraction, cfg.v_max,
                cfg.omega_max, cfg.accel_max * dt, cfg.alpha_max * dt)

    def _rules(self, commands: np.ndarray, ranges: np.ndarray, counts: np.ndarray, beams: _Beams,
               inflated: np.ndarray, stop: np.ndarray, limits: tuple[float, ...], safe: np.ndarray,
               factor: np.ndarray, blind: np.ndarray) -> None:
        """The compiled rules from the previous commands into ``safe``, ``factor`` and ``blind`` (nothing kept)."""
        from robonav.control.safety_kernel import filter_kernel  # numba only once a layer filters

        stop_distance, slow_band, min_valid, v_max, omega_max, dv, domega = limits
        filter_kernel(commands, ranges, counts, beams.sin, beams.abs_cos, beams.ahead, beams.behind,
                      beams.cover_ahead, beams.cover_behind, inflated, self._previous, stop, stop_distance, slow_band,
                      min_valid, v_max, omega_max, dv, domega, safe, factor, blind)

    def single(self, angles: np.ndarray, dt: float) -> SingleFilter:
        """`filter` for one robot (num_envs must be 1) with one scan description and period, everything but the
        compiled rules done here once: the control loop's hot path (see `SingleFilter`)."""
        return SingleFilter(self, angles, dt)

    def _counts(self, num_beams: np.ndarray | None, scan_shape: tuple[int, ...]) -> np.ndarray:
        """[N] int64: how many leading columns of each env's scan are beams (all of them without num_beams)."""
        if num_beams is None:
            return np.full(self.num_envs, scan_shape[1], dtype=np.int64)
        counts = np.asarray(num_beams)
        if counts.shape != (self.num_envs,) or not ((counts >= 0) & (counts <= scan_shape[1])).all():
            raise SafetyInputError(
                f"SafetyLayer.filter: num_beams must have shape ({self.num_envs},) with values in "
                f"[0, {scan_shape[1]}], actual shape {counts.shape}, values {counts.tolist()}."
            )
        return counts.astype(np.int64)

    def filter_one(
        self, v: float, omega: float, ranges: np.ndarray, angles: np.ndarray, dt: float, estop: bool = False
    ) -> tuple[float, float]:
        """`filter` for a single robot (num_envs must be 1): scalars in, (v, omega) floats out."""
        if self.num_envs != 1:
            raise SafetyInputError(
                f"SafetyLayer.filter_one needs num_envs == 1, actual: {self.num_envs}. Use filter() for "
                "a batch."
            )
        scan = np.asarray(ranges).reshape(1, -1)
        safe = self.filter(np.array([[v, omega]]), scan, angles, dt, estop=np.array([estop]))
        return float(safe[0, 0]) + 0.0, float(safe[0, 1]) + 0.0  # + 0.0: a stop reads 0.0, never -0.0

    def _beam_geometry(self, angles: np.ndarray, scan_shape: tuple[int, ...]) -> _Beams:
        """Trigonometry of the beam angles, cached while the angles stay equal (a scan description rarely
        changes)."""
        angles = np.asarray(angles, dtype=np.float64)
        n, b = scan_shape
        if angles.shape not in ((b,), (n, b)):
            raise SafetyInputError(
                f"SafetyLayer.filter: angles must have shape ({b},) or ({n}, {b}) to match ranges "
                f"{scan_shape}, actual: {angles.shape}."
            )
        cached = self._beams
        if (
            cached is not None
            and cached.angles.shape == angles.shape
            and np.array_equal(cached.angles, angles)
        ):
            return cached
        if not np.isfinite(angles).all():
            raise SafetyInputError(
                "SafetyLayer.filter: beam angles must be finite; check the sensor description "
                "(angle_min, angle_increment or per-beam angles)."
            )
        cos, sin = np.cos(angles), np.sin(angles)
        edge = np.abs(sin) - _EDGE  # the beams at exactly 45 degrees count, whichever way they round
        rows = [np.ascontiguousarray(np.atleast_2d(x)) for x in  # [1, B] shared, or [N, B] per env
                (sin, np.abs(cos), cos > 0.0, cos < 0.0, cos >= edge, -cos >= edge)]
        self._beams = _Beams(angles.copy(), *rows)
        return self._beams

    def _inflated_radius(self, radius: np.ndarray | None) -> np.ndarray:
        """radius + side_margin per env, [N, 1]."""
        cfg = self.config
        if radius is None:
            return np.full((self.num_envs, 1), cfg.robot_radius + cfg.side_margin)
        r = np.asarray(radius, dtype=np.float64)
        if r.shape != (self.num_envs,) or not (np.isfinite(r) & (r > 0.0)).all():
            raise SafetyInputError(
                f"SafetyLayer.filter: radius must be finite, > 0 m and of shape ({self.num_envs},), "
                f"actual shape {r.shape}, values {r.tolist()}."
            )
        return (r + cfg.side_margin)[:, None]


class SingleFilter:
    """The safety filter of a one-robot `SafetyLayer` for a fixed scan description and period.

    ``f(v, omega, ranges)`` returns what ``layer.filter([[v, omega]], ranges[None], angles, dt)`` returns, as two
    floats, and updates the layer's previous command, obstacle factor and blind flags the same way; the checks
    and beam trigonometry ran when it was built, its arrays are preallocated, so a call is the kernel and a few
    stores. ``ranges`` must be a contiguous float32 or float64 [B] array of the beams it was built for.
    `prewarm` runs the kernel into scratch (nothing kept) so the next call finds it and its data in cache.
    """

    def __init__(self, layer: SafetyLayer, angles: np.ndarray, dt: float) -> None:
        if layer.num_envs != 1:
            raise SafetyInputError(f"SafetyLayer.single needs num_envs == 1, actual: {layer.num_envs}.")
        if not (0.0 < dt < math.inf):
            raise SafetyInputError(f"SafetyLayer.single: dt must be finite and > 0 s, actual: {dt!r}.")
        angles = np.asarray(angles, dtype=np.float64).reshape(-1)
        self.layer = layer
        self.num_beams = len(angles)
        self._beams = layer._beam_geometry(angles, (1, self.num_beams))
        self._inflated = layer._inflated_radius(None)[:, 0]
        self._counts = np.full(1, self.num_beams, dtype=np.int64)
        self._stop = np.zeros(1, dtype=np.bool_)
        self._limits = layer._limits(dt)
        self._command = np.zeros((1, 2))
        self._safe = np.zeros((1, 2))
        self._factor = np.ones(1)
        self._blind = np.zeros((1, 2), dtype=np.bool_)
        self._scratch = (np.zeros((1, 2)), np.ones(1), np.zeros((1, 2), dtype=np.bool_))
        self._warm_ranges = np.full((1, self.num_beams), np.inf, np.float32)

    def __call__(self, v: float, omega: float, ranges: np.ndarray) -> tuple[float, float]:
        if ranges.shape != (self.num_beams,) or ranges.dtype not in (np.float32, np.float64):
            raise SafetyInputError(f"SafetyLayer.single: ranges must be float32 or float64 of shape "
                                   f"({self.num_beams},), actual: {ranges.dtype} {ranges.shape}.")
        self._command[0, 0] = v
        self._command[0, 1] = omega
        self._run(ranges.reshape(1, -1), self._safe, self._factor, self._blind)
        layer = self.layer
        layer._previous[:] = self._safe
        layer.obstacle_factor, layer.blind = self._factor, self._blind
        return float(self._safe[0, 0]) + 0.0, float(self._safe[0, 1]) + 0.0  # a stop reads 0.0, never -0.0

    def prewarm(self) -> None:
        """The rules once on an empty scan into scratch outputs: the layer's state is not touched."""
        self._run(self._warm_ranges, *self._scratch)

    def _run(self, ranges: np.ndarray, safe: np.ndarray, factor: np.ndarray, blind: np.ndarray) -> None:
        self.layer._rules(self._command, ranges, self._counts, self._beams, self._inflated, self._stop,
                          self._limits, safe, factor, blind)


def safety_reference(
    config: SafetyConfig,
    previous: np.ndarray,
    commands: np.ndarray,
    ranges: np.ndarray,
    angles: np.ndarray,
    dt: float,
    radius: np.ndarray | None = None,
    estop: np.ndarray | None = None,
    num_beams: np.ndarray | None = None,
) -> np.ndarray:
    """Plain-loop reference of `SafetyLayer.filter` (one env, one beam at a time) for parity tests.

    `previous` [N, 2] is the previous safe command; returns the safe [N, 2] and does not keep state.
    """
    n, b = np.shape(ranges)
    angles = np.asarray(angles, dtype=np.float64)
    out = np.zeros((n, 2))
    for i in range(n):
        rad = config.robot_radius if radius is None else float(radius[i])
        inflated = rad + config.side_margin
        forward = math.inf
        backward = math.inf
        covering = [0, 0]  # beams covering the corridor ahead, behind
        seen = [0, 0]  # of them, valid
        for k in range(b if num_beams is None else int(num_beams[i])):
            a = float(angles[k]) if angles.ndim == 1 else float(angles[i, k])
            r = float(ranges[i][k])
            for d, along in enumerate((math.cos(a), -math.cos(a))):
                if along >= abs(math.sin(a)) - _EDGE:
                    covering[d] += 1
                    seen[d] += not math.isnan(r)
            if math.isnan(r) or r == math.inf:
                continue  # invalid reading or no return: no information about obstacles
            r = max(r, 0.0)  # -inf (too close) and negative values: obstacle at distance 0
            c, s = math.cos(a), math.sin(a)
            x, y = r * c, r * s
            if not inflated * inflated - y * y > 0.0:
                continue  # outside the swept corridor |y| < inflated
            half = math.sqrt(inflated * inflated - y * y)  # half-chord of the disc at y
            if c > 0.0:
                forward = min(forward, x - half)
            elif c < 0.0:
                backward = min(backward, -x - half)
        span = config.slow_distance - config.stop_distance
        f_forward = min(max((forward - config.stop_distance) / span, 0.0), 1.0)
        f_backward = min(max((backward - config.stop_distance) / span, 0.0), 1.0)
        if config.min_valid_fraction > 0.0:
            if covering[0] == 0 or seen[0] < config.min_valid_fraction * covering[0]:
                f_forward = 0.0
            if covering[1] == 0 or seen[1] < config.min_valid_fraction * covering[1]:
                f_backward = 0.0

        v, omega = float(commands[i][0]), float(commands[i][1])
        v = v if math.isfinite(v) else 0.0
        omega = omega if math.isfinite(omega) else 0.0
        v = min(max(v, -config.v_max), config.v_max)
        omega = min(max(omega, -config.omega_max), config.omega_max)
        if v > 0.0:
            v *= f_forward
        elif v < 0.0:
            v *= f_backward
        v_prev, omega_prev = float(previous[i][0]), float(previous[i][1])
        dv, domega = config.accel_max * dt, config.alpha_max * dt
        v = min(max(v, v_prev - dv), v_prev + dv)
        omega = min(max(omega, omega_prev - domega), omega_prev + domega)
        if v > f_forward * config.v_max:
            v = f_forward * config.v_max
        if v < -f_backward * config.v_max:
            v = -f_backward * config.v_max
        if estop is not None and bool(estop[i]):
            v, omega = 0.0, 0.0
        out[i] = (v, omega)
    return out
