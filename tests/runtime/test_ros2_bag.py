"""`robonav bag`: a rosbag2 written here with real ROS 2 message types (LaserScan, Odometry; 60 s at 10 Hz from a
simulated episode) runs through the real CLI in a subprocess; the output bag holds one command per scan, all
finite, and the memory grids, readable by the same library; sqlite3 and MCAP. Bad bags get one line."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags", reason="robonav[ros] (rosbags) is not installed")
pytest.importorskip("pybullet", reason="robonav[sim] is not installed")
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from robonav.sensors.odometry import integrate_pose

ROOT = Path(__file__).resolve().parents[2]
TS = get_typestore(Stores.ROS2_HUMBLE)
T = TS.types
T0 = 1_700_000_000.0  # bag time of the first message (s)
STEPS = 600  # 60 s at 10 Hz


def stamp(t: float):
    return T["builtin_interfaces/msg/Time"](sec=int(t), nanosec=int(round((t - int(t)) * 1e9)))


def header(t: float, frame_id: str):
    return T["std_msgs/msg/Header"](stamp=stamp(t), frame_id=frame_id)


def scan_msg(t: float, ranges: np.ndarray, spec, angle_min: float | None = None):
    a0 = spec.angle_min if angle_min is None else angle_min
    n = len(ranges)
    return T["sensor_msgs/msg/LaserScan"](
        header=header(t, "base_link"), angle_min=a0, angle_max=a0 + (n - 1) * spec.angle_increment,
        angle_increment=spec.angle_increment, time_increment=0.0, scan_time=0.1, range_min=spec.range_min,
        range_max=spec.range_max, ranges=ranges.astype(np.float32), intensities=np.zeros(0, np.float32))


def odom_msg(t: float, pose: np.ndarray):
    vec, cov = T["geometry_msgs/msg/Vector3"], np.zeros(36)
    p = T["geometry_msgs/msg/Pose"](position=T["geometry_msgs/msg/Point"](x=pose[0], y=pose[1], z=0.0),
                                    orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=math.sin(pose[2] / 2),
                                                                                  w=math.cos(pose[2] / 2)))
    return T["nav_msgs/msg/Odometry"](
        header=header(t, "odom"), child_frame_id="base_link",
        pose=T["geometry_msgs/msg/PoseWithCovariance"](pose=p, covariance=cov),
        twist=T["geometry_msgs/msg/TwistWithCovariance"](
            twist=T["geometry_msgs/msg/Twist"](linear=vec(x=0.0, y=0.0, z=0.0), angular=vec(x=0.0, y=0.0, z=0.0)),
            covariance=cov))


@pytest.fixture(scope="module")
def episode():
    """(stamped scans and odometry of a simulated run, the first episode's goal): a robot driven by a fixed
    wander for 60 s at 10 Hz; odometry integrated from the frames' deltas (across episode restarts)."""
    from robonav.sim.driver import SimDriver

    driver = SimDriver(seed=3)
    pose = np.zeros(3)
    rows = []
    goal = None
    try:
        for k in range(STEPS):
            f = driver.latest_frame()
            if goal is None:
                goal = f.goal.copy()
            integrate_pose(pose, *f.odom_delta)
            rows.append((T0 + 0.1 * k, f.ranges.copy(), f.scan, pose.copy()))
            driver.publish(0.25, 0.6 * math.sin(0.05 * k), f.seq)
    finally:
        driver.close()
    return rows, goal


def write_bag(path: Path, rows, storage=StoragePlugin.SQLITE3, mutate=None) -> Path:
    with Writer(path, version=9, storage_plugin=storage) as w:
        scan = w.add_connection("/scan", "sensor_msgs/msg/LaserScan", typestore=TS)
        odom = w.add_connection("/odom", "nav_msgs/msg/Odometry", typestore=TS)
        for i, (t, ranges, spec, pose) in enumerate(rows):
            s = scan_msg(t, ranges, spec)
            if mutate is not None:
                s = mutate(i, s, spec, ranges)
            w.write(odom, int(round((t - 0.002) * 1e9)), TS.serialize_cdr(odom_msg(t - 0.002, pose),
                                                                           "nav_msgs/msg/Odometry"))
            w.write(scan, int(round(t * 1e9)), TS.serialize_cdr(s, "sensor_msgs/msg/LaserScan"))
    return path


def robonav(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "robonav.cli", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})


def read_out(path: Path):
    with Reader(path) as r:
        topics = {c.topic: c.msgtype for c in r.connections}
        msgs = [(c.topic, t, TS.deserialize_cdr(raw, c.msgtype)) for c, t, raw in r.messages()]
    return topics, msgs


