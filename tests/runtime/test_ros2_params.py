"""The ROS 2 node's parameters: --ros-args -p, --params-file (Nav2 style), refusals by name, and the run verb's
--ros-args through the real CLI (refused with one line where rclpy is absent, as here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from robonav.cli import build_parser
from robonav.runtime.ros2 import Ros2Params, Ros2ParamsError, parse_ros_args

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_relative_topics_and_sensor_data_scans():
    p = parse_ros_args([]).params
    assert (p.scan_topic, p.odom_topic, p.goal_topic, p.cmd_topic, p.status_topic) == (
        "scan", "odom", "goal_pose", "cmd_vel", "~/status")
    assert (p.scan_qos, p.odom_qos, p.cmd_stamped, p.use_tf, p.goal_radius) == ("sensor_data", "reliable", True,
                                                                               True, 0.3)


def test_dash_p_values_read_as_yaml_scalars():
    a = parse_ros_args(["-p", "scan_topic:=/front/scan", "-p", "cmd_stamped:=false", "--param", "goal_radius:=1",
                        "-p", "odom_qos:=sensor_data", "-p", "robonav:tf_timeout:=0.25"])
    p = a.params
    assert (p.scan_topic, p.cmd_stamped, p.goal_radius, p.odom_qos, p.tf_timeout) == (
        "/front/scan", False, 1.0, "sensor_data", 0.25)
    assert a.rclpy_args[0] == "--ros-args" and "/front/scan" in a.rclpy_args[2]


def test_params_file_sections_order_and_node_name(tmp_path):
    f = tmp_path / "nav.yaml"
    f.write_text("/**:\n  ros__parameters:\n    use_sim_time: true\n    base_frame: base_footprint\n"
                 "nav:\n  ros__parameters:\n    scan_topic: front/scan\n    goal_radius: 0.5\n"
                 "robonav:\n  ros__parameters:\n    scan_topic: never_read\n"
                 "other_node:\n  ros__parameters:\n    anything: 1\n")
    a = parse_ros_args(["-r", "__node:=nav", "--params-file", str(f), "-p", "goal_radius:=0.4"])
    assert a.node_name == "nav"
    # /** applies to every node, nav's section to this one, other nodes' are not read, -p wins over the file
    assert (a.params.base_frame, a.params.scan_topic, a.params.goal_radius) == ("base_footprint", "front/scan", 0.4)


def test_the_shipped_params_file_holds_the_defaults():
    shipped = parse_ros_args(["--params-file", str(ROOT / "deploy/ros2/robonav.params.yaml")]).params
    assert shipped == Ros2Params()


@pytest.mark.parametrize(("tokens", "match"), [
    (["-p", "scan_topik:=x"], r"unknown ROS parameter 'scan_topik'; the robonav node has action_name, backend,"),
    (["-p", "stale_warn:=2.0"], r"stale_warn \(2.0\) and stale_error \(1.0\): expected stale_warn <= stale_error"),
    (["-p", "miss_error:=-0.5"], r"miss_error: expected a finite number >= 0, got -0.5"),
    (["-p", "goal_radius:=near"], r"ROS parameter goal_radius expects a float, got 'near'"),
    (["-p", "cmd_stamped:=1"], r"ROS parameter cmd_stamped expects a bool, got 1"),
    (["-p", "odom_qos:=best"], r"odom_qos: expected one of \['sensor_data', 'reliable'\], got 'best'"),
    (["-p", "goal_radius:=-1"], r"goal_radius: expected a finite number >= 0, got -1.0"),
    (["-p", "scan_topic"], r"-p 'scan_topic': expected name:=value"),
    (["-p"], r"-p needs a value"),
    (["stray"], r"unexpected 'stray'"),
    (["--params-file", "/nonexistent/p.yaml"], r"--params-file /nonexistent/p.yaml: cannot read it"),
])
def test_refusals_name_the_parameter(tokens, match):
    with pytest.raises(Ros2ParamsError, match=match):
        parse_ros_args(tokens)


def test_params_file_without_ros_parameters_is_refused(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("robonav:\n  scan_topic: scan\n")
    with pytest.raises(Ros2ParamsError, match=r"bad.yaml: section 'robonav' has no ros__parameters mapping"):
        parse_ros_args(["--params-file", str(f)])


def test_run_overrides_only_what_is_given():
    assert Ros2Params().run_overrides() == {}
    assert Ros2Params(model="m.onnx", watchdog=0.5).run_overrides() == {"model": "m.onnx", "watchdog": 0.5}


def test_run_verb_takes_ros_args_as_the_trailing_remainder():
    args = build_parser().parse_args(["run", "--driver", "ros2", "--ros-args", "-p", "scan_topic:=/front/scan",
                                      "-r", "__node:=nav", "--params-file", "x.yaml"])
    assert args.driver == "ros2" and args.ros_args == ["-p", "scan_topic:=/front/scan", "-r", "__node:=nav",
                                                       "--params-file", "x.yaml"]


def _robonav(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "robonav.cli", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.skipif("rclpy" in sys.modules or os.environ.get("ROS_DISTRO"), reason="ROS 2 is sourced here")
def test_cli_refuses_ros2_without_rclpy_in_one_line():
    out = _robonav("run", "--driver", "ros2", "--ros-args", "-p", "scan_topic:=/front/scan")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [
        "robonav run: driver ros2 needs rclpy, which this Python cannot import (No module named 'rclpy'); source "
        "ROS 2 in this shell (e.g. source /opt/ros/jazzy/setup.bash) and run robonav with the Python ROS 2 was "
        "built for, or use --driver udp"]


def test_cli_refuses_a_bad_parameter_and_ros_args_without_ros2():
    out = _robonav("run", "--driver", "ros2", "--ros-args", "-p", "odom_qos:=best")
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        "robonav run: ROS parameter odom_qos: expected one of ['sensor_data', 'reliable'], got 'best'"]
    out = _robonav("run", "--driver", "udp", "--ros-args", "-p", "scan_topic:=s")
    assert out.returncode == 2
    assert "--ros-args configures the ROS 2 node: it needs --driver ros2, got 'udp'" in out.stderr
