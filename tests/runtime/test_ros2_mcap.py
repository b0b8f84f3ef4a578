"""Runs as MCAP: `RunMcap` pinned by hand, `write_bag`'s files, and `robonav replay --mcap` on a real wire recording
(the real ControlLoop behind a real UdpDriver on loopback, a robot socket sending frames), read back with rosbags'
AnyReader and the ROS 2 Humble typestore."""

from __future__ import annotations

import dataclasses
import json
import math
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags", reason="robonav[ros] (rosbags) is not installed")
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loop_toys as toys

from robonav import cli
from robonav.runtime.ros2.mcap import McapError, RunMcap, write_bag
from robonav.sensors.frame import ScanSpec, SensorFrame

TS = get_typestore(Stores.ROS2_HUMBLE)


def read(path: Path) -> dict[str, list[tuple[int, object]]]:
    """{topic: [(log time ns, message)]} of a bag (a .mcap file or a rosbag2 folder)."""
    out: dict[str, list[tuple[int, object]]] = {}
    with AnyReader([path], default_typestore=TS) as r:
        for conn, t, raw in r.messages():
            out.setdefault(conn.topic, []).append((t, r.deserialize(raw, conn.msgtype)))
    return out


def stamp(msg) -> float:
    if hasattr(msg, "transforms"):
        msg = msg.transforms[0]
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def yaw(q) -> float:
    return math.atan2(2 * (q.w * q.z + q.x * q.y), 1 - 2 * (q.y * q.y + q.z * q.z))


def frame(delta, episode=1, seq=0, scan=toys.SCAN, goal=(4.0, 1.0)) -> SensorFrame:
    return SensorFrame(np.linspace(0.5, 3.0, scan.num_beams).astype(np.float32), scan, np.array(delta, float),
                       np.array(goal), episode_id=episode, stamp=0.1 * seq, seq=seq)


def test_odometry_integrates_per_episode_and_scans_keep_their_description(tmp_path):
    run = RunMcap(memory_every=0.0)
    run.frame(10.0, frame([0.0, 0.0, 0.0]))
    run.frame(10.1, frame([1.0, 0.0, 0.0], seq=1))  # 1 m ahead
    run.frame(10.2, frame([0.0, 0.0, math.pi / 2], seq=2))  # a quarter turn left
    run.frame(10.3, frame([1.0, 0.0, 0.0], seq=3))  # 1 m ahead, now along +y: (1, 1)
    run.frame(10.4, frame([0.0, 0.0, 0.0], episode=2, seq=0, goal=(2.0, -1.0)))  # a new episode: back to 0
    bent = ScanSpec(3, range_max=3.5, angles=(-0.5, 0.1, 0.5))  # per-beam angles: evenly spaced first to last
    run.frame(10.5, frame([0.5, 0.0, 0.0], episode=2, seq=1, scan=bent))
    for t in (10.0, 10.1):
        run.command(t, 0.25, -0.5)
    out = run.write(tmp_path / "run.mcap")
    assert out.is_file() and [p.name for p in tmp_path.iterdir()] == ["run.mcap"]  # no staging left
    got = read(out)
    odom = [m for _, m in got["/odom"]]
    poses = [(m.pose.pose.position.x, m.pose.pose.position.y, yaw(m.pose.pose.orientation)) for m in odom]
    want = [(0, 0, 0), (1, 0, 0), (1, 0, math.pi / 2), (1, 1, math.pi / 2), (0, 0, 0), (0.5, 0, 0)]
    np.testing.assert_allclose(poses, want, atol=1e-9)
    np.testing.assert_allclose([m.twist.twist.linear.x for m in odom], [0, 10, 0, 10, 0, 5], atol=1e-6)  # 1 m/0.1 s
    np.testing.assert_allclose(odom[2].twist.twist.angular.z, math.pi / 2 / 0.1, rtol=1e-6)
    assert {m.header.frame_id for m in odom} == {"odom"} and {m.child_frame_id for m in odom} == {"base_link"}
    tf = [m.transforms[0] for _, m in got["/tf"]]
    assert [(x.header.frame_id, x.child_frame_id) for x in tf] == [("odom", "base_link")] * 6
    assert tf[3].transform.translation.x == pytest.approx(1.0) and tf[3].transform.translation.y == pytest.approx(1.0)
    goals = [(m.pose.position.x, m.pose.position.y) for _, m in got["/goal_pose"]]
    assert goals == [(4.0, 1.0), (2.0, -1.0)]
    scans = [m for _, m in got["/scan"]]
    assert [len(s.ranges) for s in scans] == [64] * 5 + [3]
    assert scans[0].angle_min == pytest.approx(toys.SCAN.angle_min)
    assert (scans[-1].angle_min, scans[-1].angle_increment, scans[-1].angle_max) == pytest.approx((-0.5, 0.5, 0.5))
    assert [stamp(s) for s in scans] == pytest.approx([10.0, 10.1, 10.2, 10.3, 10.4, 10.5])
    assert [t for t, _ in got["/scan"]] == [10_000_000_000 + k * 100_000_000 for k in range(6)]
    cmds = [m for _, m in got["/cmd_vel"]]
    assert [(c.twist.linear.x, c.twist.angular.z, c.header.frame_id) for c in cmds] == [(0.25, -0.5, "base_link")] * 2
    assert "/robonav/memory" not in got  # memory_every 0: none


