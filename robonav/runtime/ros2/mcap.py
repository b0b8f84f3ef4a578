"""Runs as rosbag2 (MCAP): what the robot saw, believed and did, so a run opens in Foxglove or RViz.

`RunMcap` collects a run tick by tick and writes it with rosbags (imported inside, robonav.runtime is on the
robot's import path); `robonav replay LOG --mcap` and `robonav eval --mcap DIR` use it. Topics (REP 105 frames):

    /scan              sensor_msgs/LaserScan        every frame the loop took (frame base_link)
    /odom              nav_msgs/Odometry            odometry integrated from the frames' deltas (odom -> base_link)
    /tf                tf2_msgs/TFMessage           odom -> base_link, with every /odom
    /goal_pose         geometry_msgs/PoseStamped    the goal, once per episode (frame odom)
    /cmd_vel           geometry_msgs/TwistStamped   the commands sent (stops included)
    /robonav/memory    nav_msgs/OccupancyGrid       the Preprocessor's obstacle memory, every ``memory_every`` s
    /robonav/visits    nav_msgs/OccupancyGrid       its trajectory memory (100: visited), at the same times
    /robonav/true_pose geometry_msgs/PoseStamped    the true pose (frame map), where the truth is known: eval, and
                                                    the replay of a HIL recording with its truth file
    /map, /tf_static   OccupancyGrid, TFMessage     the true maze and map -> odom (the start pose), per episode,
                                                    where the truth is known

The odom frame starts at each episode's start pose, as the robot's memories and goal do (SensorFrame): a new
episode restarts it, and its first frame's odometry delta (the motion since the start, where earlier frames were
lost) lands on it, as the Preprocessor's does. Memory grids are cropped to their known cells. A scanner with
per-beam angles is written with evenly spaced angles from its first to its last beam (LaserScan has no per-beam
angles).

`write_bag` is the one rosbag2 writer (`robonav bag` uses it too): the bag is written in a staging folder beside
OUT, then renamed into place; an OUT ending in ``.mcap`` becomes that single MCAP file (what Foxglove opens and
rosbags' AnyReader reads), any other OUT a rosbag2 folder.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from robonav.errors import UserError
from robonav.sensors.frame import SensorFrame
from robonav.sensors.odometry import integrate_pose

__all__ = ["McapError", "RunMcap", "occupancy_grid", "seconds_to_time", "write_bag"]

STORAGES = ("sqlite3", "mcap")
"""rosbag2 storage plugins robonav writes."""
LATCHED = ("/tf_static", "/map")
"""Topics recorded as offered transient-local (latched), so `ros2 bag play` serves them to late subscribers
(tf2's /tf_static listener, RViz's map display) as their publishers would."""


class McapError(UserError):
    """An output robonav cannot write: it exists, or its storage is unknown."""


def typestore() -> Any:
    """rosbags' ROS 2 Humble typestore (its message definitions are those of Jazzy for every type used here);
    McapError, one line, where rosbags is not installed."""
    try:
        from rosbags.typesys import Stores, get_typestore
    except ImportError as e:
        raise McapError(f"writing MCAP needs rosbags, which this Python cannot import ({e}): pip install "
                        "'robonav[ros]'") from e

    return get_typestore(Stores.ROS2_HUMBLE)


def seconds_to_time(types: Any, seconds: float) -> Any:
    """builtin_interfaces/Time of ``seconds`` (nanoseconds rounded, never 1e9)."""
    sec = math.floor(seconds)
    return types["builtin_interfaces/msg/Time"](sec=int(sec),
                                                nanosec=min(int(round((seconds - sec) * 1e9)), 999_999_999))


def _quaternion(types: Any, yaw: float) -> Any:
    return types["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2))


def _pose(types: Any, x: float, y: float, yaw: float) -> Any:
    return types["geometry_msgs/msg/Pose"](position=types["geometry_msgs/msg/Point"](x=float(x), y=float(y), z=0.0),
                                           orientation=_quaternion(types, float(yaw)))


def _header(types: Any, t: float, frame_id: str) -> Any:
    return types["std_msgs/msg/Header"](stamp=seconds_to_time(types, t), frame_id=frame_id)


def _grid(types: Any, data: np.ndarray, corner: np.ndarray, resolution: float, stamp: Any, frame_id: str) -> Any:
    """OccupancyGrid of int8 ``data`` [x cell, y cell] whose cell (0, 0) corner is at pose ``corner`` (x, y, yaw)."""
    info = types["nav_msgs/msg/MapMetaData"](map_load_time=stamp, resolution=float(resolution),
                                             width=int(data.shape[0]), height=int(data.shape[1]),
                                             origin=_pose(types, *corner))
    return types["nav_msgs/msg/OccupancyGrid"](header=types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id),
                                               info=info, data=np.ascontiguousarray(data.T).ravel())  # rows are y


def occupancy_grid(pre: Any, origin: np.ndarray, types: Any, stamp: Any, frame_id: str, crop: bool = False,
                   visits: bool = False) -> Any:
    """A Preprocessor's obstacle memory (-1 unknown, else 0..100 from the log-odds), or with ``visits`` its
    trajectory memory (-1 unvisited, 100 visited), as a nav_msgs/OccupancyGrid in the frame where the episode's
    odometry frame has pose ``origin`` (x, y, yaw). ``crop``: only the bounding box of the known cells."""
    occ, vis = pre.memory(0)  # int64 [x cell, y cell]: log-odds units, visit counts
    c = pre.spec.config
    if visits:
        data = np.where(vis > 0, 100, -1).astype(np.int8)
    else:
        prob = 100.0 / (1.0 + np.exp(-occ.astype(np.float64) * c.log_odds_quantum))
        data = np.where(occ == 0, -1, np.rint(prob)).astype(np.int8)
    gx, gy = pre.grid_origin
    res = float(c.grid_resolution)
    if crop:
        ix, iy = np.nonzero(data >= 0)
        if len(ix) == 0:
            ix, iy = np.array([data.shape[0] // 2]), np.array([data.shape[1] // 2])
        data = data[ix.min():ix.max() + 1, iy.min():iy.max() + 1]
        gx, gy = gx + ix.min() * res, gy + iy.min() * res
    x0, y0, th = (float(v) for v in origin)
    corner = np.array([x0 + math.cos(th) * gx - math.sin(th) * gy, y0 + math.sin(th) * gx + math.cos(th) * gy, th])
    return _grid(types, data, corner, res, stamp, frame_id)


def write_bag(out: str | Path, rows: Iterable[tuple[int, str, str, bytes]], storage: str = "mcap",
              single_file: bool | None = None) -> Path:
    """Write ``rows`` (log time ns, topic, message type, CDR bytes), sorted by time (stable), as a rosbag2 at
    ``out``: a staging folder beside it renamed into place when complete (see the module docstring).
    ``single_file``: one MCAP file rather than a folder (None: where ``out`` ends in .mcap)."""
    ts = typestore()  # first: one line where rosbags is missing
    from rosbags.rosbag2 import StoragePlugin, Writer

    out = Path(out)
    if storage not in STORAGES:
        raise McapError(f"rosbag2 storage {storage!r}: expected one of {list(STORAGES)}")
    if out.exists():
        raise McapError(f"{out}: exists; robonav writes a new bag: remove it or give another path")
    single = storage == "mcap" and (out.suffix == ".mcap" if single_file is None else single_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    bag = staging / (out.stem if single else out.name)  # rosbags names the files after the folder
    latched = [_latched_qos()]
    try:
        with Writer(bag, version=9, storage_plugin=plugin) as writer:
            connections: dict[str, Any] = {}
            for t, topic, msgtype, raw in sorted(rows, key=lambda r: r[0]):
                conn = connections.get(topic)
                if conn is None:
                    conn = connections[topic] = writer.add_connection(
                        topic, msgtype, typestore=ts, offered_qos_profiles=latched if topic in LATCHED else ())
                writer.write(conn, t, raw)
        for written in bag.iterdir():  # rosbags closed them; durable before the rename
            with open(written, "rb") as f:
                os.fsync(f.fileno())
        if single:
            (file,) = [p for p in bag.iterdir() if p.suffix == ".mcap"]
            os.replace(file, out)
        else:
            os.replace(bag, out)
        fd = os.open(out.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _latched_qos() -> Any:
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    never = QosTime(0, 0)
    return Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL, never, never,
               QosLiveliness.AUTOMATIC, never, False)


class RunMcap:
    """A run collected tick by tick (see the module docstring), serialised as it comes; `write` writes it.

    Call ``frame`` for every frame the loop took, ``command`` for every command sent, ``memory`` after a frame
    was preprocessed (it keeps one grid per ``memory_every`` seconds), ``true_pose`` and ``world`` where the
    truth is known. Times are seconds on one clock (the run's); they become the bag's log times and stamps.
    """

    def __init__(self, memory_every: float = 1.0, odom_frame: str = "odom", base_frame: str = "base_link",
                 world_frame: str = "map") -> None:
        self.ts = typestore()
        self.types = self.ts.types
        self.memory_every = memory_every
        self.odom_frame, self.base_frame, self.world_frame = odom_frame, base_frame, world_frame
        self.rows: list[tuple[int, str, str, bytes]] = []
        self.counts: dict[str, int] = {}
        """Messages per topic."""
        self._episode: int | None = None
        self._pose = np.zeros(3)  # odometry pose in the episode's odometry frame
        self._last_t: float | None = None  # time of the episode's previous frame
        self._grid_at = -math.inf

    def _add(self, t: float, topic: str, msgtype: str, msg: Any) -> None:
        self.rows.append((int(round(t * 1e9)), topic, msgtype, bytes(self.ts.serialize_cdr(msg, msgtype))))
        self.counts[topic] = self.counts.get(topic, 0) + 1

    def frame(self, t: float, frame: SensorFrame) -> None:
        """/scan, /odom and /tf of a frame taken at ``t``; /goal_pose where it begins an episode."""
        T = self.types
        if frame.episode_id != self._episode:
            self._episode = frame.episode_id
            self._pose[:] = 0.0
            self._last_t = None
            self._grid_at = -math.inf
            goal = T["geometry_msgs/msg/PoseStamped"](header=_header(T, t, self.odom_frame),
                                                      pose=_pose(T, frame.goal[0], frame.goal[1], 0.0))
            self._add(t, "/goal_pose", "geometry_msgs/msg/PoseStamped", goal)
        integrate_pose(self._pose, *(float(d) for d in frame.odom_delta))
        self._add(t, "/scan", "sensor_msgs/msg/LaserScan", self._laserscan(t, frame))
        v = w = 0.0
        if self._last_t is not None and t > self._last_t:
            dt = t - self._last_t
            v, w = float(np.hypot(*frame.odom_delta[:2])) / dt, float(frame.odom_delta[2]) / dt
            v = math.copysign(v, float(frame.odom_delta[0]))
        self._last_t = t
        x, y, yaw = (float(p) for p in self._pose)
        vec, cov = T["geometry_msgs/msg/Vector3"], np.zeros(36)
        odom = T["nav_msgs/msg/Odometry"](
            header=_header(T, t, self.odom_frame), child_frame_id=self.base_frame,
            pose=T["geometry_msgs/msg/PoseWithCovariance"](pose=_pose(T, x, y, yaw), covariance=cov),
            twist=T["geometry_msgs/msg/TwistWithCovariance"](
                twist=T["geometry_msgs/msg/Twist"](linear=vec(x=v, y=0.0, z=0.0), angular=vec(x=0.0, y=0.0, z=w)),
                covariance=cov))
        self._add(t, "/odom", "nav_msgs/msg/Odometry", odom)
        self._add(t, "/tf", "tf2_msgs/msg/TFMessage", self._tf(t, self.odom_frame, self.base_frame, x, y, yaw))

    def _laserscan(self, t: float, frame: SensorFrame) -> Any:
        spec = frame.scan
        n = spec.num_beams
        a0, inc = float(spec.angle_min), float(spec.angle_increment)
        if spec.angles is not None:
            a0 = float(spec.angles[0])
            inc = (float(spec.angles[-1]) - a0) / (n - 1) if n > 1 else 0.0
        return self.types["sensor_msgs/msg/LaserScan"](
            header=_header(self.types, t, self.base_frame), angle_min=a0, angle_max=a0 + (n - 1) * inc,
            angle_increment=inc, time_increment=0.0, scan_time=0.0, range_min=float(spec.range_min),
            range_max=float(spec.range_max), ranges=np.asarray(frame.ranges, np.float32).copy(),
            intensities=np.zeros(0, np.float32))

    def _tf(self, t: float, parent: str, child: str, x: float, y: float, yaw: float) -> Any:
        T = self.types
        transform = T["geometry_msgs/msg/Transform"](translation=T["geometry_msgs/msg/Vector3"](x=x, y=y, z=0.0),
                                                     rotation=_quaternion(T, yaw))
        stamped = T["geometry_msgs/msg/TransformStamped"](header=_header(T, t, parent), child_frame_id=child,
                                                          transform=transform)
        return T["tf2_msgs/msg/TFMessage"](transforms=[stamped])

    def command(self, t: float, v: float, omega: float) -> None:
        """/cmd_vel: a command (a stop is 0, 0) sent at ``t``."""
        T = self.types
        vec = T["geometry_msgs/msg/Vector3"]
        twist = T["geometry_msgs/msg/Twist"](linear=vec(x=float(v), y=0.0, z=0.0),
                                             angular=vec(x=0.0, y=0.0, z=float(omega)))
        self._add(t, "/cmd_vel", "geometry_msgs/msg/TwistStamped",
                  T["geometry_msgs/msg/TwistStamped"](header=_header(T, t, self.base_frame), twist=twist))

    def memory(self, t: float, pre: Any, force: bool = False) -> bool:
        """/robonav/memory and /robonav/visits of the Preprocessor ``pre`` at ``t``, if ``memory_every`` seconds
        passed since the episode's last grid (or ``force``); whether it wrote them."""
        if not hasattr(pre, "memory") or self.memory_every <= 0 or (
                not force and t - self._grid_at < self.memory_every - 1e-9):
            return False
        self._grid_at = t
        stamp = seconds_to_time(self.types, t)
        for topic, visits in (("/robonav/memory", False), ("/robonav/visits", True)):
            grid = occupancy_grid(pre, np.zeros(3), self.types, stamp, self.odom_frame, crop=True, visits=visits)
            self._add(t, topic, "nav_msgs/msg/OccupancyGrid", grid)
        return True

    def true_pose(self, t: float, pose: np.ndarray) -> None:
        """/robonav/true_pose: the true pose (x, y, yaw) in the world frame at ``t``."""
        T = self.types
        self._add(t, "/robonav/true_pose", "geometry_msgs/msg/PoseStamped",
                  T["geometry_msgs/msg/PoseStamped"](header=_header(T, t, self.world_frame), pose=_pose(T, *pose)))

    def world(self, t: float, occupancy: np.ndarray, cell: float, start: np.ndarray) -> None:
        """/map (the true grid, ``occupancy`` [row y, column x], True: wall, cells of ``cell`` m, corner at the
        world origin) and /tf_static world -> odom (the episode's ``start`` pose)."""
        data = np.where(np.asarray(occupancy, bool), 100, 0).astype(np.int8).T  # [x cell, y cell]
        self._add(t, "/map", "nav_msgs/msg/OccupancyGrid",
                  _grid(self.types, data, np.zeros(3), cell, seconds_to_time(self.types, t), self.world_frame))
        self._add(t, "/tf_static", "tf2_msgs/msg/TFMessage",
                  self._tf(t, self.world_frame, self.odom_frame, *(float(s) for s in start)))

    def write(self, out: str | Path, storage: str = "mcap") -> Path:
        """Write the run (see `write_bag`); the rows stay for another write."""
        return write_bag(out, self.rows, storage)
