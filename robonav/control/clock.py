"""Clocks for fixed-step loops: real time, scaled time (faster or slower than real) and a steppable one.

Every loop (simulator-as-robot, HIL runner, on-robot runtime) asks a `Clock` for the time and waits on it, so
the same loop runs against the wall clock on the robot, faster than real time in HIL soak tests, and one
explicit step at a time in unit tests.

>>> clock = make_clock("manual")
>>> clock.sleep_until(0.25)  # a manual clock jumps, it never blocks
>>> clock.now()
0.25
"""

from __future__ import annotations

import math
import time
from typing import Protocol, runtime_checkable

from robonav.errors import UserError

__all__ = [
    "CLOCK_KINDS",
    "Clock",
    "ClockKindError",
    "ClockValueError",
    "ManualClock",
    "RealClock",
    "ScaledClock",
    "make_clock",
]

CLOCK_KINDS = ("real", "scaled", "manual")
"""The kinds `make_clock` accepts."""

SPIN_S = 0.0005
"""Real seconds before a deadline that `sleep_until` stops sleeping and spins: time.sleep may overshoot by
the scheduler's slack, a spin does not (at the cost of half a millisecond of one core per tick)."""


class ClockKindError(UserError, ValueError):
    """make_clock was asked for a kind of clock that does not exist."""


class ClockValueError(UserError, ValueError):
    """A clock was given a time, step or factor it cannot use (non-finite, negative, or backward in time)."""


@runtime_checkable
class Clock(Protocol):
    """A monotonic time source a fixed-step loop can wait on."""

    def now(self) -> float:
        """Seconds, monotonic, in the clock's time base."""
        ...

    def sleep_until(self, t: float) -> None:
        """Blocks until now() >= t; returns at once if t is already past."""
        ...


def _check_deadline(t: float, where: str) -> float:
    t = float(t)
    if not math.isfinite(t):
        raise ClockValueError(f"{where}: the deadline must be a finite time in seconds, actual: {t!r}.")
    return t


def _sleep_until_monotonic(deadline: float) -> None:
    """Waits until time.monotonic() >= deadline: sleeps, then spins for the last SPIN_S seconds."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0.0:
            return
        if remaining > SPIN_S:
            time.sleep(remaining - SPIN_S)


class RealClock:
    """Wall time from time.monotonic (unaffected by system clock changes)."""

    def now(self) -> float:
        """Seconds of time.monotonic()."""
        return time.monotonic()

    def sleep_until(self, t: float) -> None:
        """Blocks until now() >= t, never returning early."""
        _sleep_until_monotonic(_check_deadline(t, "RealClock.sleep_until"))

    def __repr__(self) -> str:
        return "RealClock()"


class ScaledClock:
    """Time that runs `factor` times faster than real time (factor 10: one clock second per 0.1 s real).

    now() = start + factor * (time.monotonic() - t0), with t0 taken at construction.
    """

    def __init__(self, factor: float, start: float = 0.0) -> None:
        factor = float(factor)
        if not (0.0 < factor < math.inf):
            raise ClockValueError(
                "ScaledClock: factor must be finite and > 0 (clock seconds per real second), "
                f"actual: {factor!r}."
            )
        start = float(start)
        if not math.isfinite(start):
            raise ClockValueError(f"ScaledClock: start must be a finite time in seconds, actual: {start!r}.")
        self.factor = factor
        self.start = start
        self._t0 = time.monotonic()

    def now(self) -> float:
        """Clock seconds: start + factor * real seconds since construction."""
        return self.start + self.factor * (time.monotonic() - self._t0)

    def sleep_until(self, t: float) -> None:
        """Blocks until now() >= t (in clock seconds), never returning early."""
        t = _check_deadline(t, "ScaledClock.sleep_until")
        while self.now() < t:
            # Rounding in the conversion may land a hair short of t: loop until now() agrees.
            _sleep_until_monotonic(self._t0 + (t - self.start) / self.factor)
            if self.now() < t:
                time.sleep(0)

    def __repr__(self) -> str:
        return f"ScaledClock(factor={self.factor!r}, start={self.start!r})"


class ManualClock:
    """A clock that moves only when told: advance(dt), set(t), or sleep_until(t), which jumps to t at once."""

    def __init__(self, start: float = 0.0) -> None:
        start = float(start)
        if not math.isfinite(start):
            raise ClockValueError(f"ManualClock: start must be a finite time in seconds, actual: {start!r}.")
        self._t = start

    def now(self) -> float:
        """The current manual time in seconds."""
        return self._t

    def advance(self, dt: float) -> None:
        """Moves the time forward by dt >= 0 seconds."""
        dt = float(dt)
        if not (0.0 <= dt < math.inf):
            raise ClockValueError(
                f"ManualClock.advance: dt must be finite and >= 0 s (the clock is monotonic), actual: {dt!r}."
            )
        self._t += dt

    def set(self, t: float) -> None:
        """Sets the time to t, which must not lie before now()."""
        t = _check_deadline(t, "ManualClock.set")
        if t < self._t:
            raise ClockValueError(
                f"ManualClock.set: time must not go backward (the clock is monotonic): now {self._t!r}, "
                f"asked for {t!r}. Make a new ManualClock to start over."
            )
        self._t = t

    def sleep_until(self, t: float) -> None:
        """Jumps to t at once if t lies ahead; does nothing if t is already past."""
        t = _check_deadline(t, "ManualClock.sleep_until")
        if t > self._t:
            self._t = t

    def __repr__(self) -> str:
        return f"ManualClock(now={self._t!r})"


def make_clock(kind: str, factor: float = 1.0) -> Clock:
    """Builds a clock by name: "real", "scaled" (runs `factor` times real time) or "manual" (starts at 0).

    `factor` must be 1.0 for "real" (asking for another speed of real time is a mistake worth reporting);
    "manual" ignores it, so a launch file's factor may stay set while tests switch to a manual clock.
    """
    if kind == "real":
        if factor != 1.0:
            raise ClockValueError(
                f"make_clock: a real clock runs at factor 1.0, actual factor: {factor!r}. "
                "Use kind 'scaled' for faster or slower than real time."
            )
        return RealClock()
    if kind == "scaled":
        return ScaledClock(factor)
    if kind == "manual":
        return ManualClock()
    raise ClockKindError(
        f"make_clock: unknown clock kind {kind!r}; expected one of {', '.join(CLOCK_KINDS)}."
    )
