"""The TF math in plain NumPy (poses from quaternions, compose, invert) and a mounted laser's scan re-expressed
from the base frame, pinned by hand; the bridge resolving goals and scans through it, and stopping on arrival."""

from __future__ import annotations

import math
from types import SimpleNamespace as NS

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robonav.runtime.ros2 import Ros2Bridge
from robonav.runtime.ros2.tf import MountedScan, compose, invert, pose2d_from_transform, transform_point
from robonav.sensors.frame import ScanSpec

S45 = math.sqrt(0.5)


def yaw_q(yaw: float) -> tuple[float, float, float, float]:
    return (0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2))


ROLL_PI = (1.0, 0.0, 0.0, 0.0)  # 180 deg about x: upside down


def test_pose2d_from_transform_pinned():
    np.testing.assert_allclose(pose2d_from_transform((1.0, 2.0, 0.3), (0.0, 0.0, S45, S45)), [1, 2, math.pi / 2])
    np.testing.assert_allclose(pose2d_from_transform((0.0, 0.0, 0.0), ROLL_PI), [0, 0, 0], atol=1e-12)  # x stays
    np.testing.assert_allclose(pose2d_from_transform((0.0, 0.0, 0.0), (0.0, 0.0, 2.0, 0.0)), [0, 0, math.pi])
    with pytest.raises(ValueError, match=r"is zero or not finite"):
        pose2d_from_transform((0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 0.0))


def test_compose_invert_transform_point_pinned():
    a = np.array([1.0, 2.0, math.pi / 2])  # at (1, 2) facing +y
    np.testing.assert_allclose(compose(a, np.array([1.0, 0.0, 0.0])), [1.0, 3.0, math.pi / 2])  # 1 m ahead
    np.testing.assert_allclose(compose(a, np.array([0.0, 1.0, math.pi / 2])), [0.0, 2.0, -math.pi])  # 1 m left
    np.testing.assert_allclose(invert(a), [-2.0, 1.0, -math.pi / 2])  # the origin seen from a
    np.testing.assert_allclose(transform_point(a, np.array([[2.0, 0.0], [0.0, -1.0]])), [[1, 4], [2, 2]])


@settings(max_examples=60)
@given(st.floats(-5, 5), st.floats(-5, 5), st.floats(-3.1, 3.1), st.floats(-5, 5), st.floats(-5, 5),
       st.floats(-3.1, 3.1))
def test_compose_with_inverse_is_identity_and_matches_transform_point(x, y, t, u, v, w):
    a, b = np.array([x, y, t]), np.array([u, v, w])
    np.testing.assert_allclose(compose(a, invert(a)), [0, 0, 0], atol=1e-9)
    np.testing.assert_allclose(compose(invert(a), a), [0, 0, 0], atol=1e-9)
    np.testing.assert_allclose(compose(a, b)[:2], transform_point(a, b[:2]), atol=1e-12)


def test_mount_at_the_origin_passes_the_scan_through():
    laser = ScanSpec(5, -1.0, 0.5, 0.1, 10.0)
    m = MountedScan(laser, (0.0, 0.0, 0.2), (0.0, 0.0, 0.0, 1.0))
    r = np.array([1.0, np.inf, np.nan, -np.inf, 4.0], np.float32)
    np.testing.assert_array_equal(m(r), r)
    assert (m.spec.num_beams, m.spec.angle_min, m.spec.angle_increment, m.spec.range_max) == (5, -1.0, 0.5, 10.0)


def test_laser_facing_backward_turns_the_fan():
    laser = ScanSpec(4, -math.pi, math.pi / 2, 0.1, 10.0)  # 360 deg: beams at -180, -90, 0, 90 deg
    m = MountedScan(laser, (0.0, 0.0, 0.0), yaw_q(math.pi))
    # beam 0 (-180 deg in the laser) points along base +x: the base fan starts at 0 deg with it
    assert m.spec.angle_min == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_array_equal(m(np.array([1.0, 2.0, 3.0, 4.0])), [1.0, 2.0, 3.0, 4.0])


def test_laser_upside_down_mirrors_the_beams():
    laser = ScanSpec(3, -0.1, 0.1, 0.1, 10.0)
    m = MountedScan(laser, (0.0, 0.0, 0.0), ROLL_PI)
    assert m.mirrored and m.spec.angle_min == pytest.approx(-0.1)
    np.testing.assert_allclose(m(np.array([1.0, 2.0, 3.0])), [3.0, 2.0, 1.0])  # its +0.1 beam looks at base -0.1


def test_laser_ahead_of_the_base_sees_a_wall_from_the_base():
    laser = ScanSpec(3, -0.1, 0.1, 0.1, 10.0)
    m = MountedScan(laser, (0.5, 0.0, 0.3), (0.0, 0.0, 0.0, 1.0))  # 0.5 m ahead of base_link
    wall = 2.0  # a wall 2 m ahead of the laser, 2.5 m ahead of the base
    r = np.array([wall / math.cos(0.1), wall, wall / math.cos(0.1)])
    side = math.hypot(2.5, wall * math.tan(0.1))  # end points (2.5, -+0.2007): headings -+0.080 rad -> bins 0, 2
    np.testing.assert_allclose(m(r), [side, 2.5, side], rtol=1e-6)
    assert (m.spec.range_min, m.spec.range_max) == (0.0, 10.5)  # widened by the offset
    out = m(np.array([np.inf, np.nan, -np.inf]))
    # +inf at -0.1 rad ends at range_max (10.45, -1.0): heading -0.095 -> bin 0; the -inf beam's near point
    # (0.6, 0.01) is seen at +0.017 rad from the base -> bin 1; nothing lands in bin 2 (the NaN beam): NaN
    assert np.isposinf(out[0]) and np.isneginf(out[1]) and np.isnan(out[2])


