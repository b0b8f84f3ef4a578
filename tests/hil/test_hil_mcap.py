"""A HIL run's truth in its MCAP: a real `robonav hil` run (runtime and sim-robot as two processes over UDP, two
3x3 episodes at 8x real time) recording the wire and the robot's truth, then `robonav replay --mcap`, read back with
rosbags' AnyReader: one true pose per scan at its stamp, each episode's start cell first, map -> odom its start pose,
its maze as /map; a truth file of another run refused in one line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags", reason="robonav[ros] (rosbags) is not installed")
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from robonav import cli
from robonav.eval.episodes import make_episodes
from robonav.runtime.wire import TRUTH_NAME, load_truth

TS = get_typestore(Stores.ROS2_HUMBLE)
SUITE, SEED, EPISODES = "val-3x3", 3, 2


def read(path: Path) -> dict[str, list]:
    """{topic: [message]} in log-time order."""
    out: dict[str, list] = {}
    with AnyReader([path], default_typestore=TS) as r:
        for conn, _, raw in r.messages():
            out.setdefault(conn.topic, []).append(r.deserialize(raw, conn.msgtype))
    return out


def stamp(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def yaw(q) -> float:
    return math.atan2(2 * (q.w * q.z + q.x * q.y), 1 - 2 * (q.y * q.y + q.z * q.z))


def xyyaw(p) -> tuple[float, float, float]:
    return p.position.x, p.position.y, yaw(p.orientation)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """The folder of one recorded HIL run (`robonav hil --set hil.record=true`)."""
    out = tmp_path_factory.mktemp("hil") / "run"
    argv = ["hil", "--launch", "hil", "--episodes", str(EPISODES), "--out", str(out), "--set", "hil.record=true",
            "--set", f"hil.suite={SUITE}", "--set", f"hil.seed={SEED}", "--set", "hil.clock_factor=8",
            "--set", "hil.timeout=400", "--set", "robot.connect_timeout=240", "--json"]  # slow start when loaded
    assert cli.main(argv) == 0
    return out


def test_record_writes_the_truth_and_replay_writes_the_true_pose(run, tmp_path, capsys):
    capsys.readouterr()
    assert (run / "wire.rnavlog").is_file() and (run / TRUTH_NAME).is_file()  # record on: the truth beside it
    episodes = list(load_truth(run / TRUTH_NAME).episodes.values())
    mazes = [spec.maze for spec in make_episodes(SUITE, EPISODES, SEED)]
    assert len(episodes) == EPISODES
    for ep, maze in zip(episodes, mazes, strict=True):
        assert np.array_equal(ep.occupancy, maze.occupancy) and ep.cell == maze.cell
        np.testing.assert_allclose(ep.poses[0, :2], maze.cell_center(maze.start), atol=1e-9)
        assert np.all(np.diff(ep.ticks) >= 0) and np.all(np.diff(ep.stamps) > 0)

    out = tmp_path / "run.mcap"
    assert cli.main(["replay", str(run / "wire.rnavlog"), "--mcap", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["identical"] and result["truth"] == str(run / TRUTH_NAME)
    got = read(out)
    scans, true, odom = got["/scan"], got["/robonav/true_pose"], got["/odom"]
    assert len(true) == len(scans) == result["frames"] > 30  # one true pose per scan
    assert [stamp(m) for m in true] == [stamp(m) for m in scans]  # at the scan's stamp
    assert {m.header.frame_id for m in true} == {"map"}
    tfs, grids = [m.transforms[0] for m in got["/tf_static"]], got["/map"]
    assert len(tfs) == len(grids) == EPISODES  # one map and one map -> odom per episode, at its first scan
    begins = [stamp(g) for g in grids]
    assert begins == [stamp(m) for m in got["/goal_pose"]] and [stamp(t) for t in tfs] == begins
    which = np.searchsorted(begins, [stamp(m) for m in true], side="right") - 1
    for e, (ep, maze, tf, grid) in enumerate(zip(episodes, mazes, tfs, grids, strict=True)):
        poses = np.array([xyyaw(m.pose) for m, w in zip(true, which, strict=True) if w == e])
        np.testing.assert_allclose(poses[0, :2], maze.cell_center(maze.start), atol=1e-9)  # the start cell first
        # The true poses are those of frames the robot sent, in the order sent (a subsequence: the loop skips the
        # repeats of the first frame while it connects), up to the last tick before the goal.
        sent = ep.poses[ep.ticks]
        at, k = [], 0
        for p in poses:
            while k < len(sent) and not (abs(sent[k, 0] - p[0]) < 1e-9 and abs(sent[k, 1] - p[1]) < 1e-9
                                         and abs(math.remainder(sent[k, 2] - p[2], 2 * math.pi)) < 1e-9):
                k += 1
            assert k < len(sent), f"episode {e}: true pose {p} is no frame the robot sent after frame {at[-1:]}"
            at.append(k)
            k += 1
        assert ep.ticks[at[-1]] >= len(ep.poses) - 3
        assert (tf.header.frame_id, tf.child_frame_id) == ("map", "odom")
        start = (tf.transform.translation.x, tf.transform.translation.y, yaw(tf.transform.rotation))
        np.testing.assert_allclose(start, ep.poses[0], atol=1e-9)  # map -> odom: the start pose
        np.testing.assert_allclose(start, poses[0], atol=1e-9)
        assert (grid.info.width, grid.info.height, grid.info.resolution) == (maze.cols, maze.rows, maze.cell)
        assert np.array_equal(np.asarray(grid.data).reshape(maze.rows, maze.cols) == 100, maze.occupancy)
        # odom through map -> odom lands near the true pose (wheel odometry drifts slowly): the frames agree.
        x0, y0, th0 = start
        odom_e = [m for m, w in zip(odom, which, strict=True) if w == e]
        for m, p in zip(odom_e[:20], poses[:20], strict=True):
            ox, oy, _ = xyyaw(m.pose.pose)
            mx, my = x0 + math.cos(th0) * ox - math.sin(th0) * oy, y0 + math.sin(th0) * ox + math.cos(th0) * oy
            assert math.hypot(mx - p[0], my - p[1]) < 0.05, (e, mx, my, p)


def test_replay_refuses_a_truth_file_of_another_run(run, tmp_path, capsys):
    with np.load(run / TRUTH_NAME) as z:
        arrays = {k: z[k] for k in z.files}
    log = str(run / "wire.rnavlog")
    cases = {"shifted": ({"stamps_0": arrays["stamps_0"] + 0.1}, "is stamped"),
             "other_episode": ({"episode_id_0": arrays["episode_id_0"] + 1}, "the loop took frames of episode"),
             "version1": ({"version": np.array(1)}, "expected 2")}
    for name, (change, says) in cases.items():
        other = tmp_path / f"{name}.npz"
        np.savez(other, **{**arrays, **change})
        mcap = tmp_path / f"{name}.mcap"
        assert cli.main(["replay", log, "--mcap", str(mcap), "--truth", str(other)]) == 2, name
        err = capsys.readouterr().err.strip()
        assert says in err and len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert not mcap.exists()
    mcap = tmp_path / "none.mcap"
    assert cli.main(["replay", log, "--mcap", str(mcap), "--no-truth", "--json"]) == 0
    assert "/robonav/true_pose" not in read(mcap) and "/map" not in read(mcap)
    assert cli.main(["replay", log, "--truth", str(run / TRUTH_NAME)]) == 2  # --truth without --mcap
    assert "give --mcap" in capsys.readouterr().err
