"""The simulator as a robot (`robonav sim-robot --launch hil`): a PyBullet maze world behind the robot wire.

A separate process that behaves like the robot's firmware: every sensor period (on its own clock, robonav.control:
real, or scaled for faster-than-real HIL) it applies the newest command, steps the world one period, and sends the
new frame (HELLO and DESCRIPTION at connect and about once a second, then SCAN chunks). It stops the robot by itself
when commands stop coming (its own watchdog, as motor controllers do: the runtime's HELLO may shorten it, never
lengthen it past ``watchdog`` or switch it off, wire.clamp_watchdog) and measures command age on its own clock, from
the frame each command echoes. With a wire key (``key_file`` or the environment, robonav.runtime.wire.keys) it signs
what it sends and refuses unsigned, forged and replayed datagrams, as the runtime does; each peer is rate limited.

A command is taken only if it answers a frame of the current episode, newer than the frame the last taken command
answered, sent no longer than the watchdog ago; anything else is a stale command, dropped and counted
(``stale_dropped``). The newest command drives the motors until the frame it answers is older than the watchdog:
then the robot stops (a watchdog stop, its delay after the last command's arrival recorded), so a runtime that
stops answering stops the robot within one watchdog period (plus at most one sensor period, the robot's tick).
``stale_applied`` is a separate check on what was applied (its episode and its order, counted after the fact;
its age is what the watchdog stop enforces): it must stay zero.

The world runs the evaluation settings (robonav eval: randomization off, the nominal noise) with no command latency
of its own: the wire supplies it (a command computed on frame k reaches the motors at tick k + 1, the one tick
robonav eval simulates), so a HIL run's navigation compares with `robonav eval` on the same episodes. The runtime's
safety layer is the robot's; the world's own is a pass-through. The episode clock starts when the first command
arrives (until then the robot repeats its first frame), so a runtime that is still loading costs no episode time.
"""

from __future__ import annotations

import dataclasses
import json
import random
import select
import socket
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from robonav.control.clock import Clock, make_clock
from robonav.errors import UserError
from robonav.runtime import wire
from robonav.runtime.wire import RateLimiter, Receiver, TruthRecorder, is_loopback, load_key, parse_address
from robonav.sensors.odometry import integrate_pose
from robonav.settings import SettingsError

__all__ = ["SimRobot", "SimRobotError", "SimRobotSettings", "percentiles"]


class SimRobotError(UserError, RuntimeError):
    """The simulated robot could not run its episodes (no runtime answered within the connect timeout)."""


@dataclass(frozen=True)
class SimRobotSettings:
    """The simulated robot of a HIL bench (the ``robot:`` section of launch/hil.yaml)."""

    bind: str = "127.0.0.1:47801"
    """Where the robot listens for commands (host:port; port 0: any free one)."""
    runtime: str = "127.0.0.1:47800"
    """Where it sends frames: the runtime's UDP driver (or the fault proxy in front of it)."""
    allow_remote: bool = False
    """Listen on a non-loopback address."""
    suite: str = "test"
    """Episode suite (robonav.eval.episodes.make_episodes): test, val, test-9x9, a maze file, ..."""
    episodes: int = 6
    """Episodes in the list, played in order; then the robot reports and exits (see duration)."""
    duration: float = 0.0
    """Clock seconds to run at least: the list is played again from its start as often as needed, and the run ends
    when the episode running at that time ends (0: the list once)."""
    seed: int = 0
    """Seed of the episode list."""
    period: float = 0.1
    """Sensor period (s): the policy's control period."""
    watchdog: float = 0.3
    """Seconds without a command after which the robot stops itself: its maximum. A runtime HELLO may ask for less;
    more, 0, negative, NaN or infinity mean this value (the watchdog is never raised or switched off)."""
    key_file: str | None = None
    """The robot's wire key (hex, chmod 600); None: $ROBONAV_WIRE_KEY_FILE or $ROBONAV_WIRE_KEY, else unsigned
    (loopback only)."""
    rate: float = 2000.0
    """Datagrams per second a peer may send (token bucket, bursts of 1,024); more are dropped ("rate")."""
    clock: str = "real"
    """real, or scaled (with clock_factor) for faster-than-real HIL runs."""
    clock_factor: float = 1.0
    """Clock seconds per real second (scaled clock only)."""
    connect_timeout: float = 60.0
    """Real seconds to wait for the first command before giving up."""
    description_every: float = 1.0
    """Clock seconds between repeated DESCRIPTION messages."""
    chunk_beams: int = wire.MAX_CHUNK_BEAMS
    """Beams per SCAN datagram (fewer: more chunks per frame, to exercise reassembly)."""
    trajectories: str | None = None
    """Write every finished episode's truth to this .npz (None: don't): the true pose (x, y, yaw) every tick, the
    seq and stamp of every frame sent with the tick it shows, and the maze (robonav.runtime.wire.truth)."""

    def __post_init__(self) -> None:
        parse_address(self.bind, "robot.bind")
        parse_address(self.runtime, "robot.runtime")
        if not 0.0 < self.period < self.watchdog:
            raise SettingsError(f"robot.period ({self.period}) and robot.watchdog ({self.watchdog}) must satisfy "
                                "0 < period < watchdog: a shorter watchdog stops the robot between on-time commands")
        if self.episodes < 1:
            raise SettingsError(f"robot.episodes must be >= 1, got {self.episodes}")
        if not 1 <= self.chunk_beams <= wire.MAX_CHUNK_BEAMS:
            raise SettingsError(f"robot.chunk_beams must be in 1 .. {wire.MAX_CHUNK_BEAMS} (a signed SCAN datagram's "
                                f"budget), got {self.chunk_beams}")


