"""The ROS 2 bridge on plain data: messages are SimpleNamespaces with the ROS attribute names (no rclpy here).

Pinned by hand: quaternion headings, the LaserScan mapping with REP 117 codes and the out-of-limits rule, the
episode origin (robot at odom (2, 1, 90 deg) when the goal (2, 3) arrives -> goal (2, 0) in the episode's frame).
"""

from __future__ import annotations

import array
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace as NS

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robonav.runtime.driver import Driver
from robonav.runtime.ros2 import (
    GoalFrameError,
    LaserScanError,
    PoseError,
    Ros2Bridge,
    fill_twist,
    goal_from_pose_stamped,
    pose_from_odometry,
    scan_from_laserscan,
    yaw_from_quaternion,
)
from robonav.sensors.odometry import integrate_pose

ROOT = Path(__file__).resolve().parents[2]
S45 = math.sqrt(0.5)  # sin(45 deg) = cos(45 deg)


def header(t: float = 0.0, frame_id: str = "odom") -> NS:
    return NS(stamp=NS(sec=int(t), nanosec=round((t - int(t)) * 1e9)), frame_id=frame_id)


def laserscan(ranges=(1.0, 2.0, 3.0, 4.0, 5.0), angle_min: float = -1.0, inc: float = 0.5,
              angle_max: float | None = None, range_min: float = 0.1, range_max: float = 10.0, t: float = 0.0) -> NS:
    n = len(ranges)
    return NS(header=header(t, "laser"), angle_min=angle_min, angle_increment=inc, time_increment=0.0,
              angle_max=angle_min + (n - 1) * inc if angle_max is None else angle_max, scan_time=0.1,
              range_min=range_min, range_max=range_max, ranges=ranges, intensities=[])


def quat(yaw: float) -> NS:
    return NS(x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2))


def pose(x: float, y: float, yaw: float) -> NS:
    return NS(position=NS(x=x, y=y, z=0.0), orientation=quat(yaw))


def odometry(x: float, y: float, yaw: float) -> NS:
    return NS(header=header(), child_frame_id="base_link", pose=NS(pose=pose(x, y, yaw), covariance=[0.0] * 36))


def goal(x: float, y: float, frame_id: str = "odom") -> NS:
    return NS(header=header(frame_id=frame_id), pose=pose(x, y, 0.0))


def twist() -> NS:  # pre-filled with junk, so fill_twist must zero what it does not set
    return NS(linear=NS(x=9.0, y=9.0, z=9.0), angular=NS(x=9.0, y=9.0, z=9.0))


def bridge(sent: list | None = None) -> Ros2Bridge:
    return Ros2Bridge(send=(sent if sent is not None else []).append, odom_frame="odom", twist_factory=twist)


# -- plain mapping ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("q", "yaw"), [
    ((0.0, 0.0, 0.0, 1.0), 0.0),                # identity
    ((0.0, 0.0, S45, S45), math.pi / 2),        # 90 deg about z
    ((0.0, 0.0, 1.0, 0.0), -math.pi),           # 180 deg: [-pi, pi) as robonav wraps angles
    ((0.0, 0.0, -S45, S45), -math.pi / 2),      # -90 deg
    ((0.0, 0.0, 2 * S45, 2 * S45), math.pi / 2),  # not normalised: same heading
    ((S45, 0.0, 0.0, S45), 0.0),                # 90 deg roll: no heading
])
def test_yaw_from_quaternion_pinned(q, yaw):
    assert yaw_from_quaternion(*q) == pytest.approx(yaw, abs=1e-12)


@settings(max_examples=60)
@given(st.floats(-3.1, 3.1), st.floats(0.1, 10.0))
def test_yaw_from_quaternion_any_heading_and_scale(yaw, scale):
    q = quat(yaw)
    assert yaw_from_quaternion(scale * q.x, scale * q.y, scale * q.z, scale * q.w) == pytest.approx(yaw, abs=1e-9)


def test_scan_mapping_rep117_and_out_of_limits():
    msg = laserscan([1.0, math.inf, math.nan, -math.inf, 0.05, 12.0, 0.1, 10.0], angle_min=-1.75, inc=0.5)
    spec, r = scan_from_laserscan(msg, spec_id=4)
    assert (spec.num_beams, spec.angle_min, spec.angle_increment, spec.range_min, spec.range_max, spec.spec_id,
            spec.angles) == (8, -1.75, 0.5, 0.1, 10.0, 4, None)
    assert r.dtype == np.float32
    # codes pass through; 0.05 < range_min -> -inf; 12 > range_max -> +inf; the limits themselves are kept
    np.testing.assert_array_equal(r, np.array([1.0, np.inf, np.nan, -np.inf, -np.inf, np.inf, 0.1, 10.0], np.float32))
    np.testing.assert_allclose(spec.beam_angles()[[0, -1]], [-1.75, 1.75])