def test_an_episodes_first_frame_lands_on_its_delta(tmp_path):
    # PoseDeltas gives the first frame the loop takes of an episode the motion since the episode's start (earlier
    # frames lost): the odom frame stays at the start pose and the robot lands 1 m ahead, as the Preprocessor does.
    run = RunMcap(memory_every=0.0)
    run.frame(1.0, frame([1.0, 0.0, math.pi / 2], episode=7, seq=4))
    run.frame(1.1, frame([1.0, 0.0, 0.0], episode=7, seq=5))  # 1 m ahead, along +y after the quarter turn
    odom = [m.pose.pose for _, m in read(run.write(tmp_path / "run.mcap"))["/odom"]]
    got = [(p.position.x, p.position.y, yaw(p.orientation)) for p in odom]
    np.testing.assert_allclose(got, [(1, 0, math.pi / 2), (1, 1, math.pi / 2)], atol=1e-9)


def test_memory_grid_cropped_to_known_cells_at_its_rate(tmp_path):
    from robonav.sensors.preprocessor import Preprocessor

    pre = Preprocessor(toys.SPEC)
    run = RunMcap(memory_every=1.0)
    written = []
    for k, f in enumerate(toys.frames(25)):
        pre(f, np.zeros(2))
        written.append(run.memory(0.1 * k, pre))
    assert [k for k, w in enumerate(written) if w] == [0, 10, 20]  # 0.0, 1.0, 2.0 s
    assert run.memory(2.05, pre, force=True)  # the episode's end
    run.write(tmp_path / "grids")  # a rosbag2 folder
    assert (tmp_path / "grids" / "metadata.yaml").exists()
    got = read(tmp_path / "grids")
    assert len(got["/robonav/memory"]) == len(got["/robonav/visits"]) == 4
    grid = got["/robonav/memory"][-1][1]
    occ, vis = pre.memory(0)  # [x cell, y cell]
    res = toys.SPEC.config.grid_resolution
    data = np.asarray(grid.data).reshape(grid.info.height, grid.info.width)  # [y, x]
    assert grid.info.width < occ.shape[0] and grid.info.height < occ.shape[1]  # cropped
    gx, gy = pre.grid_origin
    x0 = round((grid.info.origin.position.x - gx) / res)
    y0 = round((grid.info.origin.position.y - gy) / res)
    crop = occ[x0:x0 + grid.info.width, y0:y0 + grid.info.height].T  # [y, x] as the message
    q = toys.SPEC.config.log_odds_quantum
    want = np.where(crop == 0, -1, np.rint(100.0 / (1.0 + np.exp(-crop * q))))
    np.testing.assert_array_equal(data, want)
    assert (data >= 0).sum() == (occ != 0).sum()  # every known cell kept
    assert data.max() > 50 and 0 <= data[data >= 0].min() < 50  # walls seen, free space cleared
    visits = np.asarray(got["/robonav/visits"][-1][1].data)
    assert (visits == 100).sum() == (vis > 0).sum() and set(np.unique(visits)) <= {-1, 100}


def test_write_bag_refuses_an_existing_output_and_leaves_nothing_behind(tmp_path):
    out = tmp_path / "run.mcap"
    out.write_text("x")
    with pytest.raises(McapError, match="exists"):
        write_bag(out, [])
    with pytest.raises(McapError, match="storage 'zip'"):
        write_bag(tmp_path / "other", [], storage="zip")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.mcap"]


# -- robonav replay --mcap on a real wire recording ---------------------------------------------------------------