def percentiles(values: list[float], scale: float = 1e3) -> dict[str, float | int | None]:
    """count, p50, p99, max of ``values`` times ``scale`` (default: seconds to milliseconds)."""
    if not values:
        return {"count": 0, "p50": None, "p99": None, "max": None}
    a = np.asarray(values) * scale
    return {"count": len(a), "p50": round(float(np.percentile(a, 50)), 3),
            "p99": round(float(np.percentile(a, 99)), 3), "max": round(float(a.max()), 3)}


class SimRobot:
    """One simulated robot on one UDP socket; ``run()`` plays the episodes and returns the report."""

    def __init__(self, settings: SimRobotSettings, clock: Clock | None = None) -> None:
        from robonav.eval.episodes import make_episodes
        from robonav.eval.runner import eval_config
        from robonav.sim.config import SimConfig
        from robonav.sim.core import MazeSim
        from robonav.sim.driver import PassThroughSafety
        from robonav.sim.episodes import EpisodeSpec

        s = self.settings = settings
        self.clock = clock if clock is not None else make_clock(s.clock, s.clock_factor)
        bind = parse_address(s.bind, "robot.bind")
        host = bind[0]
        if not s.allow_remote and not is_loopback(host):
            raise SettingsError(f"robot.bind {s.bind!r} is not loopback; set robot.allow_remote: true to listen there")
        key = load_key(s.key_file)
        if s.allow_remote and key is None:
            raise SettingsError("robot.allow_remote is true but no wire key is configured: set robot.key_file (hex "
                                "key, chmod 600) or ROBONAV_WIRE_KEY_FILE")
        self.episodes: list[EpisodeSpec] = make_episodes(s.suite, s.episodes, s.seed)
        cfg = dataclasses.replace(eval_config(SimConfig(period=s.period)), latency_ticks=0, observation="plain")
        self.sim = MazeSim(1, cfg, seed=s.seed)
        self.sim.safety = PassThroughSafety()  # type: ignore[assignment]  # the runtime's safety layer is the robot's
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(bind)
        self.sock.setblocking(False)
        self.runtime = parse_address(s.runtime, "robot.runtime")
        self.signer = None if key is None else wire.Signer(key, wire.ROBOT_TO_RUNTIME)
        self.rx = Receiver(on_reject=self._reject, key=None if key is None else wire.link_key(key,
                           wire.RUNTIME_TO_ROBOT))
        self.limiter = RateLimiter(s.rate)
        self.watchdog = s.watchdog
        self.boot_id = random.getrandbits(32)
        self.rejected: dict[str, int] = dict.fromkeys((*wire.REASONS, "stale", "socket"), 0)
        self.watchdog_requests: list[float] = []  # every watchdog a valid runtime HELLO asked for (bounded below)
        self.results: list[dict[str, Any]] = []
        self.ages: list[float] = []  # command age at arrival (clock s)
        self.stop_delays: list[float] = []  # last command -> watchdog stop (clock s)
        self.counts = dict.fromkeys(("frames_sent", "commands", "applied", "stop_commands", "watchdog_stops",
                                     "stale_dropped", "stale_applied", "overruns", "runtime_hellos"), 0)
        self._seq = 0  # frame counter (u32, across episodes)
        self._msg_seq = 0  # HELLO/DESCRIPTION counter
        self._sent_at: dict[int, float] = {}  # frame seq -> clock time sent (this episode)
        self._cmd: wire.Command | None = None  # newest accepted command
        self._cmd_at = -np.inf  # when it arrived
        self._applied_seq: int | None = None  # the frame the last applied command answered
        self._stopped = False
        self._pose = np.zeros(3)  # wheel odometry pose in the episode's odometry frame
        self._action = np.zeros((1, 2))
        self._desc_at = -np.inf
        self.truth = TruthRecorder()  # true poses per tick and per frame sent, per episode
        self.max_late = 0.0  # most clock seconds a tick woke after its scheduled time

    # -- wire --------------------------------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        try:
            self.sock.sendto(data, self.runtime)
        except OSError:
            self.rejected["socket"] += 1  # the runtime is not up (ICMP unreachable): the next period retries

    def _hello(self) -> None:
        self._send(wire.encode_hello(wire.Hello(self.boot_id, wire.ROLE_ROBOT, 0.0, self._msg_seq, 0,
                                                self.clock.now()), self.signer))
        self._msg_seq = (self._msg_seq + 1) % wire.U32

    def _publish(self, frame: Any, now: float) -> None:
        if now - self._desc_at >= self.settings.description_every:
            self._desc_at = now
            self._send(wire.encode_description(wire.Description(frame.scan, self._msg_seq, frame.episode_id, now),
                                               self.signer))
            self._msg_seq = (self._msg_seq + 1) % wire.U32
        out = wire.ScanFrame(frame.ranges, frame.scan, self._pose, frame.goal, frame.episode_id, now, self._seq)
        for d in wire.encode_frame(out, self.settings.chunk_beams, self.signer):
            self._send(d)
        self._sent_at[self._seq] = now
        self.truth.sent(self._seq, now)
        self._seq = (self._seq + 1) % wire.U32
        self.counts["frames_sent"] += 1

    def _reject(self, error: wire.WireError) -> None:
        self.rejected[error.reason] = self.rejected.get(error.reason, 0) + 1

    def _drain(self, now: float, episode_id: int) -> None:
        """Read every waiting datagram; keep the newest acceptable command."""
        while True:
            try:
                data, addr = self.sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.rejected["socket"] += 1
                continue
            if not self.limiter.allow(addr):
                self.rejected["rate"] += 1
                continue
            try:
                msg = self.rx.receive(data)
            except wire.WireError as e:
                self._reject(e)
                continue
            if isinstance(msg, wire.Hello):
                self.counts["runtime_hellos"] += 1
                if msg.role == wire.ROLE_RUNTIME:
                    if len(self.watchdog_requests) < 64:
                        self.watchdog_requests.append(msg.watchdog_s)
                    self.watchdog = wire.clamp_watchdog(msg.watchdog_s, self.settings.watchdog)
            elif isinstance(msg, wire.Command):
                self.counts["commands"] += 1
                sent = self._sent_at.get(msg.answers_seq)
                newest = self._cmd.answers_seq if self._cmd is not None else self._applied_seq
                if (msg.episode_id != episode_id or sent is None or now - sent > self.watchdog
                        or (newest is not None and not wire.seq_newer(msg.answers_seq, newest))):
                    self.counts["stale_dropped"] += 1
                    self.rejected["stale"] += 1
                    continue
                self.ages.append(now - sent)
                self._cmd, self._cmd_at = msg, now

    def _wait(self, deadline: float, episode_id: int) -> None:
        """Until ``deadline``, take datagrams as they arrive (so a command's age is measured at its arrival, not at
        the next tick)."""
        factor = float(getattr(self.clock, "factor", 1.0))  # clock seconds per real second (ScaledClock)
        while True:
            left = deadline - self.clock.now()
            if left <= 0.0:
                return
            ready, _, _ = select.select([self.sock], [], [], left / factor)
            if ready:
                self._drain(self.clock.now(), episode_id)

    def _command(self, now: float, tick: float, episode_id: int) -> None:
        """The motors' input for this period: the newest command while the frame it answers is younger than the
        watchdog, else zero (the robot's own watchdog: a runtime that stops answering stops the robot). A stop's
        delay after the last command is measured to the tick's scheduled time ``tick`` (the robot's firmware
        schedule); how late the host woke the simulated robot is reported apart (``robot_max_late_ms``)."""
        cmd = self._cmd
        if cmd is None or now - self._sent_at[cmd.answers_seq] > self.watchdog:
            if not self._stopped and cmd is not None:
                self.counts["watchdog_stops"] += 1
                self.stop_delays.append(max(tick, self._cmd_at) - self._cmd_at)
            self._stopped = cmd is not None
            self._action[:] = 0.0
            return
        self._stopped = False
        # An independent check of _drain's rules on what is applied (the age rule is the branch above): must stay 0.
        if cmd.episode_id != episode_id or (self._applied_seq is not None
                                            and wire.seq_newer(self._applied_seq, cmd.answers_seq)):
            self.counts["stale_applied"] += 1
        if self._applied_seq != cmd.answers_seq:
            self.counts["applied"] += 1
            self.counts["stop_commands"] += int(cmd.stop)
        self._applied_seq = cmd.answers_seq
        self._action[0, 0] = 0.0 if cmd.stop else cmd.v
        self._action[0, 1] = 0.0 if cmd.stop else cmd.omega

    # -- episodes ----------------------------------------------------------------------------------------------

    def _start(self, index: int) -> int:
        self.sim.reset_env(0, self.episodes[index])
        maze = self.episodes[index].maze
        self.truth.start(int(self.sim.episode_id[0]), self.sim.pose[0], maze.occupancy, maze.cell)
        self._pose[:] = 0.0
        self._sent_at.clear()
        self._cmd, self._cmd_at, self._applied_seq, self._stopped = None, -np.inf, None, False
        return int(self.sim.episode_id[0])

    def _connect(self) -> None:
        """Say HELLO each period until the runtime's HELLO answers (its socket is up), then repeat DESCRIPTION and
        the first frame each period until a command answers one (its loop is up): frames go only to a listening
        runtime, so frames sent minus frames received is what the network lost."""
        import time

        episode_id = int(self.sim.episode_id[0])
        give_up = time.monotonic() + self.settings.connect_timeout
        while self._cmd is None:
            if time.monotonic() > give_up:
                raise SimRobotError(f"no command from the runtime at {self.settings.runtime} within "
                                   f"{self.settings.connect_timeout} s; is `robonav run --launch hil` running?")
            now = self.clock.now()
            if self.counts["runtime_hellos"] == 0:
                self._hello()
            else:
                self._desc_at = -np.inf
                self._publish(self.sim.frames[0], now)
            self.clock.sleep_until(now + self.settings.period)
            self._drain(self.clock.now(), episode_id)

    def run(self) -> dict[str, Any]:
        """Play every episode; returns the report (navigation per episode, timing, faults seen)."""
        s = self.settings
        episode_id = self._start(0)
        self._connect()
        print(json.dumps({"event": "connected", "runtime": self.settings.runtime}), file=sys.stderr, flush=True)
        t0 = self.clock.now()
        k, index = 0, 0
        while True:
            deadline = t0 + k * s.period
            self._wait(deadline, episode_id)
            now = self.clock.now()
            if now - deadline > s.period:
                self.counts["overruns"] += 1
            self._drain(now, episode_id)
            self.max_late = max(self.max_late, now - deadline)
            self._command(now, deadline, episode_id)
            _, _, terminated, truncated = self.sim.step(self._action)
            frame = self.sim.frames[0]
            assert frame is not None
            integrate_pose(self._pose, *frame.odom_delta)
            self.truth.tick(self.sim.pose[0])
            if terminated[0] or truncated[0]:
                n = len(self.episodes)
                self.results.append({**self.sim.info(0), "episode": index % n,
                                     "family": self.episodes[index % n].maze.family})
                index += 1
                print(json.dumps({"event": "episode", "done": index}), file=sys.stderr, flush=True)
                if (index >= n and s.duration <= 0.0) or (s.duration > 0.0 and now - t0 >= s.duration):
                    break
                episode_id = self._start(index % n)
                frame = self.sim.frames[0]
            self._publish(frame, self.clock.now())
            k += 1
        if s.trajectories:
            self.truth.save(s.trajectories, episodes=len(self.results))
        return self.report()

    def report(self) -> dict[str, Any]:
        """The robot's side of a HIL run."""
        return {"episodes": self.results, "counts": dict(self.counts), "rejected": dict(self.rejected),
                "command_age_ms": percentiles(self.ages), "watchdog_stop_delay_ms": percentiles(self.stop_delays),
                "max_stop_delay_s": max(self.stop_delays, default=None), "watchdog": self.watchdog,
                "watchdog_max": self.settings.watchdog, "watchdog_requests": self.watchdog_requests[:8],
                "signed": self.signer is not None,
                "robot_max_late_ms": round(1e3 * self.max_late, 3),
                "period": self.settings.period, "clock": repr(self.clock)}

    def close(self) -> None:
        """Release the socket and the physics client; idempotent."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None  # type: ignore[assignment]
            self.sim.close()


def main(settings: SimRobotSettings, as_json: bool = False, address_out: Any = None) -> int:
    """``robonav sim-robot``: play the episodes, print the report (one JSON line with ``as_json``)."""
    robot = SimRobot(settings)
    try:
        host, port = robot.sock.getsockname()[:2]
        print(json.dumps({"robot": f"{host}:{port}"}), file=address_out or sys.stderr, flush=True)
        report = robot.run()
    finally:
        robot.close()
    if as_json:
        print(json.dumps(report, sort_keys=True))
    else:
        done = report["episodes"]
        print(f"sim-robot: {sum(r['is_success'] for r in done)}/{len(done)} episodes reached the goal; command age "
              f"{report['command_age_ms']} ms; watchdog stops {report['counts']['watchdog_stops']}; stale dropped "
              f"{report['counts']['stale_dropped']}, applied {report['counts']['stale_applied']}")
    return 0