@pytest.mark.slow
@pytest.mark.parametrize("storage", [StoragePlugin.SQLITE3, StoragePlugin.MCAP])
def test_bag_through_the_cli_one_command_per_scan(tmp_path, episode, storage):
    rows, goal = episode
    bag = write_bag(tmp_path / "in", rows, storage)
    out = tmp_path / "out"
    r = robonav("bag", str(bag), "--policy", "default", "--out", str(out), "--goal", f"{goal[0]},{goal[1]}",
                "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    name = "mcap" if storage == StoragePlugin.MCAP else "sqlite3"
    assert (result["storage"], result["scans"], result["frames"], result["commands"]) == (name, STEPS, STEPS, STEPS)
    assert result["refused"] == 0 and result["bad_frames"] == 0 and result["latency"]["policy"]["count"] == STEPS
    assert any(out.glob("*.mcap" if name == "mcap" else "*.db3"))
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")] and not list(tmp_path.glob(".out*"))
    topics, msgs = read_out(out)
    assert topics == {"/cmd_vel": "geometry_msgs/msg/TwistStamped", "/robonav/memory": "nav_msgs/msg/OccupancyGrid"}
    cmds = [m for topic, _, m in msgs if topic == "/cmd_vel"]
    assert len(cmds) == result["commands"] + result["stops"] and result["stops"] >= 1  # the end's stop
    v = np.array([(m.twist.linear.x, m.twist.angular.z) for m in cmds])
    assert np.isfinite(v).all() and np.abs(v[:, 0]).max() > 0.05  # the policy drove
    assert all(m.header.frame_id == "base_link" for m in cmds)
    grids = [m for topic, _, m in msgs if topic == "/robonav/memory"]
    assert len(grids) == result["memory_grids"] >= 50
    g = grids[-1]
    assert g.header.frame_id == "odom" and g.info.width * g.info.height == len(g.data)
    assert (g.data > 50).sum() > 20 and (g.data == -1).sum() > 0  # walls seen, much still unknown
    times = [t for _, t, _ in msgs]
    assert times == sorted(times)


def test_missing_topic_one_line(tmp_path, episode):
    rows, _ = episode
    bag = write_bag(tmp_path / "in", rows[:20])
    r = robonav("bag", str(bag), "--out", str(tmp_path / "out"), "--scan-topic", "/front/scan", "--goal", "1,0")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        f"robonav bag: {bag}: no scan topic '/front/scan' (sensor_msgs/msg/LaserScan); the bag holds /odom "
        "(nav_msgs/msg/Odometry), /scan (sensor_msgs/msg/LaserScan); name the topic with --scan-topic"]
    r = robonav("bag", str(bag), "--out", str(tmp_path / "out"))  # no goal topic, no --goal
    assert r.returncode == 2 and "no goal topic '/goal_pose'" in r.stderr and "--goal x,y" in r.stderr
    assert not (tmp_path / "out").exists()


def test_changing_geometry_one_line(tmp_path, episode):
    rows, _ = episode

    def shrink(i, s, spec, ranges):
        return scan_msg(s.header.stamp.sec + s.header.stamp.nanosec * 1e-9, ranges[:-1], spec) if i == 7 else s

    bag = write_bag(tmp_path / "in", rows[:20], mutate=shrink)
    r = robonav("bag", str(bag), "--out", str(tmp_path / "out"), "--goal", "1,0")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "scan 8 on /scan changes the scan's geometry" in r.stderr and "split the bag" in r.stderr


def test_out_of_order_stamps_one_line(tmp_path, episode):
    rows, _ = episode

    def back_in_time(i, s, spec, ranges):
        return scan_msg(T0 + 0.05, ranges, spec) if i == 5 else s  # stamped before scan 5 (0.4 s)

    bag = write_bag(tmp_path / "in", rows[:20], mutate=back_in_time)
    r = robonav("bag", str(bag), "--out", str(tmp_path / "out"), "--goal", "1,0")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert re.search(r"scan message 6 on /scan is stamped 1700000000\.0(49|50)\d{6} s, before the previous one "
                     r"\(1700000000\.4000\d{5} s\); stamps out of order", r.stderr)


def test_not_a_bag_and_existing_out_one_line(tmp_path, episode):
    r = robonav("bag", str(tmp_path / "nothing"), "--out", str(tmp_path / "out"), "--goal", "1,0")
    assert r.returncode == 2 and "not a readable rosbag2" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    rows, _ = episode
    bag = write_bag(tmp_path / "in", rows[:5])
    (tmp_path / "out").mkdir()
    r = robonav("bag", str(bag), "--out", str(tmp_path / "out"), "--goal", "1,0")
    assert r.returncode == 2 and "out: exists; robonav bag writes a new bag" in r.stderr
