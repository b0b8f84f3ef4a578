"""The ROS 2 node's parameters, set the ROS way and read in plain Python (no rclpy needed to parse them).

    robonav run --driver ros2 --ros-args -p scan_topic:=/front/scan -p cmd_stamped:=false
    robonav run --driver ros2 --ros-args --params-file robonav.yaml -r __node:=nav

A params file is a ROS 2 parameters YAML, as Nav2 keeps them::

    robonav:                 # the node's name (or /robonav, or /** for every node)
      ros__parameters:
        scan_topic: front/scan
        odom_qos: sensor_data

Files are applied in order, then every ``-p name:=value`` (values read as YAML scalars, as ROS reads them). An
unknown parameter, or a value of the wrong type, is refused by name. Remappings and other ROS arguments are kept
for rclpy (``Ros2Args.rclpy_args``), which applies them to the node's topics as usual.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robonav.runtime.ros2.diagnostics import HealthThresholds
from robonav.settings import SettingsError

__all__ = ["QOS_PROFILES", "Ros2Args", "Ros2Params", "Ros2ParamsError", "parse_ros_args"]

QOS_PROFILES = ("sensor_data", "reliable")
"""QoS a subscription may use: sensor_data (best effort, volatile, depth 5: what laser and most odometry drivers
offer) or reliable (reliable, volatile, depth 10)."""


class Ros2ParamsError(SettingsError):
    """A --ros-args parameter, remapping or params file robonav cannot use."""


@dataclass(frozen=True)
class Ros2Params:
    """Parameters of the robonav node (``ros2 param list`` shows them); topics are relative (ROS namespaces and
    remappings apply)."""

    scan_topic: str = "scan"
    """sensor_msgs/LaserScan in."""
    odom_topic: str = "odom"
    """nav_msgs/Odometry in: the pose the memories are kept in."""
    goal_topic: str = "goal_pose"
    """geometry_msgs/PoseStamped goals in (RViz's and Foxglove's 2D goal tools publish here), in any TF frame."""
    cmd_topic: str = "cmd_vel"
    """Commands out: geometry_msgs/TwistStamped, or Twist with cmd_stamped false."""
    status_topic: str = "~/status"
    """std_msgs/String out, one JSON object per event: a goal active, refused, arrived or canceled."""
    action_name: str = "navigate_to_pose"
    """The nav2_msgs/NavigateToPose action server's name (where nav2_msgs is installed; empty: no action)."""
    diagnostics_period: float = 1.0
    """Seconds between diagnostic_msgs/DiagnosticArray messages on /diagnostics; 0: none."""
    stale_warn: float = 0.25
    """/diagnostics: seconds since the newest scan or odometry above which its status is WARN."""
    stale_error: float = 1.0
    """/diagnostics: seconds since the newest scan or odometry above which its status is ERROR."""
    miss_warn: float = 0.01
    """/diagnostics: deadline misses per tick (over a period) at or above which the loop's status is WARN."""
    miss_error: float = 0.1
    """/diagnostics: deadline misses per tick (over a period) at or above which the loop's status is ERROR."""
    odom_frame: str = "odom"
    """The odometry frame (REP 105): goals are resolved into it through TF when they arrive."""
    base_frame: str = "base_link"
    """The robot's base frame: scans are re-expressed from its origin, commands are stamped in it."""
    use_tf: bool = True
    """Resolve goals in other frames (map, ...) and the laser's mount pose through TF2; false: goals must be in
    odom_frame and the laser at the base's origin, facing forward."""
    tf_timeout: float = 0.1
    """Seconds a TF lookup may wait for a transform."""
    cmd_stamped: bool = True
    """Publish TwistStamped (ROS 2 Jazzy's diff_drive_controller and Nav2 expect it) rather than Twist."""
    scan_qos: str = "sensor_data"
    """QoS of the scan subscription: sensor_data or reliable."""
    odom_qos: str = "reliable"
    """QoS of the odometry subscription: reliable, or sensor_data for drivers that publish best effort."""
    goal_radius: float = 0.3
    """Metres from the goal at which the robot stops and the status topic says arrived (training's radius)."""
    model: str = ""
    """Step model (.onnx / .engine, or 'default'); empty: the launch file's run.model."""
    backend: str = ""
    """Inference backend (numba, ort, torch, trt); empty: the launch file's run.backend."""
    watchdog: float = 0.0
    """Seconds without a new scan before the loop sends stops; 0: the launch file's run.watchdog."""

    def __post_init__(self) -> None:
        for name in ("scan_qos", "odom_qos"):
            if getattr(self, name) not in QOS_PROFILES:
                raise Ros2ParamsError(f"ROS parameter {name}: expected one of {list(QOS_PROFILES)}, got "
                                      f"{getattr(self, name)!r}")
        for name in ("tf_timeout", "goal_radius", "watchdog", "diagnostics_period", "stale_warn", "stale_error",
                     "miss_warn", "miss_error"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise Ros2ParamsError(f"ROS parameter {name}: expected a finite number >= 0, got {value!r}")
        for name in ("scan_topic", "odom_topic", "goal_topic", "cmd_topic", "status_topic", "odom_frame",
                     "base_frame"):
            if not getattr(self, name):
                raise Ros2ParamsError(f"ROS parameter {name}: expected a non-empty name")

        for low, high in (("stale_warn", "stale_error"), ("miss_warn", "miss_error")):
            if getattr(self, low) > getattr(self, high):
                raise Ros2ParamsError(f"ROS parameters {low} ({getattr(self, low)}) and {high} "
                                      f"({getattr(self, high)}): expected {low} <= {high}")

    def thresholds(self) -> HealthThresholds:
        """The /diagnostics thresholds these parameters set."""
        return HealthThresholds(self.stale_warn, self.stale_error, self.miss_warn, self.miss_error)

    def run_overrides(self) -> dict[str, Any]:
        """The run settings these parameters set (model, backend, watchdog where given)."""
        out: dict[str, Any] = {"model": self.model, "backend": self.backend, "watchdog": self.watchdog or None}
        return {k: v for k, v in out.items() if v}


@dataclass(frozen=True)
class Ros2Args:
    """What ``--ros-args ...`` said: the node's name, its parameters, and the arguments rclpy gets."""

    node_name: str = "robonav"
    """The node's name (``-r __node:=NAME``)."""
    params: Ros2Params = field(default_factory=Ros2Params)
    """The node's parameters."""
    rclpy_args: tuple[str, ...] = ()
    """``--ros-args`` and everything after it, for rclpy.init (remappings, log levels, enclaves)."""


_RCLPY_PARAMS = ("use_sim_time", "start_type_description_service", "qos_overrides.")
"""Parameters rclpy itself reads (launch_ros passes use_sim_time): left to it, not robonav's to refuse."""

_FLAG_ARGS = {"-r", "--remap", "--log-level", "-e", "--enclave"}  # ROS flags with one value robonav leaves to rclpy


def parse_ros_args(tokens: list[str] | tuple[str, ...]) -> Ros2Args:
    """Read ``tokens`` (what follows ``--ros-args``, possibly several sections; a ``--`` ends one)."""
    tokens = list(tokens)
    node = "robonav"
    files: list[str] = []
    sets: list[tuple[str, str]] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in ("--ros-args", "--"):
            i += 1
            continue
        if tok in ("-p", "--param", "--params-file", *_FLAG_ARGS):
            if i + 1 >= len(tokens):
                raise Ros2ParamsError(f"--ros-args: {tok} needs a value (e.g. {tok} "
                                      f"{'FILE.yaml' if tok == '--params-file' else 'name:=value'})")
            value = tokens[i + 1]
            if tok in ("-p", "--param"):
                name, sep, text = value.partition(":=")
                if not sep or not name:
                    raise Ros2ParamsError(f"--ros-args {tok} {value!r}: expected name:=value, e.g. "
                                          "-p scan_topic:=/front/scan")
                sets.append((name.rpartition(":")[2], text))  # node:name:=value names a node; one node here
            elif tok == "--params-file":
                files.append(value)
            elif tok in ("-r", "--remap"):
                src, _, dst = value.partition(":=")
                if src.rpartition(":")[2] == "__node" and dst:
                    node = dst
            i += 2
            continue
        if tok.startswith("-"):
            i += 1  # a ROS flag without a value (--disable-stdout-logs, ...): rclpy reads it
            continue
        raise Ros2ParamsError(f"--ros-args: unexpected {tok!r}; expected -p name:=value, --params-file FILE or "
                              "-r from:=to")
    import yaml  # the runtime's floor imports yaml only where a file is read (docs/design.md's table)

    values: dict[str, Any] = {}
    for path in files:
        values.update(_params_file(path, node))
    for name, text in sets:
        try:
            values[name] = yaml.safe_load(text) if text else ""
        except yaml.YAMLError:
            values[name] = text
    return Ros2Args(node, _params(values, "--ros-args"), ("--ros-args", *tokens))


def _params_file(path: str, node: str) -> dict[str, Any]:
    """The ros__parameters a params file gives ``node`` (its own section and /** wildcards, in file order)."""
    import yaml

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as e:
        raise Ros2ParamsError(f"--params-file {path}: cannot read it ({e.strerror}); give an existing ROS 2 "
                              "params file") from e
    except yaml.YAMLError as e:
        raise Ros2ParamsError(f"--params-file {path}: not YAML ({str(e).splitlines()[0]})") from e
    if not isinstance(data, dict):
        raise Ros2ParamsError(f"--params-file {path}: expected a mapping of node names to "
                              "{ros__parameters: {...}}, got " + type(data).__name__)
    out: dict[str, Any] = {}
    for key, section in data.items():
        name = str(key).strip("/").rpartition("/")[2]
        if name not in (node, "**", "*"):
            continue
        params = section.get("ros__parameters") if isinstance(section, dict) else None
        if not isinstance(params, dict):
            raise Ros2ParamsError(f"--params-file {path}: section {key!r} has no ros__parameters mapping; "
                                  f"expected {key}: {{ros__parameters: {{scan_topic: scan, ...}}}}")
        out.update(_flatten(params))
    return out


def _flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in params.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _params(values: dict[str, Any], where: str) -> Ros2Params:
    """Ros2Params from ``values``, each checked against its field's type."""
    fields = {f.name: f for f in dataclasses.fields(Ros2Params)}
    typed: dict[str, Any] = {}
    for name, value in values.items():
        if name.startswith(_RCLPY_PARAMS):
            continue
        f = fields.get(name)
        if f is None:
            raise Ros2ParamsError(f"{where}: unknown ROS parameter {name!r}; the robonav node has "
                                  f"{', '.join(sorted(fields))}")
        kind = type(f.default)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is str and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)  # a topic or model name YAML read as a number
        if type(value) is not kind:
            raise Ros2ParamsError(f"{where}: ROS parameter {name} expects a {kind.__name__}, got {value!r}")
        typed[name] = value
    return Ros2Params(**typed)
