"""The ROS 2 node's goal handling and /diagnostics, without ROS: the bridge fed with real ROS 2 messages (rosbags'
Humble typestore, through CDR bytes), its status events as std_msgs/String and its health as a
diagnostic_msgs/DiagnosticArray serialised and read back; thresholds pinned by hand; the loop's on_tick reaching
the driver through robonav.runtime.run."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags", reason="robonav[ros] (rosbags) is not installed")
from rosbags.typesys import Stores, get_typestore

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loop_toys as toys

from robonav.runtime.driver import ReplayDriver
from robonav.runtime.ros2 import Ros2Bridge
from robonav.runtime.ros2.bag import message_factories
from robonav.runtime.ros2.bridge import status_message
from robonav.runtime.ros2.diagnostics import HealthThresholds, LoopHealth, diagnostic_array, statuses

TS = get_typestore(Stores.ROS2_HUMBLE)
T = TS.types
DIAG = "diagnostic_msgs/msg/DiagnosticArray"


def roundtrip(msg):
    return TS.deserialize_cdr(TS.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)


def header(t: float, frame_id: str):
    return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=int(t), nanosec=0), frame_id=frame_id)


def pose(x: float, y: float):
    return T["geometry_msgs/msg/Pose"](position=T["geometry_msgs/msg/Point"](x=x, y=y, z=0.0),
                                       orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0))


def laserscan():
    return roundtrip(T["sensor_msgs/msg/LaserScan"](
        header=header(1.0, "base_link"), angle_min=-1.0, angle_max=1.0, angle_increment=0.5, time_increment=0.0,
        scan_time=0.1, range_min=0.1, range_max=10.0, ranges=np.full(5, 2.0, np.float32),
        intensities=np.zeros(0, np.float32)))


def odometry(x: float, y: float):
    vec, cov = T["geometry_msgs/msg/Vector3"], np.zeros(36)
    return roundtrip(T["nav_msgs/msg/Odometry"](
        header=header(1.0, "odom"), child_frame_id="base_link",
        pose=T["geometry_msgs/msg/PoseWithCovariance"](pose=pose(x, y), covariance=cov),
        twist=T["geometry_msgs/msg/TwistWithCovariance"](
            twist=T["geometry_msgs/msg/Twist"](linear=vec(x=0.0, y=0.0, z=0.0), angular=vec(x=0.0, y=0.0, z=0.0)),
            covariance=cov)))


def goal(x: float, y: float):
    return roundtrip(T["geometry_msgs/msg/PoseStamped"](header=header(1.0, "odom"), pose=pose(x, y)))


class Rig:
    """A bridge as the node builds it: TwistStamped out, status events as std_msgs/String, a settable clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sent: list = []
        self.events: list[dict] = []
        make, stamp_of = message_factories(TS, stamped=True, frame_id="base_link")

        def status(event: dict) -> None:  # published and received as the node's status topic would be
            self.events.append(json.loads(roundtrip(status_message(T["std_msgs/msg/String"], event)).data))

        self.bridge = Ros2Bridge(send=lambda m: self.sent.append(roundtrip(m)), twist_factory=make, goal_radius=0.3,
                                 status=status, now=lambda: stamp_of(self.now), monotonic=lambda: self.now)

    def command(self) -> tuple[float, float]:
        twist = self.sent[-1].twist
        return twist.linear.x, twist.angular.z


def test_arrival_stops_the_robot_and_publishes_the_result():
    rig = Rig()
    b = rig.bridge
    b.on_odom(odometry(0.0, 0.0))
    number = b.on_goal(goal(1.0, 0.0))
    assert number == 1 and b.goal_outcome(1) == "active"
    b.on_scan(laserscan())
    b.latest_frame()
    b.publish(0.4, 0.2, 1)
    assert rig.command() == (0.4, 0.2) and b.distance == pytest.approx(1.0)
    b.on_odom(odometry(0.8, 0.0))  # 0.2 m from the goal: inside the 0.3 m radius
    b.on_scan(laserscan())
    b.latest_frame()
    b.publish(0.4, 0.2, 2)
    assert rig.command() == (0.0, 0.0) and b.goal_outcome(1) == "arrived"
    assert [e["state"] for e in rig.events] == ["active", "arrived"]
    assert rig.events[1]["distance"] == pytest.approx(0.2) and rig.events[1]["arrivals"] == 1
    assert b.on_goal(goal(3.0, 0.0)) == 2 and b.goal_outcome(1) == "preempted" and b.goal_outcome(2) == "active"
    b.close()
    assert b.goal_outcome(2) == "closed"


