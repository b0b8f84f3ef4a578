"""The HIL truth file (robonav.runtime.wire.truth): written by hand, read back, aligned with the frames a loop took
by episode id, seq and stamp; files of another run refused with the reason."""

from __future__ import annotations

import numpy as np
import pytest

from robonav.runtime.wire import TruthError, TruthRecorder, load_truth
from robonav.sensors.frame import ScanSpec, SensorFrame

SCAN = ScanSpec.evenly_spaced(4, range_max=3.5)
OCC = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], bool)


def taken(episode: int, seq: int, stamp: float) -> SensorFrame:
    return SensorFrame(np.ones(4, np.float32), SCAN, np.zeros(3), np.zeros(2), episode_id=episode, stamp=stamp,
                       seq=seq)


@pytest.fixture
def truth_file(tmp_path):
    rec = TruthRecorder()
    rec.start(5, (1.5, 1.5, 0.25), OCC, 1.0)  # episode id 5 on the wire
    rec.sent(10, 0.0)  # the first frame, twice while the runtime connects
    rec.sent(11, 0.1)
    rec.tick((1.6, 1.5, 0.25))
    rec.sent(12, 0.2)
    rec.tick((1.7, 1.5, 0.3))  # the goal: no frame sent
    rec.start(6, (0.5, 0.5, 0.0), ~OCC, 0.5)
    rec.sent(13, 0.3)
    rec.tick((0.6, 0.5, 0.0))
    rec.start(7, (0.0, 0.0, 0.0), OCC, 1.0)  # unfinished: left out of the file
    rec.sent(14, 0.4)
    path = tmp_path / "trajectories.npz"
    rec.save(path, episodes=2)
    return path


def test_round_trip_pinned_by_hand(truth_file):
    with np.load(truth_file) as z:
        assert sorted(z.files) == sorted(["version", *(f"{k}_{i}" for k in ("poses", "episode_id", "seq", "stamps",
                                                                             "ticks", "occupancy", "cell")
                                                       for i in (0, 1))])
        assert int(z["version"]) == 2
    truth = load_truth(truth_file)
    assert sorted(truth.episodes) == [5, 6]
    a, b = truth.episodes[5], truth.episodes[6]
    np.testing.assert_array_equal(a.poses, [[1.5, 1.5, 0.25], [1.6, 1.5, 0.25], [1.7, 1.5, 0.3]])
    assert a.seq.tolist() == [10, 11, 12] and a.stamps.tolist() == [0.0, 0.1, 0.2] and a.ticks.tolist() == [0, 0, 1]
    assert np.array_equal(a.occupancy, OCC) and a.cell == 1.0
    assert b.seq.tolist() == [13] and b.ticks.tolist() == [0] and np.array_equal(b.occupancy, ~OCC) and b.cell == 0.5


def test_align_finds_each_taken_frames_pose(truth_file):
    truth = load_truth(truth_file)
    got = truth.align([taken(5, 11, 0.1), taken(5, 12, 0.2), taken(6, 13, 0.3)], "wire.rnavlog")
    assert [ep.episode_id for ep, _ in got] == [5, 5, 6]
    np.testing.assert_array_equal([p for _, p in got], [[1.5, 1.5, 0.25], [1.6, 1.5, 0.25], [0.5, 0.5, 0.0]])


@pytest.mark.parametrize(("frame", "says"), [
    (taken(7, 14, 0.4), "the loop took frames of episode 7, the truth file holds episodes [5, 6]"),
    (taken(5, 99, 0.2), "frame (episode 5, seq 99) is stamped 0.2 on the wire, the truth file has no such frame"),
    (taken(5, 12, 0.25), "frame (episode 5, seq 12) is stamped 0.25 on the wire, the truth file has stamp 0.2"),
])
def test_align_refuses_another_run(truth_file, frame, says):
    with pytest.raises(TruthError, match=r"does not match wire\.rnavlog") as e:
        load_truth(truth_file).align([frame], "wire.rnavlog")
    assert says in str(e.value) and "(--truth FILE) or none (--no-truth)" in str(e.value)


def test_refuses_old_and_foreign_files(tmp_path):
    old = tmp_path / "old.npz"
    np.savez(old, poses_0=np.zeros((3, 3), np.float32))  # version 1: poses only
    with pytest.raises(TruthError, match="truth file version 1, expected 2"):
        load_truth(old)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(TruthError, match="not a truth file"):
        load_truth(junk)
    torn = tmp_path / "torn.npz"
    np.savez(torn, version=np.array(2), poses_0=np.zeros((3, 3)))
    with pytest.raises(TruthError, match="episode 0 lacks the array"):
        load_truth(torn)
