"""A HIL run's truth beside its wire recording: where the simulated robot really was when it sent each frame.

The wire carries no true pose (a robot has none); the sim-robot (robonav.hil.simrobot) knows it. `TruthRecorder`
collects, per episode, the true pose every tick and, for every frame sent, its seq and stamp (the ones on the wire)
and the tick whose pose it shows; `save` writes one .npz atomically. `load_truth` reads it back and `Truth.align`
finds the true pose of every frame a recorded loop took, by episode id, seq and stamp: a file of another run (other
episodes, stamps that do not line up) is refused in one line. `robonav replay LOG --mcap` writes what it finds as
/robonav/true_pose, /map and /tf_static (robonav.runtime.wire.replay, robonav.runtime.ros2.mcap).

File (``version`` 2; a file without ``version`` holds only ``poses_<i>``, which every version keeps):

    version          int64              2
    poses_<i>        float64 [T, 3]     true x, y, yaw of episode i every tick, its start first, its end last
    episode_id_<i>   int64              the episode's id on the wire
    seq_<i>          uint32 [F]         every frame sent in episode i, in order
    stamps_<i>       float64 [F]        its wire stamp (the robot's clock, seconds)
    ticks_<i>        int32 [F]          the row of poses_<i> it shows
    occupancy_<i>    bool [rows, cols]  the maze (robonav.sim.maze.Maze.occupancy: [iy, ix], iy growing north)
    cell_<i>         float64            its cell size (m)
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robonav.atomic import write_bytes_atomic
from robonav.errors import UserError
from robonav.sensors.frame import SensorFrame

__all__ = ["TRUTH_NAME", "TRUTH_VERSION", "EpisodeTruth", "Truth", "TruthError", "TruthRecorder", "load_truth"]

TRUTH_VERSION = 2
TRUTH_NAME = "trajectories.npz"
"""The truth file's name in a HIL run folder, beside wire.rnavlog (where `robonav replay` looks for it)."""


class TruthError(UserError, ValueError):
    """A truth file that cannot be read, or that belongs to another run than the recording."""


@dataclass
class EpisodeTruth:
    """One episode's truth (the file's arrays of episode i, see the module docstring)."""

    episode_id: int
    poses: np.ndarray
    seq: np.ndarray
    stamps: np.ndarray
    ticks: np.ndarray
    occupancy: np.ndarray
    cell: float

    def frame_index(self) -> dict[int, int]:
        """seq -> the frame's row in seq, stamps and ticks."""
        return {int(s): k for k, s in enumerate(self.seq)}


class TruthRecorder:
    """The sim-robot's truth as it runs: ``start`` each episode, ``tick`` each step, ``sent`` each frame."""

    def __init__(self) -> None:
        self.episodes: list[EpisodeTruth] = []
        self._poses: list[list[np.ndarray]] = []
        self._frames: list[list[tuple[int, float, int]]] = []

    def start(self, episode_id: int, pose: np.ndarray, occupancy: np.ndarray, cell: float) -> None:
        """A new episode begins at true ``pose`` in the maze ``occupancy`` (cells of ``cell`` m)."""
        empty = np.zeros(0)
        self.episodes.append(EpisodeTruth(int(episode_id), empty, empty, empty, empty,
                                          np.asarray(occupancy, bool), float(cell)))
        self._poses.append([np.array(pose, np.float64)])
        self._frames.append([])

    def tick(self, pose: np.ndarray) -> None:
        """The true pose after one step of the current episode."""
        self._poses[-1].append(np.array(pose, np.float64))

    def sent(self, seq: int, stamp: float) -> None:
        """A frame numbered ``seq``, stamped ``stamp``, went out showing the newest pose."""
        self._frames[-1].append((int(seq), float(stamp), len(self._poses[-1]) - 1))

    def save(self, path: str | Path, episodes: int | None = None) -> None:
        """Write the first ``episodes`` episodes (None: all) as the module docstring says, atomically."""
        arrays: dict[str, np.ndarray] = {"version": np.array(TRUTH_VERSION, np.int64)}
        n = len(self.episodes) if episodes is None else episodes
        for i, (ep, poses, frames) in enumerate(zip(self.episodes[:n], self._poses, self._frames, strict=False)):
            sent = np.array(frames, dtype=np.float64).reshape(-1, 3)  # [F, (seq, stamp, tick)]
            arrays |= {f"poses_{i}": np.asarray(poses, np.float64), f"episode_id_{i}": np.array(ep.episode_id),
                       f"seq_{i}": sent[:, 0].astype(np.uint32), f"stamps_{i}": sent[:, 1],
                       f"ticks_{i}": sent[:, 2].astype(np.int32), f"occupancy_{i}": ep.occupancy,
                       f"cell_{i}": np.array(ep.cell)}
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
        write_bytes_atomic(path, buf.getvalue())


class Truth:
    """A truth file read back: its episodes by wire episode id."""

    def __init__(self, path: Path, episodes: list[EpisodeTruth]) -> None:
        self.path = path
        self.episodes = {ep.episode_id: ep for ep in episodes}

    def align(self, frames: list[SensorFrame], log: str | Path) -> list[tuple[EpisodeTruth, np.ndarray]]:
        """The episode and true pose (x, y, yaw) of each frame the loop took (recorded in ``log``), matched by
        episode id and seq, their stamps equal to the bit; TruthError, one line, at the first that is not there."""
        out = []
        index: dict[int, dict[int, int]] = {}
        for frame in frames:
            ep = self.episodes.get(frame.episode_id)
            if ep is None:
                held = sorted(self.episodes)
                raise TruthError(
                    f"{self.path} does not match {log}: the loop took frames of episode {frame.episode_id}, the truth "
                    f"file holds episodes {held[:6]}{' ...' if len(held) > 6 else ''}; give this run's truth file "
                    "(--truth FILE) or none (--no-truth)")
            rows = index.setdefault(ep.episode_id, ep.frame_index())
            k = rows.get(frame.seq)
            if k is None or ep.stamps[k] != frame.stamp:
                found = "no such frame" if k is None else f"stamp {float(ep.stamps[k])!r}"
                raise TruthError(
                    f"{self.path} does not match {log}: frame (episode {frame.episode_id}, seq {frame.seq}) is "
                    f"stamped {frame.stamp!r} on the wire, the truth file has {found}; give this run's truth file "
                    "(--truth FILE) or none (--no-truth)")
            out.append((ep, ep.poses[int(ep.ticks[k])]))
        return out


def load_truth(path: str | Path) -> Truth:
    """Read a truth file (version 2); TruthError, one line, for anything else."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise TruthError(f"{path}: not a truth file ({e}); expected the trajectories.npz of a `robonav hil` run "
                         "with hil.record") from e
    version = int(arrays["version"]) if "version" in arrays else 1
    if version != TRUTH_VERSION:
        raise TruthError(f"{path}: truth file version {version}, expected {TRUTH_VERSION} (version 1 holds no frame "
                         "stamps to align with a recording); rerun `robonav hil --set hil.record=true`")
    episodes = []
    i = 0
    try:
        while f"poses_{i}" in arrays:
            episodes.append(EpisodeTruth(int(arrays[f"episode_id_{i}"]), arrays[f"poses_{i}"], arrays[f"seq_{i}"],
                                         arrays[f"stamps_{i}"], arrays[f"ticks_{i}"], arrays[f"occupancy_{i}"],
                                         float(arrays[f"cell_{i}"])))
            i += 1
    except KeyError as e:
        raise TruthError(f"{path}: episode {i} lacks the array {e.args[0]!r}; the file is damaged: rerun the HIL run") \
            from e
    return Truth(path, episodes)