def test_scan_mapping_takes_rclpy_arrays_and_copies():
    ranges = array.array("f", [1.0, 2.0, 3.0])  # rclpy hands float32[] fields as array.array
    spec, r = scan_from_laserscan(laserscan(ranges, angle_min=-0.5, inc=0.5))
    ranges[0] = 7.0
    assert spec.num_beams == 3 and r[0] == 1.0  # the frame owns its copy


def test_scan_angle_max_within_half_an_increment_is_accepted():
    spec, _ = scan_from_laserscan(laserscan(angle_max=1.0 + 1e-4))  # float32 rounding in a driver
    assert spec.num_beams == 5


@pytest.mark.parametrize(("kw", "match"), [
    ({"ranges": []}, r"ranges must be a non-empty 1-D sequence, got shape \(0,\)"),
    ({"inc": 0.0}, r"angle_increment > 0, got .*angle_increment=0.0.*reversed"),
    ({"inc": -0.5, "angle_max": -3.0}, r"angle_increment > 0, got .*angle_increment=-0.5"),
    ({"inc": math.nan}, r"angle_increment > 0"),
    ({"angle_max": 1.5}, r"5 beams from angle_min=-1.0 by angle_increment=0.5 end at 1.0, expected about "
                         r"angle_max=1.5"),
    ({"range_min": -0.1}, r"0 <= range_min < range_max < inf, got range_min=-0.1, range_max=10.0"),
    ({"range_min": 10.0}, r"got range_min=10.0, range_max=10.0"),
    ({"range_max": math.inf}, r"range_max=inf"),
])
def test_scan_mapping_errors(kw, match):
    with pytest.raises(LaserScanError, match=match):
        scan_from_laserscan(laserscan(**kw))


@settings(max_examples=50)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=1, max_size=40))
def test_scan_mapping_rule_on_any_values(values):
    _, r = scan_from_laserscan(laserscan(values, range_min=0.1, range_max=10.0))
    x = np.array(values, np.float32)
    inside = np.isfinite(x) & (x >= np.float32(0.1)) & (x <= np.float32(10.0))
    np.testing.assert_array_equal(r[inside], x[inside])
    assert np.isnan(r[np.isnan(x)]).all()
    assert (r[np.isfinite(x) & (x < np.float32(0.1))] == -np.inf).all()
    assert (r[np.isfinite(x) & (x > np.float32(10.0))] == np.inf).all()
    assert (r[np.isinf(x)] == x[np.isinf(x)]).all()


def test_pose_from_odometry_and_refusals():
    np.testing.assert_allclose(pose_from_odometry(odometry(2.0, 1.0, math.pi / 2)), [2.0, 1.0, math.pi / 2])
    zero = odometry(0.0, 0.0, 0.0)
    zero.pose.pose.orientation = NS(x=0.0, y=0.0, z=0.0, w=0.0)
    with pytest.raises(PoseError, match=r"non-zero finite orientation quaternion.*\(0.0, 0.0, 0.0, 0.0\)"):
        pose_from_odometry(zero)
    with pytest.raises(PoseError, match=r"position \(nan, 1.0\)"):
        pose_from_odometry(odometry(math.nan, 1.0, 0.0))


def test_goal_in_the_odometry_frame_or_refused():
    np.testing.assert_array_equal(goal_from_pose_stamped(goal(2.0, 3.0), "odom"), [2.0, 3.0])
    no_heading = goal(2.0, 3.0)
    no_heading.pose.orientation = NS(x=0.0, y=0.0, z=0.0, w=0.0)  # a goal is a position: orientation unused
    np.testing.assert_array_equal(goal_from_pose_stamped(no_heading, "odom"), [2.0, 3.0])
    with pytest.raises(PoseError, match=r"goal pose: expected a finite position, got \(inf, 3.0\)"):
        goal_from_pose_stamped(goal(math.inf, 3.0), "odom")
    with pytest.raises(GoalFrameError, match=r"expected header.frame_id 'odom' \(the odometry frame\), got 'map', "
                                             r"and TF is off: transform the goal into 'odom' first"):
        goal_from_pose_stamped(goal(2.0, 3.0, "map"), "odom")


