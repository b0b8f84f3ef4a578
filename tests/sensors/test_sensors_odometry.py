"""Odometry integration, goal vector and command block: pinned by hand and held to the NumPy reference."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from robonav.sensors import reference as ref
from robonav.sensors.odometry import command_block, goal_block, integrate_pose, wrap_angle

NAN, INF = float("nan"), float("inf")


def integrate(pose, delta):
    p = np.array(pose, np.float64)
    ok = integrate_pose(p, *delta)
    return ok, tuple(p.tolist())


def test_integration_pinned_by_hand():
    ok, pose = integrate((0.0, 0.0, 0.0), (1.0, 0.0, math.pi / 2))  # forward 1 m, then facing +y
    assert ok and pose == (1.0, 0.0, math.pi / 2)
    ok, pose = integrate(pose, (1.0, 0.5, 0.0))  # 1 m forward (+y) and 0.5 m left (-x) in the robot frame
    assert ok
    np.testing.assert_allclose(pose, (0.5, 1.0, math.pi / 2), atol=1e-15)
    _, pose = integrate((0.0, 0.0, 3.0), (0.0, 0.0, 0.5))  # 3.5 rad wraps to 3.5 - 2 pi
    assert pose[2] == wrap_angle(3.5) and abs(pose[2] - (3.5 - 2 * math.pi)) < 1e-15
    assert wrap_angle(math.pi) == -math.pi and wrap_angle(-math.pi) == -math.pi


def test_non_finite_or_overflowing_deltas_are_dropped_whole():
    for delta in ((NAN, 0.0, 0.0), (0.0, INF, 0.0), (0.0, 0.0, -INF), (1e308, 1e308, 0.0)):
        ok, pose = integrate((1e308, 2.0, 0.1), delta)
        assert not ok and pose == (1e308, 2.0, 0.1)
        assert ref.integrate_pose((1e308, 2.0, 0.1), *delta) is None


def goal(pose, g, clip=10.0):
    out = np.zeros(3, np.float32)
    goal_block(np.array(pose, np.float64), g[0], g[1], clip, out)
    np.testing.assert_array_equal(out, ref.goal_block(pose, g[0], g[1], clip))
    return out.tolist()


def test_goal_vector_pinned_by_hand():
    np.testing.assert_allclose(goal((0.0, 0.0, 0.0), (3.0, 4.0)), [0.5, 0.8, 0.6], rtol=1e-6)
    # facing +y, the goal (3, 4) is 4 m ahead and 3 m to the right: bearing -36.87 degrees
    np.testing.assert_allclose(goal((0.0, 0.0, math.pi / 2), (3.0, 4.0)), [0.5, -0.6, 0.8], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(goal((1.0, 1.0, 0.0), (1.0, -29.0)), [1.0, -1.0, 0.0], atol=1e-7)  # 30 m: clipped
    assert goal((2.0, 3.0, 1.0), (2.0, 3.0)) == [0.0, 0.0, 1.0]  # at the goal: bearing 0
    assert goal((-1e308, 0.0, 0.0), (1e308, 0.0)) == [1.0, 0.0, 1.0]  # too far to represent


def test_command_block_pinned_by_hand():
    out = np.zeros(2, np.float32)
    for (v, w), want in (((0.25, -4.0), [0.5, -1.0]), ((NAN, INF), [0.0, 1.0]), ((-1.0, 0.5), [-1.0, 0.25])):
        command_block(v, w, 0.5, 2.0, out)
        assert out.tolist() == want
        assert ref.command_block(v, w, 0.5, 2.0).tolist() == want


coordinate = st.one_of(st.floats(-1e3, 1e3), st.floats(-1e7, 1e7), st.sampled_from([0.0, 1e300, -1e300]))
angle = st.one_of(st.floats(-4.0, 4.0), st.floats(-1e6, 1e6), st.sampled_from([math.pi, -math.pi, 0.0]))
step = st.one_of(st.floats(-1.0, 1.0), st.floats(-1e9, 1e9), st.sampled_from([NAN, INF, -INF, 1e308, 0.0]))


@settings(max_examples=300, deadline=None)
@given(x=coordinate, y=coordinate, th=st.floats(-math.pi, math.pi), dx=step, dy=step, dth=st.one_of(step, angle))
def test_integration_parity(x, y, th, dx, dy, dth):
    ok, pose = integrate((x, y, th), (dx, dy, dth))
    want = ref.integrate_pose((x, y, th), dx, dy, dth)
    assert (pose if ok else None) == want
    if ok:
        assert -math.pi <= pose[2] < math.pi


@settings(max_examples=300, deadline=None)
@given(x=coordinate, y=coordinate, th=st.floats(-math.pi, math.pi), gx=coordinate, gy=coordinate,
       clip=st.sampled_from([0.5, 10.0]))
def test_goal_parity(x, y, th, gx, gy, clip):
    values = goal((x, y, th), (gx, gy), clip)
    assert 0.0 <= values[0] <= 1.0 and abs(values[1] ** 2 + values[2] ** 2 - 1.0) < 1e-6


@settings(max_examples=200, deadline=None)
@given(v=st.one_of(st.floats(-10, 10), step), w=st.one_of(st.floats(-10, 10), step))
def test_command_parity(v, w):
    out = np.zeros(2, np.float32)
    command_block(v, w, 0.5, 2.0, out)
    np.testing.assert_array_equal(out, ref.command_block(v, w, 0.5, 2.0))


@given(st.tuples(*[st.floats(-50, 50)] * 2, st.floats(-3.14, 3.14)),
       st.tuples(*[st.floats(-50, 50)] * 2, st.floats(-3.14, 3.14)))
@settings(max_examples=200, deadline=None)
def test_pose_delta_is_what_integrate_pose_undoes(prev, pose):
    from robonav.sensors.odometry import pose_delta

    p = np.array(prev, dtype=np.float64)
    d = pose_delta(p, np.array(pose))
    assert integrate_pose(p, *d)
    assert np.allclose(p[:2], pose[:2], atol=1e-9)
    assert abs(wrap_angle(p[2] - pose[2])) < 1e-9


def test_pose_deltas_restart_at_the_origin_on_a_new_episode_and_skip_lost_frames():
    from robonav.sensors.odometry import PoseDeltas

    deltas = PoseDeltas()
    # First frame of episode 3 arrives with the robot already 1 m ahead, turned 90 degrees: the whole pose.
    np.testing.assert_allclose(deltas.delta(3, np.array([1.0, 0.0, np.pi / 2])), [1.0, 0.0, np.pi / 2])
    # The next frame handed out is 1 m further along +y (the robot's forward): 1 m forward in its frame, even if
    # frames between were lost.
    np.testing.assert_allclose(deltas.delta(3, np.array([1.0, 1.0, np.pi / 2])), [1.0, 0.0, 0.0], atol=1e-12)
    # A new episode: measured from the origin again.
    np.testing.assert_allclose(deltas.delta(4, np.array([0.0, -0.5, 0.0])), [0.0, -0.5, 0.0])