# -- the bridge through TF ----------------------------------------------------------------------------------------
def header(frame_id: str) -> NS:
    return NS(stamp=NS(sec=1, nanosec=0), frame_id=frame_id)


def odometry(x: float, y: float, yaw: float) -> NS:
    return NS(header=header("odom"), pose=NS(pose=NS(position=NS(x=x, y=y, z=0.0),
                                                     orientation=NS(x=0.0, y=0.0, z=math.sin(yaw / 2),
                                                                    w=math.cos(yaw / 2)))))


def goal(x: float, y: float, frame_id: str) -> NS:
    return NS(header=header(frame_id), pose=NS(position=NS(x=x, y=y, z=0.0), orientation=NS(x=0, y=0, z=0, w=1)))


def scan(frame_id: str, ranges=(1.0, 2.0, 3.0)) -> NS:
    return NS(header=header(frame_id), angle_min=-0.1, angle_max=0.1, angle_increment=0.1, range_min=0.1,
              range_max=10.0, ranges=list(ranges))


def stamped() -> NS:
    return NS(header=NS(stamp=None, frame_id=""), twist=NS(linear=NS(x=9, y=9, z=9), angular=NS(x=9, y=9, z=9)))


def test_goal_in_map_resolved_through_tf_and_refused_without_it():
    events: list[dict] = []
    map_in_odom = np.array([1.0, 0.0, math.pi / 2])  # the map frame's pose in odom
    b = Ros2Bridge(send=[].append, twist_factory=stamped, goal_transform=lambda f: map_in_odom if f == "map" else None,
                   status=events.append)
    b.on_odom(odometry(0.0, 0.0, 0.0))
    b.on_goal(goal(2.0, 0.0, "map"))  # 2 m along map x = odom +y, from (1, 0): (1, 2) in odom
    b.on_scan(scan("base_link"))
    np.testing.assert_allclose(b.latest_frame().goal, [1.0, 2.0], atol=1e-12)
    assert events[-1]["state"] == "active" and events[-1]["goal"] == pytest.approx([1.0, 2.0])
    b.on_goal(goal(2.0, 0.0, "earth"))
    assert b.refused == 1 and events[-1]["state"] == "refused"
    assert "no transform from 'earth' to 'odom' in TF when the goal arrived" in events[-1]["reason"]


def test_scan_from_a_mounted_laser_and_a_missing_mount():
    mounts = {"laser": ((0.0, 0.0, 0.0), ROLL_PI)}
    b = Ros2Bridge(send=[].append, twist_factory=stamped, laser_mount=mounts.get)
    b.on_odom(odometry(0.0, 0.0, 0.0))
    b.on_goal(goal(5.0, 0.0, "odom"))
    b.on_scan(scan("laser"))
    np.testing.assert_array_equal(b.latest_frame().ranges, [3.0, 2.0, 1.0])
    b.on_scan(scan("front_laser"))
    assert b.refused == 1 and "no transform from 'front_laser' to 'base_link' in TF" in b.last_reason


def test_arrival_stops_the_robot_and_says_so_once():
    sent: list = []
    events: list[dict] = []
    b = Ros2Bridge(send=sent.append, twist_factory=stamped, goal_radius=0.3, status=events.append,
                   now=lambda: NS(sec=7, nanosec=5))
    b.on_odom(odometry(0.0, 0.0, 0.0))
    b.on_goal(goal(1.0, 0.0, "odom"))
    b.on_scan(scan("base_link"))
    b.latest_frame()
    b.publish(0.4, 0.1, 1)
    b.on_odom(odometry(0.75, 0.0, 0.0))  # 0.25 m from the goal: inside the radius
    b.on_scan(scan("base_link"))
    b.latest_frame()
    b.publish(0.4, 0.1, 2)  # the policy still asks to move: a stop goes out
    b.on_scan(scan("base_link"))
    b.latest_frame()
    assert [(m.twist.linear.x, m.twist.angular.z) for m in sent] == [(0.4, 0.1), (0.0, 0.0)]
    assert sent[0].header.frame_id == "base_link" and (sent[0].header.stamp.sec, sent[0].header.stamp.nanosec) == (7, 5)
    assert [e["state"] for e in events] == ["active", "arrived"] and events[1]["distance"] == pytest.approx(0.25)
    b.on_goal(goal(3.0, 0.0, "odom"))  # a new goal: moving again
    b.on_scan(scan("base_link"))
    b.latest_frame()
    b.publish(0.4, 0.0, 1)
    assert not b.arrived and sent[-1].twist.linear.x == 0.4
