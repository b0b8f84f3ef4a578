"""Safety layer: hand-pinned situations, rule order, input checks and parity with the plain-loop reference.

Geometry used throughout (default SafetyConfig): inflated radius R = 0.18 + 0.03 = 0.21 m; the speed factor
toward an obstacle is (clearance - 0.05) / (0.40 - 0.05) = (clearance - 0.05) / 0.35, clipped to [0, 1].
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robonav.control.safety import (
    SafetyConfig,
    SafetyConfigError,
    SafetyInputError,
    SafetyLayer,
    safety_reference,
)

CFG = SafetyConfig()
BIG_DT = 1.0  # accel window +-1.0 m/s and +-4 rad/s: wider than the velocity limits, so it never binds
ANGLES = np.linspace(-np.pi, np.pi, 72, endpoint=False)  # 5 degree beams all around, one at exactly 0
EMPTY = np.full((1, 72), np.inf, dtype=np.float32)  # nothing in range


def wall_scan(x_wall: float) -> np.ndarray:
    """A flat wall across the robot at x = x_wall (ahead if > 0, behind if < 0); other beams see nothing."""
    cos = np.cos(ANGLES)
    with np.errstate(divide="ignore"):
        r = np.where(cos * np.sign(x_wall) > 1e-9, x_wall / cos, np.inf)
    return r.astype(np.float32)[None, :]  # [1, 72]


def point_scan(x: float, y: float) -> tuple[np.ndarray, np.ndarray]:
    """A point obstacle at (x, y) seen by one extra beam, added to a clear 72-beam scan (so no direction is
    blind)."""
    ranges = np.append(EMPTY[0], np.float32(math.hypot(x, y)))[None, :]
    return ranges, np.append(ANGLES, math.atan2(y, x))


def run(v: float, omega: float, ranges: np.ndarray, angles: np.ndarray = ANGLES, dt: float = BIG_DT):
    return SafetyLayer(CFG).filter_one(v, omega, ranges, angles, dt)


# ---- obstacle rule, pinned by hand -------------------------------------------------------------------------


def test_wall_0_3_m_ahead_scales_v_by_the_exact_factor():
    # The beam at angle 0 hits the wall at (0.3, 0): clearance 0.3 - sqrt(0.21^2 - 0) = 0.09 m, the least of
    # all beams (off-axis points are farther ahead). Factor (0.09 - 0.05) / 0.35 = 4/35 = 0.1142857...
    factor = 4.0 / 35.0
    v, omega = run(0.5, 0.0, wall_scan(0.3))
    assert v == pytest.approx(0.5 * factor, rel=1e-6)  # rel: the range is float32(0.3)
    assert omega == 0.0
    v, _ = run(0.25, 0.0, wall_scan(0.3))  # scaling, not capping: half the command gives half the speed
    assert v == pytest.approx(0.25 * factor, rel=1e-6)


def test_off_axis_point_uses_the_disc_chord():
    # Point (0.4, 0.1): half-chord sqrt(0.21^2 - 0.1^2) = sqrt(0.0341) = 0.1846619 m, clearance
    # 0.4 - 0.1846619 = 0.2153381, factor (0.2153381 - 0.05) / 0.35 = 0.4723947.
    ranges, angles = point_scan(0.4, 0.1)
    v, _ = run(0.5, 0.0, ranges, angles)
    assert v == pytest.approx(0.5 * 0.4723947, rel=1e-6)


def test_point_outside_the_corridor_never_limits():
    ranges, angles = point_scan(0.05, 0.22)  # |y| = 0.22 >= 0.21: beside the swept corridor
    assert run(0.5, 0.0, ranges, angles) == (0.5, 0.0)


def test_far_wall_does_not_limit():
    # clearance 0.61 - 0.21 = 0.40 = slow_distance: factor exactly 1
    assert run(0.5, 0.0, wall_scan(0.61))[0] == pytest.approx(0.5, rel=1e-6)


def test_wall_behind_does_not_limit_forward_motion():
    assert run(0.5, 0.0, wall_scan(-0.2)) == (0.5, 0.0)


def test_wall_ahead_does_not_limit_turning_in_place():
    # Wall at 0.22 m: clearance 0.01 < stop_distance, so v toward it is zero; omega is untouched.
    assert run(0.0, 2.0, wall_scan(0.22)) == (0.0, 2.0)
    v, omega = run(0.5, -1.5, wall_scan(0.22))
    assert (v, omega) == (0.0, -1.5)


def test_moving_away_from_a_wall_right_behind_is_unlimited():
    touching = wall_scan(-0.19)  # closer than the inflated radius: backward clearance is negative
    assert run(0.5, 0.0, touching) == (0.5, 0.0)
    assert run(-0.5, 0.0, touching) == (0.0, 0.0)


def test_backward_motion_is_scaled_by_the_wall_behind():
    v, _ = run(-0.5, 0.0, wall_scan(-0.3))
    assert v == pytest.approx(-0.5 * 4.0 / 35.0, rel=1e-6)


# ---- fail closed: blind directions (rule 6), pinned by hand ----------------------------------------------
# With 72 beams of 5 degrees, 19 cover the corridor ahead (-45 to +45 degrees, both edges included) and 19
# behind (135 to 225). At min_valid_fraction 0.5, 10 valid of 19 see (10 >= 9.5), 9 do not.
AHEAD = np.flatnonzero(np.abs(ANGLES) <= np.pi / 4 + 1e-9)
BEHIND = np.flatnonzero(np.abs(ANGLES) >= 3 * np.pi / 4 - 1e-9)


def test_corridor_beam_counts():
    assert len(AHEAD) == 19 and len(BEHIND) == 19
    layer = SafetyLayer(CFG)
    scan = EMPTY.copy()
    scan[0, ANGLES.size // 2 + 10] = np.nan  # +50 degrees: beside the corridor, counted in neither direction
    scan[0, AHEAD[:9]] = np.nan
    layer.filter_one(0.5, 0.0, scan, ANGLES, BIG_DT)
    assert layer.blind.tolist() == [[False, False]]
    scan[0, AHEAD[9]] = np.nan
    layer.filter_one(0.5, 0.0, scan, ANGLES, BIG_DT)
    assert layer.blind.tolist() == [[True, False]]


def test_all_nan_scan_stops_both_ways_but_allows_turning():
    nan_scan = np.full((1, 72), np.nan, dtype=np.float32)  # a dead or blinded lidar that still publishes
    v, _ = SafetyLayer(SafetyConfig()).filter_one(0.5, 0.0, nan_scan, ANGLES, 0.1)
    assert v == 0.0 and str(v) == "0.0"  # a plain zero, not -0.0, so logs and wire read "stop"
    assert run(0.5, 0.0, nan_scan) == (0.0, 0.0)
    assert run(-0.5, 0.0, nan_scan) == (0.0, 0.0)
    assert run(0.5, 1.5, nan_scan) == (0.0, 1.5)  # a disc sweeps no new space turning: it may turn to look


def test_clear_scan_with_one_percent_nan_drives_at_full_speed():
    scan = EMPTY.copy()
    scan[0, 36] = np.nan  # 1 of 72 beams (1.4 %), the worst place: straight ahead
    assert SafetyLayer(SafetyConfig()).filter_one(0.5, 0.0, scan, ANGLES, 1.0) == (0.5, 0.0)
    angles = np.linspace(-np.pi, np.pi, 360, endpoint=False)
    dense = np.full((1, 360), np.inf, dtype=np.float32)
    dense[0, [178, 179, 180, 181]] = np.nan  # 4 of 360 (1.1 %), all in the 91 beams of the corridor ahead
    assert SafetyLayer(SafetyConfig()).filter_one(0.5, 0.0, dense, angles, 1.0) == (0.5, 0.0)


def test_the_threshold_is_half_of_the_corridor_beams():
    scan = EMPTY.copy()
    scan[0, AHEAD[::2]] = np.nan  # 10 of 19 invalid: 9 valid < 9.5
    assert run(0.5, 0.0, scan) == (0.0, 0.0)
    assert run(-0.5, 0.0, scan) == (-0.5, 0.0)  # behind is clear
    scan = EMPTY.copy()
    scan[0, AHEAD[1::2]] = np.nan  # 9 of 19 invalid: 10 valid >= 9.5
    assert run(0.5, 0.0, scan) == (0.5, 0.0)
    scan = EMPTY.copy()
    scan[0, BEHIND[:10]] = np.nan
    assert run(-0.5, 0.0, scan) == (0.0, 0.0)
    assert run(0.5, 0.0, scan) == (0.5, 0.0)


def test_a_wall_that_turns_into_nan_stops_the_robot():
    mixed = wall_scan(0.22)
    mixed[0, np.cos(ANGLES) > 0] = np.nan  # every beam that saw the wall is invalid now
    assert run(0.5, 0.0, mixed) == (0.0, 0.0)


def test_inf_and_minus_inf_are_readings_not_gaps():
    assert run(0.5, 0.0, EMPTY) == (0.5, 0.0)  # +inf: no return within range (REP 117), the way is seen clear
    scan = wall_scan(-0.3)
    scan[0, BEHIND] = -np.inf  # too close: an obstacle, not a blind spot; forward stays free
    assert run(0.5, 0.0, scan) == (0.5, 0.0)
    assert run(-0.5, 0.0, scan) == (0.0, 0.0)


def test_no_beam_toward_a_direction_is_blind():
    front = np.linspace(-np.pi / 2, np.pi / 2, 37)  # a 180 degree scanner: nothing looks behind
    scan = np.full((1, 37), np.inf, dtype=np.float32)
    assert run(0.5, 0.0, scan, front) == (0.5, 0.0)
    assert run(-0.5, 0.0, scan, front) == (0.0, 0.0)
    empty = np.zeros((1, 0), dtype=np.float32)  # a scan with no beams at all
    assert run(0.5, 0.5, empty, np.zeros(0)) == (0.0, 0.5)


def test_fraction_zero_is_the_old_rule():
    old = SafetyConfig(min_valid_fraction=0.0)
    nan_scan = np.full((1, 72), np.nan, dtype=np.float32)
    assert SafetyLayer(old).filter_one(0.5, 0.0, nan_scan, ANGLES, BIG_DT) == (0.5, 0.0)
    mixed = wall_scan(0.22)
    mixed[0, np.cos(ANGLES) > 0] = np.nan
    assert SafetyLayer(old).filter_one(0.5, 0.0, mixed, ANGLES, BIG_DT) == (0.5, 0.0)
    assert SafetyLayer(old).filter_one(0.5, 0.0, wall_scan(0.22), ANGLES, BIG_DT) == (0.0, 0.0)


def test_padding_columns_are_not_beams():
    # A batch of two scanners: 72 beams, and 36 beams of 10 degrees NaN-padded to 72 columns at angle 0.
    angles = np.stack([ANGLES, np.append(np.linspace(-np.pi, np.pi, 36, endpoint=False), np.zeros(36))])
    scans = np.repeat(EMPTY, 2, axis=0)
    scans[1, 36:] = np.nan
    commands = np.array([[0.5, 0.0], [0.5, 0.0]])
    layer = SafetyLayer(CFG, num_envs=2)
    np.testing.assert_array_equal(layer.filter(commands, scans, angles, BIG_DT, num_beams=np.array([72, 36])),
                                  commands)
    blinded = SafetyLayer(CFG, num_envs=2).filter(commands, scans, angles, BIG_DT)  # padding read as beams
    np.testing.assert_array_equal(blinded, [[0.5, 0.0], [0.0, 0.0]])
    with pytest.raises(SafetyInputError, match=r"num_beams must have shape \(2,\) with values in \[0, 72\]"):
        layer.filter(commands, scans, angles, BIG_DT, num_beams=np.array([72, 73]))


def test_minus_inf_beam_ahead_stops():
    ranges = np.full((1, 72), np.inf, dtype=np.float32)
    ranges[0, 36] = -np.inf  # the beam at angle 0: an obstacle at distance 0 ahead
    assert run(0.5, 0.3, ranges) == (0.0, 0.3)
    assert run(-0.5, 0.3, ranges) == (-0.5, 0.3)  # it is not behind
    ranges[0, 36] = np.inf
    ranges[0, 48] = -np.inf  # the beam at +60 degrees still points ahead
    assert run(0.5, 0.0, ranges) == (0.0, 0.0)


def test_zero_and_negative_ranges_count_as_touching():
    ranges, angles = point_scan(0.4, 0.0)
    for bad in (0.0, -1.0):
        ranges[0, -1] = bad  # the point's beam
        assert run(0.5, 0.0, ranges, angles) == (0.0, 0.0)


def test_per_env_radius_and_per_env_angles():
    layer = SafetyLayer(SafetyConfig(min_valid_fraction=0.0), num_envs=2)  # one beam each: geometry only
    ranges = np.array([[0.4], [0.4]], dtype=np.float32)
    angles = np.array([[0.0], [np.pi]])  # env 0 sees the point ahead, env 1 behind
    radius = np.array([0.18, 0.08])
    out = layer.filter(np.array([[0.5, 0.0], [0.5, 0.0]]), ranges, angles, BIG_DT, radius=radius)
    # env 0: clearance 0.4 - 0.21 = 0.19, factor 0.14 / 0.35 = 0.4; env 1: nothing ahead
    np.testing.assert_allclose(out, [[0.2, 0.0], [0.5, 0.0]], rtol=1e-6)
    layer.reset()
    out = layer.filter(np.array([[0.5, 0.0], [-0.5, 0.0]]), ranges, angles, BIG_DT, radius=radius)
    # env 1 backward: clearance 0.4 - (0.08 + 0.03) = 0.29, factor 0.24 / 0.35
    np.testing.assert_allclose(out[1], [-0.5 * 0.24 / 0.35, 0.0], rtol=1e-6)


# ---- limits, acceleration and the rule order ---------------------------------------------------------------


def test_velocity_limits_clip():
    assert run(3.0, -9.0, EMPTY) == (0.5, -2.0)
    assert run(-3.0, 9.0, EMPTY) == (-0.5, 2.0)


@pytest.mark.parametrize("dt", [0.1, 0.03, 0.07, 0.25])
def test_acceleration_from_rest_takes_ceil_ticks(dt):
    layer = SafetyLayer(CFG)
    expected = math.ceil(0.5 / (CFG.accel_max * dt) - 1e-9)  # dt 0.1: 5 ticks, 0.03: 17, 0.07: 8, 0.25: 2
    speeds: list[float] = []
    while not speeds or speeds[-1] < 0.5 - 1e-9:
        speeds.append(layer.filter_one(0.5, 0.0, EMPTY, ANGLES, dt)[0])
        assert len(speeds) <= 100
    assert len(speeds) == expected
    steps = np.diff([0.0, *speeds])
    assert np.all(steps <= CFG.accel_max * dt + 1e-12)


def test_comfort_deceleration_and_angular_acceleration():
    layer = SafetyLayer(CFG)
    for _ in range(10):
        layer.filter_one(0.5, 0.0, EMPTY, ANGLES, 0.1)
    # the policy asks to stop with no obstacle: v falls by accel_max * dt = 0.1 per tick
    # omega rises by alpha_max * dt = 0.4 per tick
    v, omega = layer.filter_one(0.0, 2.0, EMPTY, ANGLES, 0.1)
    assert v == pytest.approx(0.4) and omega == pytest.approx(0.4)
    v, omega = layer.filter_one(0.0, 2.0, EMPTY, ANGLES, 0.1)
    assert v == pytest.approx(0.3) and omega == pytest.approx(0.8)


def test_braking_for_an_obstacle_beats_the_acceleration_limit():
    layer = SafetyLayer(CFG)
    for _ in range(10):
        layer.filter_one(0.5, 0.0, EMPTY, ANGLES, 0.1)
    assert layer.previous[0, 0] == pytest.approx(0.5)
    # A wall appears at clearance 0.09: the factor 4/35 caps v at 0.5 * 4/35 at once, not 0.4 (comfort)
    v, _ = layer.filter_one(0.5, 0.0, wall_scan(0.3), ANGLES, 0.1)
    assert v == pytest.approx(0.5 * 4.0 / 35.0, rel=1e-6)
    # ... and one inside stop_distance stops it within the same tick
    layer.reset()
    for _ in range(10):
        layer.filter_one(0.5, 0.0, EMPTY, ANGLES, 0.1)
    assert layer.filter_one(0.5, 0.0, wall_scan(0.25), ANGLES, 0.1) == (0.0, 0.0)


def test_reversing_while_still_rolling_toward_a_wall_is_capped():
    layer = SafetyLayer(CFG)
    for _ in range(10):
        layer.filter_one(0.5, 0.0, EMPTY, ANGLES, 0.1)
    # The policy asks to reverse; comfort alone would leave v at +0.4, toward a wall at clearance 0.01.
    assert layer.filter_one(-0.5, 0.0, wall_scan(0.22), ANGLES, 0.1) == (0.0, 0.0)


def test_steady_command_near_an_obstacle_reaches_the_scaled_speed():
    # Ramping up with the obstacle factor in place converges on factor * v, not on something smaller.
    layer = SafetyLayer(CFG)
    for _ in range(20):
        v, _ = layer.filter_one(0.5, 0.0, wall_scan(0.3), ANGLES, 0.01)
    assert v == pytest.approx(0.5 * 4.0 / 35.0, rel=1e-6)


def test_estop_is_an_immediate_zero_for_that_env_only():
    layer = SafetyLayer(CFG, num_envs=2)
    scans = np.repeat(EMPTY, 2, axis=0)
    commands = np.array([[0.5, 1.0], [0.5, 1.0]])
    for _ in range(10):
        layer.filter(commands, scans, ANGLES, 0.1)
    out = layer.filter(commands, scans, ANGLES, 0.1, estop=np.array([True, False]))
    np.testing.assert_array_equal(out, [[0.0, 0.0], [0.5, 1.0]])
    out = layer.filter(commands, scans, ANGLES, 0.1)  # released: env 0 ramps up again from rest
    np.testing.assert_allclose(out, [[0.1, 0.4], [0.5, 1.0]])


def test_reset_of_one_env_leaves_the_others():
    layer = SafetyLayer(CFG, num_envs=3)
    scans = np.repeat(EMPTY, 3, axis=0)
    commands = np.full((3, 2), 0.5)
    for _ in range(10):
        layer.filter(commands, scans, ANGLES, 0.1)
    layer.reset([1])
    np.testing.assert_allclose(layer.previous, [[0.5, 0.5], [0.0, 0.0], [0.5, 0.5]])
    layer.reset(np.array([True, False, False]))
    np.testing.assert_allclose(layer.previous[:, 0], [0.0, 0.0, 0.5])


def test_non_finite_commands_are_treated_as_zero():
    assert run(float("nan"), float("inf"), EMPTY) == (0.0, 0.0)


# ---- errors ------------------------------------------------------------------------------------------------


def test_bad_config_is_refused_with_the_field_named():
    with pytest.raises(SafetyConfigError, match=r"SafetyConfig\.v_max must be > 0, actual: 0\.0"):
        SafetyConfig(v_max=0.0)
    with pytest.raises(
        SafetyConfigError, match="slow_distance must be finite and greater than stop_distance"
    ):
        SafetyConfig(slow_distance=0.05, stop_distance=0.05)
    with pytest.raises(SafetyConfigError, match=r"min_valid_fraction must be in \[0, 1\], actual: 1\.5"):
        SafetyConfig(min_valid_fraction=1.5)
    with pytest.raises(SafetyConfigError, match=r"side_margin must be finite and >= 0, actual: -0\.1"):
        SafetyConfig(side_margin=-0.1)


def test_bad_inputs_are_refused_with_shapes():
    layer = SafetyLayer(CFG, num_envs=2)
    scans = np.repeat(EMPTY, 2, axis=0)
    with pytest.raises(SafetyInputError, match=r"commands must have shape \(2, 2\).*actual: \(2,\)"):
        layer.filter(np.zeros(2), scans, ANGLES, 0.1)
    with pytest.raises(SafetyInputError, match=r"ranges must have shape \(2, B\), actual: \(72,\)"):
        layer.filter(np.zeros((2, 2)), EMPTY[0], ANGLES, 0.1)
    with pytest.raises(
        SafetyInputError, match=r"angles must have shape \(72,\) or \(2, 72\).*actual: \(71,\)"
    ):
        layer.filter(np.zeros((2, 2)), scans, ANGLES[:71], 0.1)
    with pytest.raises(SafetyInputError, match=r"dt must be finite and > 0 s, actual: 0\.0"):
        layer.filter(np.zeros((2, 2)), scans, ANGLES, 0.0)
    with pytest.raises(SafetyInputError, match="beam angles must be finite"):
        layer.filter(np.zeros((2, 2)), scans, np.full(72, np.nan), 0.1)
    with pytest.raises(SafetyInputError, match=r"estop must have shape \(2,\)"):
        layer.filter(np.zeros((2, 2)), scans, ANGLES, 0.1, estop=np.array([True]))
    with pytest.raises(SafetyInputError, match=r"radius must be finite, > 0 m"):
        layer.filter(np.zeros((2, 2)), scans, ANGLES, 0.1, radius=np.array([0.1, -0.1]))
    with pytest.raises(SafetyInputError, match=r"filter_one needs num_envs == 1, actual: 2"):
        layer.filter_one(0.1, 0.0, EMPTY, ANGLES, 0.1)
    with pytest.raises(SafetyInputError, match=r"env_ids must lie in \[0, 2\), actual: \[2\]"):
        layer.reset([2])


# ---- parity with the plain-loop reference ------------------------------------------------------------------

RANGE = st.one_of(
    st.floats(0.0, 1.5, width=32),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.5, 0.21, 0.26]),
)
COMMAND = st.one_of(st.floats(-3.0, 3.0), st.sampled_from([math.nan, math.inf, 0.0, 0.5, -0.5]))


@st.composite
def scenarios(draw):
    n = draw(st.integers(1, 4))
    b = draw(st.integers(1, 9))
    ranges = np.array(draw(st.lists(RANGE, min_size=n * b, max_size=n * b)), dtype=np.float32).reshape(n, b)
    per_env = draw(st.booleans())
    shape = (n, b) if per_env else (b,)
    size = math.prod(shape)
    angles = np.array(draw(st.lists(st.floats(-math.pi, math.pi), min_size=size, max_size=size))).reshape(
        shape
    )
    ticks = [
        np.array(draw(st.lists(COMMAND, min_size=2 * n, max_size=2 * n))).reshape(n, 2) for _ in range(4)
    ]
    radius = (
        np.array(draw(st.lists(st.floats(0.05, 0.4), min_size=n, max_size=n)))
        if draw(st.booleans())
        else None
    )
    estop = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    dt = draw(st.floats(0.01, 0.5))
    num_beams = (
        np.array(draw(st.lists(st.integers(0, b), min_size=n, max_size=n))) if draw(st.booleans()) else None
    )
    config = SafetyConfig(min_valid_fraction=draw(st.sampled_from([0.0, 0.3, 0.5, 1.0])))
    return ranges, angles, ticks, radius, estop, dt, num_beams, config


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_filter_matches_the_plain_loop_reference(scenario):
    ranges, angles, ticks, radius, estop, dt, num_beams, config = scenario
    n = ranges.shape[0]
    layer = SafetyLayer(config, num_envs=n)
    previous = np.zeros((n, 2))
    empty = np.full_like(ranges, np.inf)
    for k, commands in enumerate(ticks):
        scan = empty if k == 0 else ranges  # obstacles appear at once after a free tick: braking
        stop = estop if k == 2 else None
        expected = safety_reference(config, previous, commands, scan, angles, dt, radius=radius, estop=stop,
                                    num_beams=num_beams)
        got = layer.filter(commands, scan, angles, dt, radius=radius, estop=stop, num_beams=num_beams)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
        previous = expected


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_invariants_hold_for_any_input(scenario):
    ranges, angles, ticks, radius, _, dt, _, _ = scenario
    n = ranges.shape[0]
    layer = SafetyLayer(CFG, num_envs=n)
    blind = SafetyLayer(CFG, num_envs=n)  # the same commands with nothing in sight
    empty = np.full_like(ranges, np.inf)
    for commands in ticks:
        before = layer.previous
        got = layer.filter(commands, ranges, angles, dt, radius=radius)
        free = blind.filter(commands, empty, angles, dt, radius=radius)
        assert np.isfinite(got).all()
        assert (np.abs(got[:, 0]) <= CFG.v_max).all() and (np.abs(got[:, 1]) <= CFG.omega_max).all()
        np.testing.assert_array_equal(got[:, 1], free[:, 1])  # turning is never limited by obstacles
        assert (np.abs(got[:, 1] - before[:, 1]) <= CFG.alpha_max * dt + 1e-12).all()
        # v may only leave the acceleration window toward zero (braking), never beyond it
        assert (np.abs(got[:, 0]) <= np.abs(before[:, 0]) + CFG.accel_max * dt + 1e-12).all()


def test_the_single_robot_filter_gives_what_filter_gives_and_its_prewarm_keeps_nothing():
    # One robot, 90 random scans and commands (NaN gaps, walls near and far, inf): the loop's SingleFilter and
    # SafetyLayer.filter return the same commands tick by tick, with prewarm calls in between changing nothing.
    rng = np.random.default_rng(7)
    beams = 90
    angles = np.linspace(-math.pi, math.pi, beams, endpoint=False)
    layer, twin = SafetyLayer(SafetyConfig(), 1), SafetyLayer(SafetyConfig(), 1)
    single = layer.single(angles, 0.1)
    limited = 0
    for t in range(90):
        ranges = rng.uniform(0.1, 4.0, beams).astype(np.float32 if t % 2 else np.float64)
        ranges[rng.random(beams) < 0.2] = np.nan
        ranges[rng.random(beams) < 0.1] = np.inf
        v, w = rng.uniform(-0.6, 0.6), rng.uniform(-2.5, 2.5)
        if t % 3 == 0:
            single.prewarm()
        got = single(v, w, ranges)
        want = twin.filter(np.array([[v, w]]), ranges[None], angles, 0.1)[0]
        assert got == (want[0] + 0.0, want[1] + 0.0), t
        np.testing.assert_array_equal(layer.previous, twin.previous)
        np.testing.assert_array_equal(layer.obstacle_factor, twin.obstacle_factor)
        np.testing.assert_array_equal(layer.blind, twin.blind)
        limited += abs(got[0]) < abs(v) - 1e-9
    assert limited > 30  # the rules really acted on these scans
    with pytest.raises(SafetyInputError, match=r"ranges must be float32 or float64 of shape \(90,\)"):
        single(0.1, 0.0, np.ones(89))
    with pytest.raises(SafetyInputError, match="needs num_envs == 1"):
        SafetyLayer(SafetyConfig(), 2).single(angles, 0.1)