class Robot:
    """The robot's side in the loop's thread: before each tick it sends its next frame (toy frames with their
    odometry pose, ``None``: it sends nothing) over loopback to the UdpDriver, which the loop reads."""

    def __init__(self, udp, sock, plays) -> None:
        from robonav.runtime import wire
        from robonav.sensors.odometry import integrate_pose

        self.udp, self.sock, self.plays, self.k = udp, sock, plays, 0
        self.wire = wire
        sock.sendto(wire.encode_description(wire.Description(toys.SCAN)), udp.address)
        pose, episode = np.zeros(3), None
        self.scan_frames = []
        for f in plays:
            if f is None:
                self.scan_frames.append(None)
                continue
            if f.episode_id != episode:
                episode, pose = f.episode_id, np.zeros(3)
            integrate_pose(pose, *f.odom_delta)
            self.scan_frames.append(wire.ScanFrame(f.ranges, f.scan, pose.copy(), f.goal, f.episode_id, f.stamp,
                                                   f.seq))

    def latest_frame(self):
        if self.k < len(self.scan_frames) and self.scan_frames[self.k] is not None:
            before = self.udp.frames
            for chunk in self.wire.encode_frame(self.scan_frames[self.k]):
                self.sock.sendto(chunk, self.udp.address)
            end = time.monotonic() + 2.0
            while self.udp.frames == before and time.monotonic() < end:
                self.udp.frame_ready()
        self.k += 1
        return self.udp.latest_frame()

    def publish(self, v, omega, seq):
        self.udp.publish(v, omega, seq)

    def stop(self):
        self.udp.stop()

    def close(self):
        self.udp.close()


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """A wire recording of 46 ticks: 20 frames of episode 1, 6 ticks without frames (the watchdog stops the robot),
    20 frames of episode 2; ONNX Runtime on the toy model."""
    from robonav.control.clock import ManualClock
    from robonav.control.safety import SafetyConfig
    from robonav.runtime.backends.onnx_backend import OnnxBackend
    from robonav.runtime.loop import ControlLoop, LoopConfig
    from robonav.runtime.wire.udp_driver import UdpDriver

    folder = tmp_path_factory.mktemp("wire")
    model = toys.write_toy(folder)
    log = folder / "run.rnavlog"
    plays = [*toys.frames(20, 1), *[None] * 6, *toys.frames(20, 2, seed=1, first_seq=20)]  # seq rises on the wire
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        with OnnxBackend(model) as backend:
            config = LoopConfig.for_model(backend.sidecar, watchdog=0.3, ticks=len(plays), telemetry=None,
                                          gc_freeze=False, handle_signals=False)
            clock = ManualClock()
            meta = {"model": str(model), "backend": "ort", "backend_kwargs": {}, "period": config.period,
                    "stress": False, "watchdog": config.watchdog, "safety": dataclasses.asdict(SafetyConfig()),
                    "precision": "fp32", "signed": False}
            udp = UdpDriver(robot=sock.getsockname(), watchdog=0.3, clock=clock, record=str(log), record_meta=meta)
            robot = Robot(udp, sock, plays)
            try:
                summary = ControlLoop.for_backend(backend, robot, clock, config, SafetyConfig()).run()
            finally:
                robot.close()
    finally:
        sock.close()
    assert summary.frames == 40 and summary.episodes == 2 and summary.stale_ticks > 0
    return log


def test_replay_writes_the_run_as_mcap(recording, tmp_path, capsys):
    out = tmp_path / "run.mcap"
    assert cli.main(["replay", str(recording), "--mcap", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["identical"] and result["mcap"] == str(out) and result["frames"] == 40
    got = read(out)
    assert set(got) == {"/scan", "/odom", "/tf", "/goal_pose", "/cmd_vel", "/robonav/memory", "/robonav/visits"}
    assert result["mcap_messages"] == {k: len(v) for k, v in got.items()}
    assert len(got["/scan"]) == len(got["/odom"]) == len(got["/tf"]) == 40 and len(got["/goal_pose"]) == 2
    for topic, rows in got.items():  # log times and stamps increase on every topic; scans strictly
        times = [t for t, _ in rows]
        assert times == sorted(times), topic
        assert [stamp(m) for _, m in rows] == pytest.approx([t * 1e-9 for t in times], abs=1e-9), topic
    assert len({t for t, _ in got["/scan"]}) == 40
    cmds = [m.twist for _, m in got["/cmd_vel"]]
    moving = [c for c in cmds if (c.linear.x, c.angular.z) != (0.0, 0.0)]
    assert len(moving) == 40 == result["commands_logged"]  # one command per scan
    assert len(cmds) - len(moving) >= 3  # watchdog stops in the gap, and the last stop
    assert all(math.isfinite(v) for c in cmds for v in (c.linear.x, c.angular.z))
    # Stamps: the recorder's clock, 0.1 s per tick from 0; episode 2's first frame is tick 26.
    scan_times = [t * 1e-9 for t, _ in got["/scan"]]
    assert scan_times[:2] == pytest.approx([0.0, 0.1]) and scan_times[20] == pytest.approx(2.6)
    # Odometry: 2 cm ahead and 0.01 rad per frame from each episode's start.
    odom = [m.pose.pose for _, m in got["/odom"]]
    assert (odom[0].position.x, odom[20].position.x) == (0.0, 0.0)
    assert odom[1].position.x == pytest.approx(0.02) and yaw(odom[19].orientation) == pytest.approx(0.19)
    grids = got["/robonav/memory"]  # each episode: at its start and 1 s later
    assert [t * 1e-9 for t, _ in grids] == pytest.approx([0.0, 1.0, 2.6, 3.6])
    assert all(g.header.frame_id == "odom" and (np.asarray(g.data) >= 0).any() for _, g in grids)
    assert {s.header.frame_id for _, s in got["/scan"]} == {"base_link"}
    assert all(np.isfinite(np.asarray(s.ranges)).sum() > 30 for _, s in got["/scan"])
    assert cli.main(["replay", str(recording), "--mcap", str(out)]) == 2  # exists: one line, no traceback
    assert "exists" in capsys.readouterr().err
