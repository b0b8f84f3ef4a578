"""robonav on ROS 2: the bridge (messages to SensorFrames, commands to Twist), the node's parameters, the TF math,
the node itself (rclpy, imported inside `run_node` only) and shadow runs on recorded bags (rosbags, imported inside
robonav.runtime.ros2.bag's functions only).

- ``bridge``  `Ros2Bridge`: the control loop's Driver over ROS 2 callbacks, and the message mapping
- ``params``  `Ros2Params`, `parse_ros_args`: ``--ros-args -p k:=v``, ``--params-file``
- ``tf``      2D poses from transforms, `MountedScan`: a laser's scan seen from the base frame
- ``diagnostics``  `LoopHealth`, `diagnostic_array`: the node's /diagnostics (plain Python)
- ``node``    `run_node`: the rclpy node (status topic, /diagnostics, NavigateToPose where nav2_msgs imports)
- ``bag``     `robonav bag`: a recorded rosbag2 through the loop, its commands and memory into another bag
- ``mcap``    `RunMcap`, `write_bag`: a run as MCAP for Foxglove / RViz (robonav replay --mcap, eval --mcap)
"""

from __future__ import annotations

from robonav.runtime.ros2.bridge import (
    GoalFrameError,
    LaserScanError,
    PoseError,
    Ros2Bridge,
    Ros2MessageError,
    fill_command,
    fill_twist,
    goal_from_pose_stamped,
    pose_from_odometry,
    scan_from_laserscan,
    yaw_from_quaternion,
)
from robonav.runtime.ros2.node import Ros2UnavailableError, run_node
from robonav.runtime.ros2.params import Ros2Args, Ros2Params, Ros2ParamsError, parse_ros_args

__all__ = ["GoalFrameError", "LaserScanError", "PoseError", "Ros2Args", "Ros2Bridge", "Ros2MessageError",
           "Ros2Params", "Ros2ParamsError", "Ros2UnavailableError", "fill_command", "fill_twist",
           "goal_from_pose_stamped", "parse_ros_args", "pose_from_odometry", "run_node", "scan_from_laserscan",
           "yaw_from_quaternion"]