def test_fill_twist_sets_v_and_omega_only():
    t = fill_twist(twist(), 0.3, -0.5)
    assert (t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z) == (0.3, 0, 0, 0, 0, -0.5)


# -- the bridge ---------------------------------------------------------------------------------------------------
def test_no_frame_until_scan_odometry_and_goal():
    b = bridge()
    assert isinstance(b, Driver)
    b.on_scan(laserscan())
    assert b.latest_frame() is None
    b.on_goal(goal(1.0, 0.0))  # waits for odometry: no origin yet
    assert b.latest_frame() is None and b.episode_id == 0
    b.on_odom(odometry(0.5, 0.0, 0.0))  # the origin; the pending scan now makes a frame
    f = b.latest_frame()
    assert f is not None and (f.episode_id, f.seq) == (1, 1)
    np.testing.assert_allclose(f.goal, [0.5, 0.0])
    np.testing.assert_array_equal(f.odom_delta, [0.0, 0.0, 0.0])


def test_episode_origin_is_the_odometry_pose_when_the_goal_arrives():
    b = bridge()
    b.on_odom(odometry(2.0, 1.0, math.pi / 2))
    b.on_goal(goal(2.0, 3.0))  # 2 m straight ahead of a robot facing +y
    b.on_scan(laserscan(t=12.25))
    f = b.latest_frame()
    assert f is not None
    np.testing.assert_allclose(f.goal, [2.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(f.odom_delta, [0.0, 0.0, 0.0], atol=1e-12)
    assert (f.episode_id, f.seq, f.stamp) == (1, 1, 12.25)
    f.check()


def test_deltas_integrate_to_the_episode_pose_even_when_scans_are_skipped():
    b = bridge()
    b.on_odom(odometry(2.0, 1.0, math.pi / 2))
    b.on_goal(goal(2.0, 3.0))
    b.on_scan(laserscan())
    frames = [b.latest_frame()]
    b.on_odom(odometry(2.0, 2.0, math.pi / 2))  # 1 m forward: episode pose (1, 0, 0)
    b.on_scan(laserscan())                      # never fetched
    b.on_odom(odometry(1.0, 2.0, math.pi))      # episode pose: (-1, 1) seen from a robot facing +y -> (1, 1, 90 deg)
    b.on_scan(laserscan())
    frames.append(b.latest_frame())
    b.on_odom(odometry(1.0, 0.0, -math.pi / 2))  # (-1, -1) from the origin -> (-1, 1, 180 deg)
    b.on_scan(laserscan())
    frames.append(b.latest_frame())
    assert [f.seq for f in frames] == [1, 2, 3] and b.scans == 4
    p = np.zeros(3)
    expected = [(0.0, 0.0, 0.0), (1.0, 1.0, math.pi / 2), (-1.0, 1.0, -math.pi)]
    for f, e in zip(frames, expected):
        assert integrate_pose(p, *f.odom_delta)
        np.testing.assert_allclose(p, e, atol=1e-9)


def test_scan_pairs_with_the_odometry_of_its_arrival():
    b = bridge()
    b.on_odom(odometry(0.0, 0.0, 0.0))
    b.on_goal(goal(5.0, 0.0))
    b.on_scan(laserscan())
    b.on_odom(odometry(0.3, 0.0, 0.0))  # after the scan: belongs to the next one
    np.testing.assert_allclose(b.latest_frame().odom_delta, [0.0, 0.0, 0.0])
    b.on_scan(laserscan())
    np.testing.assert_allclose(b.latest_frame().odom_delta, [0.3, 0.0, 0.0])


def test_new_goal_new_episode_with_its_own_origin():
    b = bridge()
    b.on_odom(odometry(0.0, 0.0, 0.0))
    b.on_goal(goal(3.0, 0.0))
    b.on_scan(laserscan())
    first = b.latest_frame()
    b.on_odom(odometry(1.0, 0.0, math.pi / 2))
    b.on_goal(goal(1.0, -2.0))  # 2 m straight behind a robot at (1, 0) facing +y: (-2, 0) in the new origin's frame
    b.on_scan(laserscan())
    second = b.latest_frame()
    assert (first.episode_id, second.episode_id, second.seq, b.goals) == (1, 2, 2, 2)
    np.testing.assert_allclose(second.goal, [-2.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(second.odom_delta, [0.0, 0.0, 0.0], atol=1e-12)


def test_same_frame_object_without_a_new_scan_and_spec_reuse():
    b = bridge()
    b.on_odom(odometry(0.0, 0.0, 0.0))
    b.on_goal(goal(1.0, 1.0))
    b.on_scan(laserscan())
    f1 = b.latest_frame()
    b.on_odom(odometry(0.1, 0.0, 0.0))  # odometry alone makes no new frame
    assert b.latest_frame() is f1 and b.latest_frame() is f1
    b.on_scan(laserscan())
    f2 = b.latest_frame()
    assert f2 is not f1 and f2.seq == 2 and f2.scan is f1.scan  # same description: the same ScanSpec object
    b.on_scan(laserscan(range_max=12.0))
    f3 = b.latest_frame()
    assert f3.scan.range_max == 12.0 and f3.scan.spec_id == f1.scan.spec_id + 1
    b.on_scan(laserscan(range_max=12.0))
    assert b.latest_frame().scan is f3.scan


def test_publish_stop_close_fill_the_twist():
    sent: list = []
    b = bridge(sent)
    b.publish(0.3, -0.5, 7)
    b.stop()
    b.publish(math.nan, 1.0, 8)  # never a NaN on /cmd_vel: sent as a stop
    b.close()
    b.close()
    b.publish(0.2, 0.0, 9)  # closed: nothing more
    got = [(t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z) for t in sent]
    assert got == [(0.3, 0, 0, 0, 0, -0.5), (0, 0, 0, 0, 0, 0), (0, 0, 0, 0, 0, 0), (0, 0, 0, 0, 0, 0)]
    assert b.sent == 4 and "non-finite command (nan, 1.0) sent as a stop" in b.last_reason


def test_bad_messages_are_counted_not_raised():
    def failing_send(_twist):
        raise RuntimeError("publisher gone")

    b = Ros2Bridge(send=failing_send, odom_frame="odom", twist_factory=twist)
    b.on_scan(laserscan(inc=0.0))
    assert b.refused == 1 and "scan message refused" in b.last_reason and "angle_increment" in b.last_reason
    b.on_odom(NS(header=header()))  # no pose at all
    b.on_odom(odometry(math.inf, 0.0, 0.0))
    b.on_goal(goal(1.0, 1.0, "map"))
    assert b.refused == 4 and "TF is off" in b.last_reason
    assert (b.scans, b.odoms, b.goals, b.episode_id) == (0, 0, 0, 0)
    b.stop()
    assert b.send_errors == 1 and "publisher gone" in b.last_reason


def test_callbacks_on_another_thread_while_the_loop_reads():
    b = bridge()
    b.on_goal(goal(1.0, 0.0))
    errors: list[BaseException] = []
    done = threading.Event()

    def feed():
        try:
            for i in range(3000):
                b.on_odom(odometry(0.001 * i, 0.0, 0.0))
                b.on_scan(laserscan(t=0.01 * i) if i % 7 else laserscan(inc=0.0))  # a bad one now and then
                if i % 3 == 0:
                    time.sleep(0)  # let the reader in between callbacks (the GIL would batch them)
        except BaseException as e:  # anything here is a failure
            errors.append(e)
        finally:
            done.set()

    thread = threading.Thread(target=feed)
    thread.start()
    frames = {}
    while not done.is_set():
        f = b.latest_frame()
        if f is not None:
            f.check()
            frames[f.seq] = f
        time.sleep(0)
    thread.join()
    last = b.latest_frame()  # the last scan (i = 2999), unless already fetched
    frames[last.seq] = last
    assert not errors and b.refused == 3000 // 7 + 1 and b.scans == 3000 - b.refused
    assert sorted(frames) == list(range(1, b.frames + 1)) and b.frames > 10  # interleaved, each frame once
    p = np.zeros(3)  # their deltas land on the last scan's pose: odometry x = 2.999, origin x = 0
    for seq in sorted(frames):
        assert integrate_pose(p, *frames[seq].odom_delta)
    np.testing.assert_allclose(p, [2.999, 0.0, 0.0], atol=1e-9)


def test_import_does_not_import_rclpy():
    code = ("import sys, robonav.runtime.ros2, robonav.runtime.ros2.bag\n"
            "bad = [m for m in ('rclpy', 'sensor_msgs', 'nav_msgs', 'geometry_msgs', 'tf2_ros', 'rosbags')\n"
            "       if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