def test_cancel_stops_until_the_next_goal():
    rig = Rig()
    b = rig.bridge
    b.cancel()  # no goal yet: nothing to cancel
    assert rig.sent == [] and rig.events == []
    b.on_odom(odometry(0.0, 0.0))
    b.on_goal(goal(5.0, 0.0))
    b.cancel()
    assert rig.command() == (0.0, 0.0) and rig.events[-1]["state"] == "canceled" and b.goal_outcome(1) == "canceled"
    b.on_scan(laserscan())
    b.latest_frame()
    b.publish(0.5, 0.0, 1)
    assert rig.command() == (0.0, 0.0)  # held
    b.on_goal(goal(5.0, 1.0))
    b.on_scan(laserscan())
    b.latest_frame()
    b.publish(0.5, 0.0, 2)
    assert rig.command() == (0.5, 0.0) and b.goal_outcome(2) == "active"


def test_loop_health_windows_pinned():
    h = LoopHealth()
    for k in range(10):
        h.tick(0.1 * k, on_time=k not in (3, 7), stopped=False)
    for us in range(1, 101):  # 1 .. 100 us
        h.answered(us * 1e-6)
    w = h.window()
    assert (w["ticks"], w["deadline_misses"], w["miss_rate"], w["answers"]) == (10, 2, 0.2, 100)
    # numpy's linear percentile of 1..100: p50 = 50.5, p99 = 99 + 0.01 = 99.01
    assert (w["answer_p50_us"], w["answer_p99_us"]) == pytest.approx((50.5, 99.01))
    h.tick(1.0, on_time=True, stopped=True)
    w = h.window()  # a new window; totals kept
    assert (w["ticks"], w["deadline_misses"], w["answers"], w["ticks_total"], w["deadline_misses_total"]) == (
        1, 0, 0, 11, 2)
    assert w["stopped"] and w["answer_p99_us"] == 0.0


def levels(report, t: HealthThresholds | None = None):
    return {name: level for name, level, _, _ in statuses(report, t or HealthThresholds())}


def test_levels_from_thresholds():
    rig = Rig()
    b = rig.bridge
    report = b.health_report()  # nothing yet: no ticks, no scans
    assert levels(report) == {"robonav: loop": 2, "robonav: scan": 1, "robonav: odom": 1, "robonav: goal": 0}
    b.on_scan(laserscan())
    b.on_odom(odometry(0.0, 0.0))
    for k in range(100):
        b.on_tick(0.1 * k, on_time=k != 0, stopped=False)  # 1 % misses: WARN (>= miss_warn 0.01)
    rig.now = 0.2
    assert levels(b.health_report()) == {"robonav: loop": 1, "robonav: scan": 0, "robonav: odom": 0,
                                         "robonav: goal": 0}
    for k in range(100):
        b.on_tick(0.1 * k, on_time=True, stopped=False)
    rig.now = 0.5  # 0.5 s since both: WARN (> 0.25 s)
    assert levels(b.health_report()) == {"robonav: loop": 0, "robonav: scan": 1, "robonav: odom": 1,
                                         "robonav: goal": 0}
    b.on_odom(odometry(0.0, 0.0))
    for k in range(10):
        b.on_tick(0.1 * k, on_time=k > 0, stopped=True)  # 10 % misses: ERROR (>= miss_error 0.1)
    rig.now = 1.6  # scan 1.6 s old: ERROR (> 1 s); odometry 1.1 s: ERROR
    report = b.health_report()
    assert levels(report) == {"robonav: loop": 2, "robonav: scan": 2, "robonav: odom": 2, "robonav: goal": 0}
    assert report["scan"]["age_s"] == pytest.approx(1.6) and report["odom"]["age_s"] == pytest.approx(1.1)
    b.on_tick(2.0, on_time=True, stopped=True)
    rig.now = 1.7
    b.on_scan(laserscan())
    b.on_odom(odometry(0.0, 0.0))
    msgs = {name: message for name, _, message, _ in statuses(b.health_report(), HealthThresholds())}
    assert msgs["robonav: loop"].startswith("holding the robot stopped")
    loose = HealthThresholds(stale_warn=2.0, stale_error=5.0, miss_warn=0.5, miss_error=0.9)
    for k in range(10):
        b.on_tick(0.1 * k, on_time=k > 0, stopped=False)
    rig.now = 3.0  # 1.3 s: OK under loose thresholds
    assert set(levels(b.health_report(), loose).values()) == {0}


