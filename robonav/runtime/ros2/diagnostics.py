"""The ROS 2 node's health on /diagnostics: loop timing, deadline misses, scan and odometry staleness, the goal.

Plain Python like the bridge (rclpy only in robonav.runtime.ros2.node). `LoopHealth` is fed by the loop's thread
(``tick`` at the end of every tick, ``answered`` with each frame-to-command time) and read once per diagnostics
period by the executor's thread (``window``: what happened since the last read); one lock guards the swap.
`diagnostic_array` builds a diagnostic_msgs/DiagnosticArray from a `Ros2Bridge.health_report()` with any
message classes that have the ROS field names (rclpy's, or rosbags' in tests), keyed by their ROS type names.

Levels (DiagnosticStatus OK / WARN / ERROR) from the thresholds in `HealthThresholds`:

    robonav: loop   ERROR: no tick in the period, or a deadline-miss rate >= miss_error; WARN: >= miss_warn,
                    or the loop holds the robot stopped (no frames for the watchdog time, or a refused frame)
    robonav: scan   ERROR: newest scan older than stale_error s; WARN: older than stale_warn s, or none yet
    robonav: odom   the same for odometry
    robonav: goal   OK; the message says idle, active, arrived or canceled
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["HealthThresholds", "LoopHealth", "diagnostic_array", "statuses"]

OK, WARN, ERROR = 0, 1, 2
LEVEL_NAMES = ("OK", "WARN", "ERROR")


@dataclass(frozen=True)
class HealthThresholds:
    """When a status turns WARN or ERROR."""

    stale_warn: float = 0.25
    """Seconds since the newest scan (or odometry) above which its status is WARN."""
    stale_error: float = 1.0
    """Seconds since the newest scan (or odometry) above which its status is ERROR."""
    miss_warn: float = 0.01
    """Deadline misses per tick in the period at or above which the loop's status is WARN."""
    miss_error: float = 0.1
    """Deadline misses per tick in the period at or above which the loop's status is ERROR."""


class LoopHealth:
    """Tick and answer counters, windowed per read (see the module docstring)."""

    def __init__(self, samples: int = 4096) -> None:
        self._lock = threading.Lock()
        self._latency: deque[float] = deque(maxlen=samples)  # seconds, this window
        self._ticks = self._misses = 0
        self.ticks_total = 0
        """Ticks since the start."""
        self.misses_total = 0
        """Deadline misses since the start."""
        self.stopped = False
        """Whether the newest tick held the robot stopped (no frames for the watchdog time, or a refused frame)."""

    def tick(self, now: float, on_time: bool, stopped: bool) -> None:
        """The loop's on_tick: one tick ended at ``now``."""
        with self._lock:
            self._ticks += 1
            self.ticks_total += 1
            if not on_time:
                self._misses += 1
                self.misses_total += 1
            self.stopped = stopped

    def answered(self, seconds: float) -> None:
        """A frame was answered ``seconds`` after the loop took it (preprocessing, policy, safety, publish)."""
        with self._lock:
            self._latency.append(seconds)

    def window(self) -> dict[str, Any]:
        """What happened since the previous call: ticks, misses, answers and their p50/p99 (us); starts a new
        window."""
        with self._lock:
            latency = np.array(self._latency)
            ticks, misses = self._ticks, self._misses
            self._latency.clear()
            self._ticks = self._misses = 0
            stopped = self.stopped
        p50, p99 = (float(v) * 1e6 for v in np.percentile(latency, [50, 99])) if latency.size else (0.0, 0.0)
        return {"ticks": ticks, "deadline_misses": misses, "miss_rate": misses / ticks if ticks else 0.0,
                "answers": int(latency.size), "answer_p50_us": p50, "answer_p99_us": p99,
                "ticks_total": self.ticks_total, "deadline_misses_total": self.misses_total, "stopped": stopped}


def _stale(kind: str, age: float | None, t: HealthThresholds) -> tuple[int, str]:
    if age is None:
        return WARN, f"no {kind} received yet"
    if age > t.stale_error:
        return ERROR, f"{kind} stale: newest {age:.2f} s ago (> {t.stale_error:g} s)"
    if age > t.stale_warn:
        return WARN, f"{kind} late: newest {age:.2f} s ago (> {t.stale_warn:g} s)"
    return OK, f"{kind} fresh ({age * 1e3:.0f} ms)"


def statuses(report: Mapping[str, Any], t: HealthThresholds) -> list[tuple[str, int, str, dict[str, str]]]:
    """(name, level, message, values) of each status of a `Ros2Bridge.health_report()`; levels OK, WARN, ERROR."""
    loop = report["loop"]
    if loop["ticks"] == 0:
        level, message = ERROR, "no loop tick in the last period: the loop is not running"
    elif loop["miss_rate"] >= t.miss_error:
        level, message = ERROR, f"deadline misses {loop['miss_rate']:.1%} of ticks (>= {t.miss_error:.0%})"
    elif loop["miss_rate"] >= t.miss_warn:
        level, message = WARN, f"deadline misses {loop['miss_rate']:.1%} of ticks (>= {t.miss_warn:.0%})"
    elif loop["stopped"]:
        level, message = WARN, "holding the robot stopped: no frames for the watchdog time, or a refused frame"
    else:
        level, message = OK, (f"{loop['ticks']} ticks, answer p50 {loop['answer_p50_us']:.0f} us, p99 "
                              f"{loop['answer_p99_us']:.0f} us")
    out = [("robonav: loop", level, message, loop)]
    for kind in ("scan", "odom"):
        row = report[kind]
        out.append((f"robonav: {kind}", *_stale(kind, row["age_s"], t), row))
    goal = report["goal"]
    detail = f"goal {goal['goals']} {goal['state']}"
    if goal["distance_m"] is not None and goal["state"] == "active":
        detail += f", {goal['distance_m']:.2f} m to go"
    out.append(("robonav: goal", OK, detail, goal))
    return out


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def diagnostic_array(types: Mapping[str, Any], report: Mapping[str, Any], stamp: Any, hardware_id: str,
                     thresholds: HealthThresholds | None = None) -> Any:
    """A diagnostic_msgs/DiagnosticArray of ``report`` stamped ``stamp``; ``types`` maps ROS type names
    (diagnostic_msgs/msg/DiagnosticArray, .../DiagnosticStatus, .../KeyValue, std_msgs/msg/Header) to message
    classes. Levels are the DiagnosticStatus class's own constants (bytes in rclpy, ints in rosbags)."""
    status_type = types["diagnostic_msgs/msg/DiagnosticStatus"]
    key_value = types["diagnostic_msgs/msg/KeyValue"]
    level_of = [getattr(status_type, name) for name in LEVEL_NAMES]
    rows = [status_type(level=level_of[level], name=name, message=message, hardware_id=hardware_id,
                        values=[key_value(key=k, value=_text(v)) for k, v in values.items()])
            for name, level, message, values in statuses(report, thresholds or HealthThresholds())]
    header = types["std_msgs/msg/Header"](stamp=stamp, frame_id="")
    return types["diagnostic_msgs/msg/DiagnosticArray"](header=header, status=rows)
