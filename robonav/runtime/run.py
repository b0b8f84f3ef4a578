"""Settings of ``robonav run`` (the ``run:`` section of launch/robot.yaml) and the pieces they choose.

The CLI loads `RunSettings` with robonav.settings.load_settings, opens the backend and builds the loop here;
it builds the driver itself, because the simulator driver lives on another floor (robonav.sim.driver), which
robonav.runtime never imports.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robonav.control.clock import Clock
from robonav.control.safety import SafetyConfig
from robonav.model.sidecar import ModelSidecar
from robonav.runtime.backends.base import Backend
from robonav.runtime.driver import Driver
from robonav.runtime.loop import ControlLoop, LoopConfig, LoopSummary
from robonav.runtime.sdnotify import ServiceWatchdog
from robonav.runtime.wire.udp_driver import parse_address
from robonav.settings import SettingsError

__all__ = ["DRIVERS", "DriverFactory", "RunSettings", "SimDriverSettings", "UdpSettings", "backend_kwargs",
           "expand_path", "format_summary", "loop_config", "model_path", "open_run_backend", "run_loop", "udp_driver"]

DRIVERS = ("sim", "udp", "ros2")
"""Driver kinds `robonav run` builds: the simulator in-process (a dev machine), the robot wire over UDP, a ROS 2
node (scan, odom, goal_pose in, cmd_vel out, set by --ros-args; needs a sourced ROS 2 with rclpy)."""


@dataclass(frozen=True)
class UdpSettings:
    """The robot wire's UDP endpoints (driver: udp)."""

    bind: str = "127.0.0.1:47800"
    """Where the runtime listens for sensor frames (host:port; loopback unless allow_remote)."""
    robot: str = "127.0.0.1:47801"
    """Where commands go (the robot, or a fault proxy in front of it)."""
    allow_remote: bool = False
    """Listen on a non-loopback address (a robot on the network); needs a wire key."""
    key_file: str | None = None
    """The robot's wire key (hex digits, chmod 600; robonav.runtime.wire.keys); None: $ROBONAV_WIRE_KEY_FILE or
    $ROBONAV_WIRE_KEY, else no key (unsigned datagrams, loopback only)."""
    max_beams: int = 4096
    """Most beams per scan the runtime holds; a larger scan or description is refused and counted ("limit")."""
    max_chunks: int = 16
    """Most chunks per frame the runtime holds; more is refused and counted ("limit")."""
    rate: float = 2000.0
    """Datagrams per second a peer may send (token bucket, bursts of 1,024); more are dropped and counted ("rate")."""

    def __post_init__(self) -> None:
        parse_address(self.bind, "run.udp.bind")
        parse_address(self.robot, "run.udp.robot")
        if self.max_beams < 1 or self.max_chunks < 1 or not self.rate > 0:
            raise SettingsError(f"run.udp: max_beams ({self.max_beams}), max_chunks ({self.max_chunks}) and rate "
                                f"({self.rate}) must be > 0")
        if self.allow_remote and self.key() is None:
            raise SettingsError("run.udp.allow_remote is true but no wire key is configured: set run.udp.key_file (a "
                                "file of 64 hex digits, chmod 600) or ROBONAV_WIRE_KEY_FILE; a robot on the network "
                                "must not take unsigned commands")

    def key(self) -> bytes | None:
        """The wire key these settings name (key_file, else the environment), or None."""
        from robonav.runtime.wire.keys import load_key

        return load_key(expand_path(self.key_file))


@dataclass(frozen=True)
class SimDriverSettings:
    """Episodes the simulator driver (driver: sim) plays, in order, then again."""

    suite: str = "test"
    """Episode suite (robonav.eval.episodes.make_episodes): test, val, test-9x9, a maze file, ..."""
    episodes: int = 20
    """Episodes in the list."""
    seed: int = 0
    """Seed of the episode list."""


DriverFactory = Callable[[ModelSidecar, SimDriverSettings, float], Driver]
"""Builds the driver from the model's sidecar, the settings' sim section and the loop period (the CLI does, as
the simulator driver lives on a floor robonav.runtime never imports)."""


