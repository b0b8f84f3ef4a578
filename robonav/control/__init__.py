"""Numpy-only pieces every control loop shares: the safety layer, clocks and command latency.

Floor 1 (docs/design.md): imports nothing of robonav and nothing but numpy and the standard library, so the
simulator, evaluation, HIL and the on-robot runtime all run the very same code.
"""

from __future__ import annotations

from robonav.control.clock import (
    CLOCK_KINDS,
    Clock,
    ClockKindError,
    ClockValueError,
    ManualClock,
    RealClock,
    ScaledClock,
    make_clock,
)
from robonav.control.latency import CommandDelay, CommandShapeError, DelayValueError
from robonav.control.safety import (
    SafetyConfig,
    SafetyConfigError,
    SafetyInputError,
    SafetyLayer,
    safety_reference,
)

__all__ = [
    "CLOCK_KINDS",
    "Clock",
    "ClockKindError",
    "ClockValueError",
    "CommandDelay",
    "CommandShapeError",
    "DelayValueError",
    "ManualClock",
    "RealClock",
    "SafetyConfig",
    "SafetyConfigError",
    "SafetyInputError",
    "SafetyLayer",
    "ScaledClock",
    "make_clock",
    "safety_reference",
]
