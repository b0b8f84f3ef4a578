"""`UdpDriver`: the control loop's Driver over the robot wire (robonav.runtime.wire.protocol) on real UDP sockets.

    driver = UdpDriver(bind=("127.0.0.1", 47800), robot=("127.0.0.1", 47801), watchdog=0.3, clock=clock)
    frame = driver.latest_frame()         # drains the socket without blocking; the newest complete frame wins
    driver.publish(v, omega, frame.seq)   # a COMMAND echoing the answered frame's seq

Receiving never raises on bad input: every rejected datagram is dropped and counted under its reason
(``rejected[reason]``, reasons from wire.REASONS, plus "socket" for receive errors and "internal" for a bug the
fuzz tests hunt), and the reason is logged: the first of each kind at WARNING, then at most one per ``log_every``
seconds per reason. With a ``key`` (robonav.runtime.wire.keys) every datagram both ways is signed and checked
(protocol docstring): unsigned, forged and replayed ones never reach the loop. A peer sending faster than its token
bucket (``rate``, ``burst``) is dropped under "rate" before any other check. The driver binds to loopback unless
``allow_remote`` is set, which needs a key; without one it says once that the wire is unauthenticated. At start
(and when the robot says HELLO) it sends its own HELLO carrying ``watchdog`` (at most wire.WATCHDOG_MAX_S): the
robot stops by itself when commands stop for that long. Commands are stamped with the loop's clock and written
into one preallocated buffer.

Odometry arrives as poses (robonav.runtime.wire.protocol); the frame handed to the loop carries the delta from the frame
handed out before it (robonav.sensors.odometry.PoseDeltas), so frames lost on the wire or superseded between two
ticks lose no motion. With ``record`` the driver writes every datagram it receives and sends, and every frame the
loop takes, to a wire recording (robonav.runtime.wire.recording) that `robonav replay` reruns.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import socket
import time
from typing import Any

from robonav.control.clock import Clock, RealClock
from robonav.errors import UserError
from robonav.runtime.wire import protocol as wire
from robonav.runtime.wire.receiver import BURST, MAX_BEAMS, MAX_CHUNKS, RateLimiter, Receiver
from robonav.runtime.wire.recording import RX, TX, WireRecorder
from robonav.sensors.frame import ScanSpec, SensorFrame
from robonav.sensors.odometry import PoseDeltas

__all__ = ["UdpDriver", "UdpDriverConfigError", "is_loopback", "parse_address"]

log = logging.getLogger(__name__)

RECV_SIZE = 65536


class UdpDriverConfigError(UserError, ValueError):
    """The driver was configured with an address or setting it refuses (non-loopback bind, remote without a key,
    bad watchdog)."""


def parse_address(text: str, where: str) -> tuple[str, int]:
    """'host:port' -> (host, port); a clear error naming ``where`` (a settings key) otherwise."""
    from robonav.settings import SettingsError

    host, sep, port = str(text).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise SettingsError(f"{where}: {text!r} is not host:port (e.g. 127.0.0.1:47801; port 0 = any free one)")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """True for localhost and loopback IP addresses (the only ones a driver binds to unless told otherwise)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class UdpDriver:
    """Driver protocol (robonav.runtime.driver) over UDP; see the module docstring."""

    def __init__(self, bind: tuple[str, int] = ("127.0.0.1", 0), robot: tuple[str, int] | None = None,
                 watchdog: float = 0.3, clock: Clock | None = None, allow_remote: bool = False,
                 max_datagrams: int = 512, log_every: float = 1.0, boot_id: int | None = None,
                 record: str | None = None, record_meta: dict[str, Any] | None = None, key: bytes | None = None,
                 rate: float = 2000.0, burst: float = BURST, max_beams: int = MAX_BEAMS,
                 max_chunks: int = MAX_CHUNKS) -> None:
        """``bind``: local address (port 0: any free one, see ``address``). ``robot``: where commands go (None:
        the sender of the first valid datagram). ``watchdog``: seconds without a command after which the robot
        must stop (sent in HELLO). ``max_datagrams``: most datagrams drained per latest_frame() call.
        ``record``: a wire recording to write (``record_meta``: what ran, for the replay). ``key``: the robot's
        wire key (None: unsigned, loopback only). ``rate``, ``burst``: each peer's token bucket (datagrams/s).
        ``max_beams``, ``max_chunks``: the largest scan held."""
        if not is_loopback(bind[0]) and not allow_remote:
            raise UdpDriverConfigError(
                f"UdpDriver: bind address {bind[0]!r} is not loopback; the driver listens on loopback unless "
                "configured otherwise. Set run.udp.allow_remote: true (with a wire key) to listen there.")
        if allow_remote and key is None:
            raise UdpDriverConfigError(
                "UdpDriver: allow_remote is set but no wire key is configured; a robot on the network must not "
                "take unsigned commands. Set run.udp.key_file (hex key, chmod 600) or ROBONAV_WIRE_KEY_FILE.")
        if not 0.0 < watchdog <= wire.WATCHDOG_MAX_S:
            raise UdpDriverConfigError(f"UdpDriver: watchdog must be > 0 and <= {wire.WATCHDOG_MAX_S} s (the longest "
                                       f"a HELLO may ask of a robot), actual: {watchdog!r}.")
        if key is None:
            log.warning("UdpDriver: no wire key configured: datagrams are unsigned and unauthenticated (allowed on "
                        "loopback for development only; set run.udp.key_file for a robot).")
        self.clock: Clock = clock if clock is not None else RealClock()
        self.robot = robot
        self.watchdog = float(watchdog)
        self.max_datagrams = max_datagrams
        self.log_every = log_every
        self.boot_id = random.getrandbits(32) if boot_id is None else boot_id
        self.rejected: dict[str, int] = dict.fromkeys((*wire.REASONS, "socket", "internal"), 0)
        """Datagrams dropped, per reason."""
        self.last_reason: str | None = None
        """Message of the newest rejection."""
        self.received = 0
        """Datagrams read from the socket."""
        self.frames = 0
        """Complete sensor frames assembled."""
        self.sent = 0
        """Commands (and stops) sent."""
        self.send_errors = 0
        """Sends the socket refused (the robot's watchdog covers the lost command)."""
        self.signed = key is not None
        self._signer = wire.Signer(key, wire.RUNTIME_TO_ROBOT) if key is not None else None
        self._rx = Receiver(on_reject=self._reject, key=None if key is None else wire.link_key(key,
                            wire.ROBOT_TO_RUNTIME), max_beams=max_beams, max_chunks=max_chunks)
        self._limiter = RateLimiter(rate, burst)
        self._newest: SensorFrame | None = None
        self._wire_newest: wire.ScanFrame | None = None  # the newest complete frame received
        self._wire_taken: wire.ScanFrame | None = None  # the one handed to the loop last
        self._deltas = PoseDeltas()
        self.recorder = WireRecorder(record, record_meta) if record else None
        self._buf = bytearray(RECV_SIZE)
        self._cmd = bytearray(wire.COMMAND_SIZE)
        self._cmd_seq = 0
        self._hello_seq = 0
        self._logged_at: dict[str, float] = {}
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self._sock.bind(bind)
        self._sock.setblocking(False)
        self.closed = False
        self._send_hello()

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port)."""
        return self._sock.getsockname()

    @property
    def descriptions(self) -> dict[int, ScanSpec]:
        """Scanner descriptions received, by spec_id."""
        return self._rx.descriptions

    def frame_ready(self) -> bool:
        """Drain the socket; whether a complete frame not yet handed out is waiting. Takes nothing: the loop's
        align waits on it, so the frame it then takes at tick 0 is the first whose delta the loop integrates."""
        self._drain()
        return self._wire_newest is not None and self._wire_newest is not self._wire_taken

    def latest_frame(self) -> SensorFrame | None:
        """Drain the socket (at most ``max_datagrams``), return the newest complete frame; never raises on input."""
        if self.closed:
            return self._newest
        self._drain()
        f = self._wire_newest
        if f is not None and f is not self._wire_taken:
            self._wire_taken = f
            self._newest = f.to_sensor_frame(self._deltas.delta(f.episode_id, f.odom_pose))
            if self.recorder is not None:
                self.recorder.take(self.clock.now(), f.episode_id, f.seq)
        return self._newest

    def _drain(self) -> None:
        """Read up to ``max_datagrams`` waiting datagrams; keep the newest complete frame (never raises on input)."""
        if self.closed:
            return
        for _ in range(self.max_datagrams):
            try:
                n, addr = self._sock.recvfrom_into(self._buf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:  # e.g. ICMP port unreachable reported on a later call
                self._count("socket", f"receive failed: {e!r}; the datagram, if any, is lost.")
                continue
            self.received += 1
            if not self._limiter.allow(addr):
                self._count("rate", f"{addr} sends faster than {self._limiter.rate:g} datagrams/s; dropped.")
                continue
            if self.recorder is not None:
                self.recorder.write(RX, self.clock.now(), memoryview(self._buf)[:n])
            try:
                msg = self._rx.receive(memoryview(self._buf)[:n])
            except wire.WireError as e:
                self._reject(e, addr)
                continue
            except Exception as e:  # a bug: counted and logged, never allowed to stop the loop
                log.exception("UdpDriver: internal error on a datagram from %s", addr)
                self._count("internal", f"internal error {e!r} on a datagram from {addr}")
                continue
            if self.robot is None:
                self.robot = addr
            if isinstance(msg, wire.ScanFrame):
                self.frames += 1
                self._wire_newest = msg
            elif isinstance(msg, wire.Hello):
                self._send_hello()  # the robot (re)started: tell it our watchdog

    def publish(self, v: float, omega: float, answers_seq: int) -> None:
        """Send a COMMAND answering frame ``answers_seq``, stamped with the loop's clock."""
        self._send_command(v, omega, answers_seq, False)

    def stop(self) -> None:
        """Send a stop command (v = omega = 0, stop flag) answering the newest frame."""
        self._send_command(0.0, 0.0, self._newest.seq if self._newest is not None else 0, True)

    def close(self) -> None:
        """Close the socket; idempotent."""
        if not self.closed:
            self.closed = True
            self._sock.close()
            if self.recorder is not None:
                self.recorder.close()

    def summary(self) -> dict[str, Any]:
        """Counters for `robonav run`'s report: datagrams, frames, rejections per reason, sends."""
        return {"udp_received": self.received, "udp_frames": self.frames, "udp_sent": self.sent,
                "udp_send_errors": self.send_errors, "udp_rejected": dict(self.rejected),
                "udp_resyncs": self._rx.reassembler.resyncs, "udp_signed": self.signed,
                "udp_descriptions_evicted": self._rx.descriptions.evicted}

    def __enter__(self) -> UdpDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send_command(self, v: float, omega: float, answers_seq: int, stop: bool) -> None:
        if self.closed or self.robot is None:
            return
        episode = self._newest.episode_id if self._newest is not None else 0
        try:
            data = wire.encode_command_into(self._cmd, float(v), float(omega), answers_seq % wire.U32, stop,
                                            self._cmd_seq, episode, self.clock.now(), self._signer)
        except wire.WireError as e:  # a non-finite command: send a stop instead, never a bad value
            self._count("encode", f"command not sent: {e}")
            data = wire.encode_command_into(self._cmd, 0.0, 0.0, answers_seq % wire.U32, True, self._cmd_seq,
                                            episode, self.clock.now(), self._signer)
        self._cmd_seq = (self._cmd_seq + 1) % wire.U32
        self._send(data)

    def _send_hello(self) -> None:
        if self.robot is None:
            return
        hello = wire.Hello(self.boot_id, wire.ROLE_RUNTIME, self.watchdog, self._hello_seq, 0, self.clock.now())
        self._hello_seq = (self._hello_seq + 1) % wire.U32
        self._send(wire.encode_hello(hello, self._signer))

    def _send(self, data: bytes | memoryview) -> None:
        if self.recorder is not None:
            self.recorder.write(TX, self.clock.now(), data)
        try:
            self._sock.sendto(data, self.robot)  # type: ignore[arg-type]
            self.sent += 1
        except OSError as e:
            self.send_errors += 1
            self._log_rate_limited("send", f"send to {self.robot} failed: {e!r}")

    def _reject(self, error: wire.WireError, addr: object = None) -> None:
        self._count(error.reason, f"{error}" + (f" (from {addr})" if addr is not None else ""))

    def _count(self, reason: str, message: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        self.last_reason = f"{reason}: {message}"
        self._log_rate_limited(reason, message)

    def _log_rate_limited(self, reason: str, message: str) -> None:
        now = time.monotonic()
        last = self._logged_at.get(reason)
        if last is None or now - last >= self.log_every:
            self._logged_at[reason] = now
            log.warning("UdpDriver [%s] (%d so far): %s", reason, self.rejected.get(reason, self.send_errors), message)