@dataclass(frozen=True)
class RunSettings:
    """The on-robot loop: model, backend, driver, clock, watchdog, telemetry and the safety layer."""

    model: str = "default"
    """Step model: 'default' (the shipped policies/default.onnx) or a path to an .onnx (ort, numba, torch) or
    .engine (trt) with its sidecar beside it."""
    backend: str = "numba"
    """Inference backend: numba (CPU, core install only), ort (ONNX Runtime, CPU), torch, trt (Jetson)."""
    threads: int = 1
    """CPU threads of the ort backend."""
    ort_providers: tuple[str, ...] = ("cpu",)
    """Execution providers of the ort backend, in priority order: cpu, cuda, tensorrt (the GPU ones need
    onnxruntime-gpu); one this ONNX Runtime lacks is refused, never replaced by the CPU."""
    device: str = "cpu"
    """Device of the torch backend ('cpu' or 'cuda')."""
    driver: str = "sim"
    """Where frames come from and commands go: 'sim' (a simulated robot in this process, for a dev machine) or
    'udp' (the robot wire: a robot, or `robonav sim-robot` in another process) or 'ros2' (a ROS 2 node)."""
    clock: str = "real"
    """Loop clock (robonav.control.make_clock): real, or scaled (with clock_factor) for faster-than-real runs."""
    clock_factor: float = 1.0
    """Clock seconds per real second (scaled clock only)."""
    watchdog: float = 0.3
    """Seconds without a new sensor frame before the loop sends stops."""
    ticks: int | None = None
    """Stop after this many ticks (None: until SIGINT/SIGTERM)."""
    stress_hz: float | None = None
    """Run at this rate instead of the model's period: a timing report, not navigation (None: off)."""
    align: bool = True
    """Start the ticks just after the first frame arrives, in step with the sensor: each frame is then answered
    within the period it arrived in (the one tick of command latency training and eval simulate) rather than up to
    a period later, depending on the phase the loop happened to start in."""
    spin: float = 0.0
    """Seconds before each tick the loop polls the clock instead of sleeping (LoopConfig.spin; 0: sleep)."""
    prewarm: bool = False
    """Warm the policy step and the safety layer at the start of the spin window (LoopConfig.prewarm)."""
    telemetry: str | None = "robonav-run.jsonl"
    """JSON-lines telemetry file, appended to (None: none)."""
    telemetry_every: int = 100
    """Ticks per telemetry block."""
    gc_freeze: bool = True
    """Freeze and disable Python's garbage collector while the loop runs."""
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    """The safety layer between policy and wheels (robonav.control; the same limits as training)."""
    sim: SimDriverSettings = field(default_factory=SimDriverSettings)
    """Episodes of the simulator driver."""
    udp: UdpSettings = field(default_factory=UdpSettings)
    """Endpoints of the UDP driver."""
    record: str | None = None
    """driver: udp: write every datagram received and sent to this wire recording (`robonav replay` reruns it)."""

    def __post_init__(self) -> None:
        if self.driver not in DRIVERS:
            raise SettingsError(f"run.driver must be one of {list(DRIVERS)}, got {self.driver!r}")
        if self.record is not None and self.driver != "udp":
            raise SettingsError(f"run.record records the robot wire: it needs driver: udp, got {self.driver!r}")


def model_path(model: str) -> Path:
    """The model file: 'default' resolves to the shipped policies/default.onnx."""
    if model != "default":
        return Path(model)
    from robonav.data import ResourceNotFoundError, resource

    try:
        return resource("policies", "default.onnx")
    except ResourceNotFoundError as e:
        raise SettingsError(f"model 'default': {e}; or give a model with --set model=PATH.onnx") from e


def backend_kwargs(settings: RunSettings) -> dict[str, Any]:
    """The constructor arguments `settings` implies for its backend kind."""
    if settings.backend == "ort":
        return {"threads": settings.threads, "providers": settings.ort_providers}
    if settings.backend == "torch":
        return {"device": settings.device}
    return {}


def open_run_backend(settings: RunSettings) -> Backend:
    """The open backend `settings` names, on its model."""
    from robonav.runtime.backends.registry import open_backend

    return open_backend(settings.backend, model_path(settings.model), **backend_kwargs(settings))


def loop_config(settings: RunSettings, backend: Backend) -> LoopConfig:
    """LoopConfig at the model's period (or the stress rate) with the settings' watchdog and telemetry."""
    return LoopConfig.for_model(backend.sidecar, settings.stress_hz, watchdog=settings.watchdog,
                                ticks=settings.ticks, telemetry=expand_path(settings.telemetry),
                                telemetry_every=settings.telemetry_every, gc_freeze=settings.gc_freeze,
                                align=settings.align, spin=settings.spin, prewarm=settings.prewarm)


def format_summary(summary: LoopSummary, extra: dict[str, Any] | None = None) -> str:
    """A few lines for people: counts, then the latency table (us) per stage."""
    s = summary
    lines = [f"ended by {s.exit_reason}: {s.ticks} ticks at {s.period * 1e3:g} ms{' (stress)' if s.stress else ''}, "
             f"{s.frames} frames, {s.deadline_misses} deadline misses ({s.miss_rate:.2e}/tick), "
             f"{s.skipped_ticks} skipped, {s.held_ticks} held, {s.stale_ticks} stale, {s.stops} stops, "
             f"{s.episodes} episodes, {s.bad_frames} bad frames",
             f"  {'stage':<8}{'count':>8}{'mean':>9}{'p50':>9}{'p99':>9}{'p99.9':>9}{'max':>9}  (us)"]
    for stage, row in s.latency.items():
        if row.get("count"):
            lines.append(f"  {stage:<8}{row['count']:>8}{row['mean_us']:>9.1f}{row['p50_us']:>9.1f}"
                         f"{row['p99_us']:>9.1f}{row['p999_us']:>9.1f}{row['max_us']:>9.1f}")
    for key, value in (extra or {}).items():
        lines.append(f"  {key}: {value}")
    return "\n".join(lines)