def test_diagnostic_array_through_cdr_bytes():
    rig = Rig()
    b = rig.bridge
    b.on_odom(odometry(0.0, 0.0))
    b.on_goal(goal(2.0, 0.0))
    b.on_scan(laserscan())
    b.latest_frame()
    b.publish(0.3, 0.0, 1)
    for k in range(10):
        b.on_tick(0.1 * k, on_time=True, stopped=False)
    rig.now = 0.4  # scan and odometry 0.4 s old: WARN
    stamp = T["builtin_interfaces/msg/Time"](sec=7, nanosec=5)
    msg = diagnostic_array(T, b.health_report(), stamp, "robot1")
    back = roundtrip(msg)
    assert back.__msgtype__ == DIAG and (back.header.stamp.sec, back.header.stamp.nanosec) == (7, 5)
    by_name = {s.name: s for s in back.status}
    assert list(by_name) == ["robonav: loop", "robonav: scan", "robonav: odom", "robonav: goal"]
    status = T["diagnostic_msgs/msg/DiagnosticStatus"]
    assert [s.level for s in back.status] == [status.OK, status.WARN, status.WARN, status.OK] == [0, 1, 1, 0]
    assert {s.hardware_id for s in back.status} == {"robot1"}
    loop = {kv.key: kv.value for kv in by_name["robonav: loop"].values}
    assert (loop["ticks"], loop["deadline_misses"], loop["answers"], loop["stopped"]) == ("10", "0", "1", "false")
    assert float(loop["answer_p50_us"]) > 0
    scan = {kv.key: kv.value for kv in by_name["robonav: scan"].values}
    assert float(scan["age_s"]) == pytest.approx(0.4) and scan["received"] == "1"
    assert "0.40 s ago" in by_name["robonav: scan"].message
    goal_values = {kv.key: kv.value for kv in by_name["robonav: goal"].values}
    assert goal_values["state"] == "active" and float(goal_values["distance_m"]) == pytest.approx(2.0)
    assert by_name["robonav: goal"].message == "goal 1 active, 2.00 m to go"


def test_run_loop_chains_the_drivers_on_tick(tmp_path, capsys):
    """robonav.runtime.run hands every tick to a driver with on_tick (the ROS 2 bridge) beside systemd's."""
    from robonav.runtime.run import RunSettings, run_loop

    class Counting(ReplayDriver):
        def __init__(self, frames) -> None:
            super().__init__(frames)
            self.health = LoopHealth()
            self.on_tick = self.health.tick

    model = toys.write_toy(tmp_path)
    driver = Counting(toys.frames(30))
    settings = dataclasses.replace(RunSettings(), model=str(model), backend="ort", clock="manual", ticks=25,
                                   telemetry=None, align=False, gc_freeze=False)
    assert run_loop(settings, lambda *_: driver, as_json=True) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    w = driver.health.window()
    assert w["ticks"] == summary["ticks"] == 25 and w["deadline_misses"] == summary["deadline_misses"]
    assert math.isfinite(w["miss_rate"])
