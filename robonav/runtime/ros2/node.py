"""The robonav ROS 2 node: rclpy, the message packages and tf2_ros are imported here, inside `run_node` only.

    run_node(lambda bridge: loop_with(bridge).run(), parse_ros_args(["-p", "scan_topic:=/front/scan"]))

The node subscribes to the scan, odometry and goal topics with the QoS its parameters name, publishes commands
(TwistStamped or Twist), a status line (std_msgs/String, JSON: a goal active, refused, arrived, canceled) and its
health on /diagnostics (robonav.runtime.ros2.diagnostics), declares its parameters read-only (so ``ros2 param
get`` shows what it runs with) and runs a TF2 listener on its own thread for goals in other frames and the
laser's mount. Where nav2_msgs and rclpy.action import it also serves a nav2_msgs/NavigateToPose action (a goal
that succeeds on arrival, aborts when a newer goal replaces it, and stops the robot when canceled); else goals
come on the goal topic only, as its log says. A multi-threaded executor spins in a daemon thread (the action's
goals wait in their own callbacks); the loop runs in the caller's thread. All message building is plain Python
(bridge, diagnostics): this module only wires it to rclpy.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from robonav.runtime.ros2.bridge import Ros2Bridge, status_message
from robonav.runtime.ros2.diagnostics import diagnostic_array
from robonav.runtime.ros2.params import Ros2Args, Ros2Params, Ros2ParamsError
from robonav.runtime.ros2.tf import pose2d_from_transform

__all__ = ["Ros2UnavailableError", "require_rclpy", "run_node"]


class Ros2UnavailableError(Ros2ParamsError):
    """driver ros2 where rclpy (a sourced ROS 2) is not importable."""


def require_rclpy() -> None:
    """Ros2UnavailableError, as one line that says what to do, where rclpy cannot be imported."""
    try:
        import rclpy  # noqa: F401
    except ImportError as e:
        raise Ros2UnavailableError(
            f"driver ros2 needs rclpy, which this Python cannot import ({e}); source ROS 2 in this shell "
            "(e.g. source /opt/ros/jazzy/setup.bash) and run robonav with the Python ROS 2 was built for, or "
            "use --driver udp") from e


def run_node(run_loop: Callable[[Ros2Bridge], Any], ros: Ros2Args) -> Any:
    """Run ``run_loop(bridge)`` in this thread while the node feeds the bridge; returns what it returns. rclpy is
    shut down on the way out, after a last stop."""
    require_rclpy()
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    from geometry_msgs.msg import PoseStamped, Twist, TwistStamped
    from nav_msgs.msg import Odometry
    from rclpy.duration import Duration
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from rclpy.time import Time
    from sensor_msgs.msg import LaserScan
    from std_msgs.msg import Header, String

    p = ros.params
    qos = {"sensor_data": qos_profile_sensor_data,
           "reliable": QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)}
    rclpy.init(args=list(ros.rclpy_args))
    try:
        node = rclpy.create_node(ros.node_name)
        for f in dataclasses.fields(p):
            node.declare_parameter(f.name, getattr(p, f.name))
        goal_transform = laser_mount = None
        if p.use_tf:
            import tf2_ros

            buffer = tf2_ros.Buffer()
            listener = tf2_ros.TransformListener(buffer, node, spin_thread=True)  # noqa: F841 (kept alive)
            timeout = Duration(seconds=p.tf_timeout)

            def lookup(target: str, source: str) -> Any:
                try:
                    return buffer.lookup_transform(target, source, Time(), timeout=timeout).transform
                except Exception:  # no transform (yet): the bridge refuses the message and says why
                    return None

            def goal_transform(frame_id: str) -> np.ndarray | None:
                t = lookup(p.odom_frame, frame_id)
                if t is None:
                    return None
                return pose2d_from_transform((t.translation.x, t.translation.y, t.translation.z),
                                             (t.rotation.x, t.rotation.y, t.rotation.z, t.rotation.w))

            def laser_mount(frame_id: str) -> Any:
                t = lookup(p.base_frame, frame_id)
                if t is None:
                    return None
                return ((t.translation.x, t.translation.y, t.translation.z),
                        (t.rotation.x, t.rotation.y, t.rotation.z, t.rotation.w))

        cmd_type = TwistStamped if p.cmd_stamped else Twist
        publisher = node.create_publisher(cmd_type, p.cmd_topic, 10)
        status_pub = node.create_publisher(String, p.status_topic, 10)

        def status(event: dict[str, Any]) -> None:
            status_pub.publish(status_message(String, event))

        bridge = Ros2Bridge(send=publisher.publish, twist_factory=cmd_type, odom_frame=p.odom_frame,
                            base_frame=p.base_frame, goal_transform=goal_transform, laser_mount=laser_mount,
                            goal_radius=p.goal_radius, status=status,
                            now=lambda: node.get_clock().now().to_msg())
        node.create_subscription(LaserScan, p.scan_topic, bridge.on_scan, qos[p.scan_qos])
        node.create_subscription(Odometry, p.odom_topic, bridge.on_odom, qos[p.odom_qos])
        node.create_subscription(PoseStamped, p.goal_topic, bridge.on_goal, 10)
        if p.diagnostics_period > 0:
            diag_pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
            types = {"diagnostic_msgs/msg/DiagnosticArray": DiagnosticArray,
                     "diagnostic_msgs/msg/DiagnosticStatus": DiagnosticStatus,
                     "diagnostic_msgs/msg/KeyValue": KeyValue, "std_msgs/msg/Header": Header}
            thresholds = p.thresholds()

            def diagnostics() -> None:
                diag_pub.publish(diagnostic_array(types, bridge.health_report(), node.get_clock().now().to_msg(),
                                                  ros.node_name, thresholds))

            node.create_timer(p.diagnostics_period, diagnostics)
        action = _navigate_action(node, bridge, p)  # noqa: F841 (kept alive with the node)
        executor = MultiThreadedExecutor(num_threads=3)
        executor.add_node(node)
        spinner = threading.Thread(target=executor.spin, name="robonav-ros2", daemon=True)
        spinner.start()
        try:
            return run_loop(bridge)
        finally:
            bridge.close()  # a last stop while the publisher still exists
            executor.shutdown()
            spinner.join(timeout=2.0)
            node.destroy_node()
    finally:
        if rclpy.ok():
            rclpy.shutdown()


def _navigate_action(node: Any, bridge: Ros2Bridge, p: Ros2Params) -> Any:
    """A nav2_msgs/NavigateToPose action server over the bridge, or None (logged) where it cannot be made."""
    if not p.action_name:
        return None
    try:
        from nav2_msgs.action import NavigateToPose
        from rclpy.action import ActionServer, CancelResponse, GoalResponse
        from rclpy.callback_groups import ReentrantCallbackGroup
    except ImportError as e:
        node.get_logger().info(f"no NavigateToPose action ({e}); goals on the {p.goal_topic!r} topic only")
        return None

    def execute(handle: Any) -> Any:
        number = bridge.on_goal(handle.request.pose)
        result = NavigateToPose.Result()
        if number is None:  # refused: the status topic says why
            handle.abort()
            return result
        feedback = NavigateToPose.Feedback()
        while True:
            if handle.is_cancel_requested:
                bridge.cancel()
                handle.canceled()
                return result
            outcome = bridge.goal_outcome(number)
            if outcome == "arrived":
                handle.succeed()
                return result
            if outcome != "active":  # preempted by a newer goal, canceled elsewhere, or shutting down
                handle.abort()
                return result
            if bridge.distance is not None:
                feedback.distance_remaining = float(bridge.distance)
                handle.publish_feedback(feedback)
            time.sleep(0.1)

    return ActionServer(node, NavigateToPose, p.action_name, execute_callback=execute,
                        goal_callback=lambda _goal: GoalResponse.ACCEPT,
                        cancel_callback=lambda _handle: CancelResponse.ACCEPT,
                        callback_group=ReentrantCallbackGroup())
