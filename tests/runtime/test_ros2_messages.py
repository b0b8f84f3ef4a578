"""The bridge against the REAL ROS 2 message definitions (rosbags' Humble typestore, no ROS needed): messages
serialised to CDR bytes and back, then mapped; commands built as Twist and TwistStamped and serialised."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("rosbags", reason="robonav[ros] (rosbags) is not installed")
from rosbags.typesys import Stores, get_typestore

from robonav.runtime.ros2 import Ros2Bridge, pose_from_odometry, scan_from_laserscan
from robonav.runtime.ros2.bag import message_factories

TS = get_typestore(Stores.ROS2_HUMBLE)
T = TS.types


def roundtrip(msg):
    return TS.deserialize_cdr(TS.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)


def header(t: float, frame_id: str):
    return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=int(t), nanosec=int((t % 1) * 1e9)),
                                    frame_id=frame_id)


def pose(x: float, y: float, yaw: float):
    return T["geometry_msgs/msg/Pose"](
        position=T["geometry_msgs/msg/Point"](x=x, y=y, z=0.0),
        orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2)))


def laserscan(ranges, t: float = 3.5):
    return T["sensor_msgs/msg/LaserScan"](
        header=header(t, "base_link"), angle_min=-1.0, angle_max=1.0, angle_increment=0.5, time_increment=0.0,
        scan_time=0.1, range_min=0.1, range_max=10.0, ranges=np.array(ranges, np.float32),
        intensities=np.zeros(0, np.float32))


def odometry(x: float, y: float, yaw: float):
    cov = np.zeros(36)
    return T["nav_msgs/msg/Odometry"](
        header=header(1.0, "odom"), child_frame_id="base_link",
        pose=T["geometry_msgs/msg/PoseWithCovariance"](pose=pose(x, y, yaw), covariance=cov),
        twist=T["geometry_msgs/msg/TwistWithCovariance"](
            twist=T["geometry_msgs/msg/Twist"](linear=T["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0),
                                               angular=T["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0)),
            covariance=cov))


def goal(x: float, y: float, frame_id: str = "odom"):
    return T["geometry_msgs/msg/PoseStamped"](header=header(1.0, frame_id), pose=pose(x, y, 0.0))


def test_laserscan_from_cdr_bytes():
    msg = roundtrip(laserscan([1.0, math.inf, math.nan, 0.05, 12.0]))
    spec, r = scan_from_laserscan(msg)
    assert (spec.num_beams, spec.angle_min, spec.angle_increment, spec.range_min, spec.range_max) == (
        5, -1.0, 0.5, pytest.approx(0.1), 10.0)
    np.testing.assert_array_equal(r, np.array([1.0, np.inf, np.nan, -np.inf, np.inf], np.float32))


def test_odometry_and_goal_from_cdr_bytes_through_the_bridge():
    np.testing.assert_allclose(pose_from_odometry(roundtrip(odometry(2.0, 1.0, math.pi / 2))), [2, 1, math.pi / 2])
    stamped, _ = message_factories(TS, stamped=True, frame_id="base_link")
    b = Ros2Bridge(send=[].append, twist_factory=stamped)
    b.on_odom(roundtrip(odometry(2.0, 1.0, math.pi / 2)))
    b.on_goal(roundtrip(goal(2.0, 3.0)))  # 2 m ahead of a robot facing +y
    b.on_scan(roundtrip(laserscan([1.0] * 5)))
    f = b.latest_frame()
    assert b.refused == 0 and f.stamp == 3.5
    np.testing.assert_allclose(f.goal, [2.0, 0.0], atol=1e-12)


@pytest.mark.parametrize("is_stamped", [True, False])
def test_commands_serialise_as_twist_and_twist_stamped(is_stamped):
    make, now = message_factories(TS, stamped=is_stamped, frame_id="base_link")
    sent: list = []
    b = Ros2Bridge(send=sent.append, twist_factory=make, now=(lambda: now(12.25)) if is_stamped else None)
    b.publish(0.3, -0.5, 1)
    b.stop()
    kind = "geometry_msgs/msg/TwistStamped" if is_stamped else "geometry_msgs/msg/Twist"
    back = [TS.deserialize_cdr(TS.serialize_cdr(m, kind), kind) for m in sent]
    twists = [m.twist if is_stamped else m for m in back]
    assert [(t.linear.x, t.linear.y, t.angular.z) for t in twists] == [(0.3, 0.0, -0.5), (0.0, 0.0, 0.0)]
    if is_stamped:
        assert (back[0].header.frame_id, back[0].header.stamp.sec, back[0].header.stamp.nanosec) == (
            "base_link", 12, 250_000_000)
