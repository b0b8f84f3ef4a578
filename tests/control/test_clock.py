"""Clocks: ManualClock semantics, ScaledClock speed, RealClock never waking early, make_clock's choices."""

from __future__ import annotations

import time

import pytest

from robonav.control.clock import (
    Clock,
    ClockKindError,
    ClockValueError,
    ManualClock,
    RealClock,
    ScaledClock,
    make_clock,
)


def test_manual_clock_moves_only_when_told():
    clock = ManualClock(start=2.0)
    assert clock.now() == 2.0
    assert clock.now() == 2.0  # reading does not move it
    clock.advance(0.5)
    assert clock.now() == 2.5
    clock.advance(0.0)
    assert clock.now() == 2.5
    clock.set(4.0)
    assert clock.now() == 4.0
    clock.sleep_until(4.75)  # jumps at once
    assert clock.now() == 4.75
    clock.sleep_until(1.0)  # in the past: nothing happens
    assert clock.now() == 4.75


def test_manual_clock_fixed_step_loop_is_exact():
    clock = ManualClock()
    period = 0.1
    deadline = clock.now()
    for _ in range(10):
        deadline += period
        clock.sleep_until(deadline)
    assert clock.now() == deadline  # exactly the accumulated deadline, no drift from the clock itself


def test_manual_clock_refuses_going_backward_and_non_finite_times():
    clock = ManualClock(start=1.0)
    with pytest.raises(ClockValueError, match=r"ManualClock\.advance: dt must be finite and >= 0 s.*-0\.1"):
        clock.advance(-0.1)
    with pytest.raises(ClockValueError, match=r"must not go backward.*now 1\.0, asked for 0\.5"):
        clock.set(0.5)
    with pytest.raises(
        ClockValueError, match=r"ManualClock\.sleep_until: the deadline must be a finite time"
    ):
        clock.sleep_until(float("nan"))
    with pytest.raises(ClockValueError, match="ManualClock: start must be a finite time"):
        ManualClock(start=float("inf"))
    assert clock.now() == 1.0


def test_scaled_clock_runs_factor_times_real_time():
    clock = ScaledClock(20.0, start=100.0)
    real0, t0 = time.monotonic(), clock.now()
    assert 100.0 <= t0 < 101.0
    time.sleep(0.1)
    real1, t1 = time.monotonic(), clock.now()
    ratio = (t1 - t0) / (real1 - real0)
    assert 19.0 < ratio < 21.0  # loose: both readings are taken back to back on a shared machine


def test_scaled_clock_sleep_until_never_returns_early():
    clock = ScaledClock(50.0)
    start_real = time.monotonic()
    target = clock.now() + 1.0  # one clock second = 20 ms real
    clock.sleep_until(target)
    assert clock.now() >= target
    assert time.monotonic() - start_real >= 1.0 / 50.0 - 1e-6
    clock.sleep_until(0.0)  # past: returns at once


def test_real_clock_sleep_until_never_returns_early():
    clock = RealClock()
    for wait in (0.0, 0.0003, 0.002, 0.011):
        target = clock.now() + wait
        clock.sleep_until(target)
        assert clock.now() >= target
    before = clock.now()
    clock.sleep_until(before - 5.0)  # past: no wait
    assert clock.now() - before < 0.05


def test_clocks_satisfy_the_protocol():
    for clock in (RealClock(), ScaledClock(2.0), ManualClock()):
        assert isinstance(clock, Clock)


def test_make_clock_builds_each_kind():
    assert isinstance(make_clock("real"), RealClock)
    scaled = make_clock("scaled", factor=10.0)
    assert isinstance(scaled, ScaledClock) and scaled.factor == 10.0
    manual = make_clock("manual", factor=10.0)  # factor is ignored by a manual clock
    assert isinstance(manual, ManualClock) and manual.now() == 0.0


def test_make_clock_errors_name_the_choices():
    with pytest.raises(
        ClockKindError, match=r"unknown clock kind 'wall'; expected one of real, scaled, manual"
    ):
        make_clock("wall")
    with pytest.raises(ClockValueError, match=r"a real clock runs at factor 1\.0, actual factor: 5\.0"):
        make_clock("real", factor=5.0)
    with pytest.raises(ClockValueError, match=r"factor must be finite and > 0.*actual: 0\.0"):
        make_clock("scaled", factor=0.0)
    with pytest.raises(ClockValueError, match=r"factor must be finite and > 0.*actual: -2\.0"):
        ScaledClock(-2.0)
