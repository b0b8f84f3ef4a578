"""ROS 2 launch file for the robonav node (plain launch_ros API).

    ros2 launch deploy/ros2/robonav.launch.py params_file:=deploy/ros2/robonav.params.yaml namespace:=robot1

Runs `robonav run --driver ros2` with the given params file (Nav2 style, see robonav.params.yaml), in a
namespace, with use_sim_time passed on; remap topics with the usual launch remappings below. The executable is
the `robonav` console script on PATH (the venv robonav is installed in, with ROS 2 sourced).
"""

from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, ThisLaunchFileDir
from launch_ros.actions import Node

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    params_file = LaunchConfiguration("params_file")
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([ThisLaunchFileDir(),
                                                                                 "robonav.params.yaml"]),
                              description="ROS 2 params file with a robonav: ros__parameters: section"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node and its topics"),
        DeclareLaunchArgument("launch", default_value="robot", description="robonav launch file (run: section)"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (simulation, bags)"),
        Node(
            executable="robonav",
            name="robonav",
            namespace=LaunchConfiguration("namespace"),
            arguments=["run", "--driver", "ros2", "--launch", LaunchConfiguration("launch")],
            parameters=[params_file, {"use_sim_time": LaunchConfiguration("use_sim_time")}],
            remappings=[],  # e.g. [("scan", "front/scan"), ("cmd_vel", "diff_drive_controller/cmd_vel")]
            output="screen",
            emulate_tty=True,
        ),
    ])
