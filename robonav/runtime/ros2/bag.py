"""`robonav bag IN --policy P --out OUT`: a shadow run on what a robot recorded.

A rosbag2 (sqlite3 or MCAP) with LaserScan and Odometry (and goals, or a goal given on the command line in the
odometry frame) is played, in the order it was recorded, into the same `Ros2Bridge` the ROS 2 node feeds; the
real `ControlLoop` (Preprocessor, backend, safety layer) runs at the model's period on a manual clock that follows
the bag's receive times, aligned to the first frame as on the robot, so each tick takes the newest scan recorded
by then, exactly as the node would have. What it would have sent (TwistStamped on cmd_vel, stops included) and its
obstacle memory (OccupancyGrid in the odometry frame, every ``memory_every`` seconds) go into OUT, a rosbag2 in
the input's storage unless told; OUT is written beside and renamed into place when complete.

rosbags is imported inside the functions only (robonav.runtime is on the robot's import path). A bag missing a
topic, with scans whose geometry changes, or with stamps out of order is refused with one line (`BagError`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robonav.runtime.ros2.bridge import Ros2Bridge
from robonav.runtime.ros2.mcap import STORAGES, occupancy_grid, seconds_to_time, write_bag
from robonav.sensors.frame import SensorFrame
from robonav.settings import SettingsError

__all__ = ["STORAGES", "BagError", "BagSettings", "format_bag", "message_factories", "read_bag", "shadow_run"]

LASERSCAN, ODOMETRY = "sensor_msgs/msg/LaserScan", "nav_msgs/msg/Odometry"
POSE_STAMPED = "geometry_msgs/msg/PoseStamped"


class BagError(SettingsError):
    """A bag robonav cannot shadow-run: not a rosbag2, a topic missing, scans changing geometry, stamps out of
    order, or an output that exists (a user error: printed as one line)."""


@dataclass(frozen=True)
class BagSettings:
    """What `robonav bag` reads and writes."""

    scan_topic: str = "/scan"
    """LaserScan topic in the bag."""
    odom_topic: str = "/odom"
    """Odometry topic in the bag."""
    goal_topic: str = "/goal_pose"
    """PoseStamped goals in the bag (in the odometry frame: a bag run has no TF); unused with ``goal``."""
    goal: tuple[float, float] | None = None
    """A goal (x, y) in the odometry frame, given at the bag's start, instead of the bag's goals."""
    odom_frame: str = "odom"
    """The odometry frame: goals and the memory grid are in it."""
    base_frame: str = "base_link"
    """Frame the commands are stamped in."""
    cmd_topic: str = "/cmd_vel"
    """Topic of the commands written to OUT."""
    memory_topic: str = "/robonav/memory"
    """Topic of the obstacle memory written to OUT."""
    memory_every: float = 1.0
    """Seconds (bag time) between memory grids written; 0: none."""
    goal_radius: float = 0.3
    """Metres from the goal at which commands become stops, as the node does."""
    storage: str | None = None
    """OUT's storage: sqlite3 or mcap; None: the input's."""
    watchdog: float = 0.3
    """Seconds without a new scan before the loop sends stops."""
    cmd_stamped: bool = True
    """Write TwistStamped (else Twist)."""


def _topic(name: str) -> str:
    return name if name.startswith("/") else f"/{name}"


def message_factories(typestore: Any, stamped: bool, frame_id: str) -> tuple[Any, Any]:
    """(make an empty command message, make a builtin_interfaces/Time from seconds) in ``typestore``."""
    t = typestore.types
    vec = t["geometry_msgs/msg/Vector3"]

    def now(seconds: float) -> Any:
        return seconds_to_time(t, seconds)

    def twist() -> Any:
        return t["geometry_msgs/msg/Twist"](linear=vec(x=0.0, y=0.0, z=0.0), angular=vec(x=0.0, y=0.0, z=0.0))

    if not stamped:
        return twist, now

    def twist_stamped() -> Any:
        return t["geometry_msgs/msg/TwistStamped"](header=t["std_msgs/msg/Header"](stamp=now(0.0), frame_id=frame_id),
                                                   twist=twist())
    return twist_stamped, now


def _storage_of(path: Path) -> str:
    if path.is_dir():
        return "mcap" if any(path.glob("*.mcap")) else "sqlite3"
    return "mcap" if path.suffix == ".mcap" else "sqlite3"


def read_bag(path: str | Path, settings: BagSettings) -> tuple[list[tuple[int, str, Any]], str, Any]:
    """(messages as (receive time ns, 'scan' | 'odom' | 'goal', message) in recorded order, storage, typestore);
    BagError naming the bag and what is wrong."""
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    path = Path(path)
    typestore = get_typestore(Stores.ROS2_HUMBLE)
    wanted = {_topic(settings.scan_topic): ("scan", LASERSCAN), _topic(settings.odom_topic): ("odom", ODOMETRY)}
    if settings.goal is None:
        wanted[_topic(settings.goal_topic)] = ("goal", POSE_STAMPED)
    try:
        reader = Reader(path)
        reader.open()
    except Exception as e:  # rosbags raises several kinds for "not a bag"
        raise BagError(f"{path}: not a readable rosbag2 ({type(e).__name__}: {e}); give a bag folder recorded by "
                       "ros2 bag record (sqlite3 or MCAP storage)") from e
    try:
        topics = {c.topic: c.msgtype for c in reader.connections}
        for topic, (kind, msgtype) in wanted.items():
            if topic not in topics:
                hint = " (or give the goal with --goal x,y in the odometry frame)" if kind == "goal" else ""
                raise BagError(f"{path}: no {kind} topic {topic!r} ({msgtype}); the bag holds "
                               f"{', '.join(f'{k} ({v})' for k, v in sorted(topics.items())) or 'no topics'}; "
                               f"name the topic with --{kind}-topic{hint}")
            if topics[topic] != msgtype:
                raise BagError(f"{path}: topic {topic!r} holds {topics[topic]}, expected {msgtype}; name the right "
                               f"topic with --{kind}-topic")
        connections = [c for c in reader.connections if c.topic in wanted]
        messages = []
        for conn, t, raw in reader.messages(connections=connections):
            kind = wanted[conn.topic][0]
            messages.append((int(t), kind, typestore.deserialize_cdr(raw, conn.msgtype)))
    finally:
        reader.close()
    messages.sort(key=lambda m: m[0])  # recorded (receive) order; stable for equal times
    _check(path, messages, settings)
    return messages, _storage_of(path), typestore


def _check(path: Path, messages: list[tuple[int, str, Any]], settings: BagSettings) -> None:
    """Scans of one geometry, stamps in order, at least one scan and one odometry message."""
    last: dict[str, tuple[int, int]] = {}
    geometry = None
    count = {"scan": 0, "odom": 0}
    for _, kind, msg in messages:
        if kind == "goal":
            continue
        count[kind] += 1
        stamp = (int(msg.header.stamp.sec), int(msg.header.stamp.nanosec))  # exact: compared and printed as is
        previous = last.get(kind)
        if previous is not None and (stamp < previous or (kind == "scan" and stamp == previous)):
            topic = settings.scan_topic if kind == "scan" else settings.odom_topic
            raise BagError(f"{path}: {kind} message {count[kind]} on {_topic(topic)} is stamped "
                           f"{stamp[0]}.{stamp[1]:09d} s, {'before' if stamp < previous else 'at'} the previous one "
                           f"({previous[0]}.{previous[1]:09d} s); stamps out of order: robonav bag needs the bag as "
                           "the robot recorded it")
        last[kind] = stamp
        if kind == "scan":
            g = (len(msg.ranges), float(msg.angle_min), float(msg.angle_increment), float(msg.range_min),
                 float(msg.range_max))
            if geometry is None:
                geometry = g
            elif g != geometry:
                raise BagError(f"{path}: scan {count['scan']} on {_topic(settings.scan_topic)} changes the scan's "
                               f"geometry (beams, angle_min, angle_increment, range_min, range_max) from {geometry} "
                               f"to {g}; robonav bag runs one scanner configuration per bag: split the bag")
    for kind, n in count.items():
        if n == 0:
            raise BagError(f"{path}: the {kind} topic holds no messages")


class BagDriver:
    """The Driver the loop runs on: feeds the bag's messages received by the loop's (manual) clock time into the
    bridge, hands out its frames, and asks the loop to stop once the bag is played."""

    def __init__(self, messages: list[tuple[int, str, Any]], bridge: Ros2Bridge, clock: Any) -> None:
        self.messages, self.bridge, self.clock = messages, bridge, clock
        self.loop: Any = None
        self.published = 0
        """Commands the loop published (each answers one frame)."""
        self.stops = 0
        """Stops the loop sent (watchdog, end)."""
        self.on_publish: Any = None
        self._i = 0

    def _feed(self) -> None:
        now_ns = self.clock.now() * 1e9
        feed = {"scan": self.bridge.on_scan, "odom": self.bridge.on_odom, "goal": self.bridge.on_goal}
        while self._i < len(self.messages) and self.messages[self._i][0] <= now_ns:
            _, kind, msg = self.messages[self._i]
            feed[kind](msg)
            self._i += 1
        if self._i == len(self.messages) and not self.bridge.frame_ready() and self.loop is not None:
            self.loop.request_stop("end of bag")

    def frame_ready(self) -> bool:
        self._feed()
        return self.bridge.frame_ready()

    def latest_frame(self) -> SensorFrame | None:
        self._feed()
        return self.bridge.latest_frame()

    def publish(self, v: float, omega: float, answers_seq: int) -> None:
        self.published += 1
        self.bridge.publish(v, omega, answers_seq)
        if self.on_publish is not None:
            self.on_publish()

    def stop(self) -> None:
        self.stops += 1
        self.bridge.stop()

    def close(self) -> None:
        self.bridge.close()


def shadow_run(bag: str | Path, out: str | Path, backend: Any, settings: BagSettings | None = None,
               safety: Any = None) -> dict[str, Any]:
    """Run ``bag`` through the loop with the open ``backend``; write OUT; the summary as a dict."""
    from robonav.control.clock import ManualClock
    from robonav.runtime.loop import ControlLoop, LoopConfig

    settings = settings or BagSettings()
    out = Path(out)
    if out.exists():
        raise BagError(f"{out}: exists; robonav bag writes a new bag: remove it or give another --out")
    if settings.storage is not None and settings.storage not in STORAGES:
        raise BagError(f"--storage {settings.storage!r}: expected one of {list(STORAGES)}")
    messages, storage_in, typestore = read_bag(bag, settings)
    storage = settings.storage or storage_in
    t0 = messages[0][0] * 1e-9
    if settings.goal is not None:  # a goal at the bag's start, in the odometry frame
        t = typestore.types
        goal = t["geometry_msgs/msg/PoseStamped"](
            header=t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=0, nanosec=0),
                                            frame_id=settings.odom_frame),
            pose=t["geometry_msgs/msg/Pose"](
                position=t["geometry_msgs/msg/Point"](x=float(settings.goal[0]), y=float(settings.goal[1]), z=0.0),
                orientation=t["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0)))
        messages.insert(0, (messages[0][0], "goal", goal))
    clock = ManualClock(t0)
    make_cmd, stamp_of = message_factories(typestore, settings.cmd_stamped, settings.base_frame)
    sent: list[tuple[float, Any]] = []
    grids: list[tuple[float, Any]] = []
    bridge = Ros2Bridge(send=lambda m: sent.append((clock.now(), m)), twist_factory=make_cmd,
                        odom_frame=settings.odom_frame, base_frame=settings.base_frame,
                        goal_radius=settings.goal_radius, now=lambda: stamp_of(clock.now()))
    driver = BagDriver(messages, bridge, clock)
    config = LoopConfig.for_model(backend.sidecar, watchdog=settings.watchdog, telemetry=None, gc_freeze=False,
                                  handle_signals=False, align=True)
    loop = ControlLoop.for_backend(backend, driver, clock, config, safety)
    driver.loop = loop
    last_grid = [-math.inf]

    def snapshot() -> None:
        now = clock.now()
        if settings.memory_every > 0 and now - last_grid[0] >= settings.memory_every and bridge.origin is not None:
            last_grid[0] = now
            grids.append((now, occupancy_grid(loop.pre, bridge.origin, typestore.types, stamp_of(now),
                                              settings.odom_frame)))

    driver.on_publish = snapshot
    summary = loop.run()
    if summary.frames == 0:
        raise BagError(f"{bag}: no scan could be answered ({bridge.refused} messages refused"
                       f"{'; last: ' + bridge.last_reason if bridge.last_reason else ''}); a goal in the odometry "
                       "frame and odometry before the scans are needed (give --goal x,y)")
    cmd_type = "geometry_msgs/msg/TwistStamped" if settings.cmd_stamped else "geometry_msgs/msg/Twist"
    grid_type = "nav_msgs/msg/OccupancyGrid"
    rows = [(int(round(t * 1e9)), settings.cmd_topic, cmd_type, typestore.serialize_cdr(m, cmd_type)) for t, m in sent]
    rows += [(int(round(t * 1e9)), settings.memory_topic, grid_type, typestore.serialize_cdr(m, grid_type))
             for t, m in grids]
    write_bag(out, rows, storage, single_file=False)  # staged beside OUT, renamed into place
    scans = sum(1 for m in messages if m[1] == "scan")
    return {"bag": str(bag), "out": str(out), "storage": storage, "scans": scans, "frames": summary.frames,
            "commands": driver.published, "stops": driver.stops, "messages_written": len(sent) + len(grids),
            "memory_grids": len(grids), "ticks": summary.ticks, "episodes": summary.episodes,
            "arrivals": bridge.arrivals, "refused": bridge.refused, "bad_frames": summary.bad_frames,
            "stale_ticks": summary.stale_ticks, "duration": summary.duration, "period": summary.period,
            "latency": summary.latency, "backend": backend.name}


def format_bag(r: dict[str, Any]) -> str:
    """A few lines for people: counts, then the per-stage latency (us)."""
    lines = [f"bag {r['bag']} -> {r['out']} ({r['storage']}): {r['scans']} scans, {r['frames']} answered, "
             f"{r['commands']} commands, {r['stops']} stops, {r['memory_grids']} memory grids, {r['episodes']} "
             f"episodes, {r['arrivals']} arrivals, {r['refused']} messages refused, {r['bad_frames']} bad frames; "
             f"{r['ticks']} ticks at {r['period'] * 1e3:g} ms over {r['duration']:.1f} s ({r['backend']})",
             f"  {'stage':<8}{'count':>8}{'mean':>9}{'p50':>9}{'p99':>9}{'max':>9}  (us)"]
    for stage, row in r["latency"].items():
        if row.get("count"):
            lines.append(f"  {stage:<8}{row['count']:>8}{row['mean_us']:>9.1f}{row['p50_us']:>9.1f}"
                         f"{row['p99_us']:>9.1f}{row['max_us']:>9.1f}")
    return "\n".join(lines)
