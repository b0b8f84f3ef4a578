"""`robonav eval --mcap DIR`: real PyBullet episodes written as MCAP, read back with rosbags' AnyReader and the ROS 2
Humble typestore; eval's JSON is the same with and without it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("rosbags", reason="robonav[ros] (rosbags) is not installed")
pytest.importorskip("pybullet", reason="robonav[sim] is not installed")
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from robonav import cli
from robonav.eval.episodes import make_episodes

TS = get_typestore(Stores.ROS2_HUMBLE)


def evaluate(capsys, *args: str) -> dict:
    assert cli.main(["eval", "--policy", "expert", "--mazes", "val-3x3", "--episodes", "2", "--envs", "2", *args,
                     "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def stamp(msg) -> float:
    msg = msg.transforms[0] if hasattr(msg, "transforms") else msg
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def test_eval_writes_bounded_episodes_as_mcap_and_the_same_json(tmp_path, capsys):
    plain = evaluate(capsys)
    folder = tmp_path / "mcap"
    with_mcap = evaluate(capsys, "--mcap", str(folder), "--render-count", "1")
    assert with_mcap == plain
    assert sorted(p.name for p in folder.iterdir()) == ["episode-000.mcap", "settings.yaml"]  # --render-count 1
    got: dict[str, list] = {}
    with AnyReader([folder / "episode-000.mcap"], default_typestore=TS) as r:
        durability = {c.topic: [q.durability.name for q in c.ext.offered_qos_profiles] for c in r.connections}
        assert durability["/tf_static"] == durability["/map"] == ["TRANSIENT_LOCAL"] and durability["/scan"] == []
        for conn, t, raw in r.messages():
            got.setdefault(conn.topic, []).append((t, r.deserialize(raw, conn.msgtype)))
    ep = make_episodes("val-3x3", 2, 0)[0]
    steps = plain["per_maze"][ep.maze.name]["mean_steps"]  # the first episode's (one episode per maze here)
    n = len(got["/scan"])
    assert n == int(steps) + 1  # the reset's frame and one per step
    for topic in ("/odom", "/tf", "/robonav/true_pose", "/cmd_vel"):
        assert len(got[topic]) == n, topic  # one command per scan: the last one a stop
    assert len(got["/goal_pose"]) == len(got["/map"]) == len(got["/tf_static"]) == 1
    grids = (n - 1) // 10 + 1 + ((n - 1) % 10 != 0)  # every 10 ticks (1 s) from tick 0, and the last tick
    assert len(got["/robonav/memory"]) == len(got["/robonav/visits"]) == grids
    for topic, rows in got.items():
        times = [t for t, _ in rows]
        assert times == sorted(times), topic
        assert [stamp(m) for _, m in rows] == pytest.approx([t * 1e-9 for t in times]), topic
    assert [t for t, _ in got["/scan"]] == [round(k * 0.1e9) for k in range(n)]  # simulated time, 0.1 s a tick
    cmds = [m.twist for _, m in got["/cmd_vel"]]
    assert (cmds[-1].linear.x, cmds[-1].angular.z) == (0.0, 0.0) and any(c.linear.x > 0.1 for c in cmds)
    assert all(abs(c.linear.x) <= 1.0 and math.isfinite(c.angular.z) for c in cmds)
    frames = {m.header.frame_id for _, m in got["/scan"]} | {m.header.frame_id for _, m in got["/cmd_vel"]}
    assert frames == {"base_link"} and {m.header.frame_id for _, m in got["/robonav/true_pose"]} == {"map"}
    # The truth: the first true pose is the start cell's centre, map -> odom is that pose, odometry starts at 0.
    start = ep.maze.cell_center(ep.maze.start)
    first = got["/robonav/true_pose"][0][1].pose.position
    assert (first.x, first.y) == pytest.approx(start)
    static = got["/tf_static"][0][1].transforms[0]
    assert (static.header.frame_id, static.child_frame_id) == ("map", "odom")
    assert (static.transform.translation.x, static.transform.translation.y) == pytest.approx(start)
    assert got["/odom"][0][1].pose.pose.position.x == 0.0
    goal = got["/goal_pose"][0][1].pose.position  # in the odometry frame: through map -> odom, the goal cell
    q = static.transform.rotation
    th = math.atan2(2 * q.w * q.z, 1 - 2 * q.z * q.z)
    world = (start[0] + math.cos(th) * goal.x - math.sin(th) * goal.y,
             start[1] + math.sin(th) * goal.x + math.cos(th) * goal.y)
    assert world == pytest.approx(ep.maze.cell_center(ep.maze.goal), abs=1e-6)
    maze = got["/map"][0][1]
    assert (maze.info.width, maze.info.height, maze.info.resolution) == (ep.maze.cols, ep.maze.rows, ep.maze.cell)
    np.testing.assert_array_equal(np.asarray(maze.data).reshape(ep.maze.rows, ep.maze.cols) == 100,
                                  ep.maze.occupancy.astype(bool))
    last = got["/robonav/true_pose"][-1][1].pose.position  # the expert reaches the goal
    assert math.hypot(last.x - ep.maze.cell_center(ep.maze.goal)[0],
                      last.y - ep.maze.cell_center(ep.maze.goal)[1]) < 0.3 + 0.06
    scans = [m for _, m in got["/scan"]]
    assert all(len(s.ranges) == len(scans[0].ranges) and np.isfinite(np.asarray(s.ranges)).any() for s in scans)
    assert cli.main(["eval", "--policy", "expert", "--mazes", "val-3x3", "--episodes", "1", "--mcap",
                     str(folder)]) == 2  # a folder with episodes already: one line, before any episode runs
    assert "already holds episode-*.mcap" in capsys.readouterr().err