def udp_driver(settings: RunSettings, backend: Backend, config: LoopConfig, clock: Clock) -> Driver:
    """The UDP robot driver on the loop's clock; it records the wire when ``settings.record`` says so, with what
    `robonav replay` needs to rerun the run (model, backend, period, watchdog, safety)."""
    from dataclasses import asdict

    from robonav.runtime.wire.udp_driver import UdpDriver

    u = settings.udp
    key = u.key()
    meta = {"model": str(model_path(settings.model).resolve()), "backend": settings.backend,
            "backend_kwargs": backend_kwargs(settings), "period": config.period, "stress": config.stress,
            "watchdog": config.watchdog, "safety": asdict(settings.safety), "precision": backend.sidecar.precision,
            "signed": key is not None}
    return UdpDriver(bind=parse_address(u.bind, "run.udp.bind"), robot=parse_address(u.robot, "run.udp.robot"),
                     watchdog=settings.watchdog, clock=clock, allow_remote=u.allow_remote,
                     record=expand_path(settings.record), record_meta=meta, key=key, rate=u.rate,
                     max_beams=u.max_beams, max_chunks=u.max_chunks)


def expand_path(path: str | None) -> str | None:
    """``path`` with ~ and environment variables expanded (None stays None)."""
    return None if path is None else os.path.expandvars(os.path.expanduser(path))


def run_loop(settings: RunSettings, make_driver: DriverFactory, as_json: bool = False,
             ros_args: list[str] | None = None) -> int:
    """``robonav run``: open the backend, build the driver and the loop, run until --ticks or a signal, print the
    summary (one JSON line with ``as_json``); returns the exit code (0: the loop ended as asked). ``ros_args``:
    what followed --ros-args (driver ros2 only)."""
    import dataclasses

    from robonav.control.clock import make_clock

    ros = None
    if ros_args is not None and settings.driver != "ros2":
        raise SettingsError(f"--ros-args configures the ROS 2 node: it needs --driver ros2, got {settings.driver!r}")
    if settings.driver == "ros2":  # parameters and rclpy checked before the backend opens
        from robonav.runtime.ros2 import parse_ros_args
        from robonav.runtime.ros2.node import require_rclpy

        ros = parse_ros_args(ros_args or [])
        settings = dataclasses.replace(settings, **ros.params.run_overrides())
        require_rclpy()
    backend = open_run_backend(settings)
    try:
        config = loop_config(settings, backend)
        clock = make_clock(settings.clock, settings.clock_factor)

        def drive(driver: Driver) -> tuple[LoopSummary, dict[str, Any]]:
            loop = ControlLoop.for_backend(backend, driver, clock, config, settings.safety)
            service = ServiceWatchdog.from_environment()  # systemd's READY/WATCHDOG; a no-op outside a unit
            loop.on_tick = service.tick
            driver_tick = getattr(driver, "on_tick", None)  # the ROS 2 bridge's /diagnostics timing
            if callable(driver_tick):
                def both(now: float, on_time: bool, stopped: bool) -> None:
                    service.tick(now, on_time, stopped)
                    driver_tick(now, on_time, stopped)

                loop.on_tick = both

            def started() -> None:
                print(f"robonav run: running {backend.name} at {config.period:g} s per tick"
                      f"{' (stress)' if config.stress else ''}, driver {settings.driver}; SIGINT/SIGTERM stop it",
                      file=sys.stderr, flush=True)

            try:
                summary = loop.run(on_start=started)
            finally:
                service.stopping()
            summarize = getattr(driver, "summary", None)
            return summary, summarize() if callable(summarize) else {}

        if ros is not None:  # the node feeds the bridge from its own thread while the loop runs here
            from robonav.runtime.ros2.node import run_node

            summary, extra = run_node(drive, ros)
        else:
            driver = (udp_driver(settings, backend, config, clock) if settings.driver == "udp"
                      else make_driver(backend.sidecar, settings.sim, config.period))
            try:
                summary, extra = drive(driver)
            finally:
                driver.close()
    finally:
        backend.close()
    if as_json:
        print(json.dumps({**summary.to_dict(), **extra}, sort_keys=True))
    else:
        print(format_summary(summary, extra))
    return 0
