"""`FaultProxy`: the UDP proxy between the simulator playing the robot and the runtime that injects faults (HIL).

    sim-robot --> robot_side_address   [ proxy ]  runtime-side socket --> runtime (UdpDriver)
    sim-robot <-- robot-side socket    [ proxy ]  runtime_side_address <-- runtime

Each side sees the proxy as its peer. Every datagram goes through, in order:
  1. sensor faults (robot->runtime datagrams that decode as SCAN only): inside a frozen-sensor window the datagram
     is replaced by the same-index chunk of the last frame seen before the window; otherwise a NaN/inf burst and
     NaN odometry, each drawn once per frame so all chunks of a frame are alike;
  2. network faults, in the directions FaultConfig.directions names: loss, corrupt, duplicate, delay + jitter,
     reorder (held back, then sent right after the next datagram of its direction; after REORDER_HOLD_S clock
     seconds with no next one, it is sent alone);
  3. a heap of (deliver_at, tiebreak, socket, bytes, dest) on the clock's time; poll() sends what is due.
Bytes that are not a wire message are forwarded too, with the network faults. Each fault draws from its own
random.Random per direction, seeded from FaultConfig.seed and drawn once per datagram whether or not the datagram
survives: the same seed and traffic give the same faults, and turning one fault on does not move another's draws.
Single thread, never raises on datagram content: a bug on one datagram is logged and counted (internal_errors).
Signed datagrams pass untouched; ``key`` (the robot's wire key, from $ROBONAV_WIRE_KEY_FILE for the command) lets
the sensor faults re-sign what they change, as a faulty sensor in front of the robot's signing would; corruption
is never re-signed, so the receiver refuses it as a bad MAC (faults.py).

    python -m robonav.hil.proxy --runtime 127.0.0.1:47800 --faults '{"loss": 0.05, "seed": 1}' --json
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import logging
import random
import select
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from typing import Any

from robonav.control.clock import CLOCK_KINDS, Clock, RealClock, make_clock
from robonav.errors import UserError
from robonav.hil.faults import FaultConfig, SensorFaults, corrupt_bytes
from robonav.runtime.wire import is_loopback

__all__ = ["COUNTERS", "DIRECTIONS", "REORDER_HOLD_S", "FaultProxy", "ProxyConfigError", "main"]

log = logging.getLogger(__name__)

TO_RUNTIME, TO_ROBOT = "to_runtime", "to_robot"
DIRECTIONS = (TO_RUNTIME, TO_ROBOT)
"""Summary keys: robot->runtime and runtime->robot."""
COUNTERS = ("received", "delivered", "dropped", "duplicated", "reordered", "corrupted", "delayed", "frozen",
            "nan_bursts", "nan_odometry", "unroutable", "send_errors", "recv_errors", "internal_errors")
"""Per-direction counters in summary(): datagrams received, sent (copies included), dropped by loss, duplicated,
held back for reordering, corrupted, given extra delay, replaced by a frozen frame's chunk; frames given a NaN/inf
burst or NaN odometry; runtime datagrams with no robot address to go to yet; socket errors; internal bugs."""
REORDER_HOLD_S = 0.5
"""Clock seconds a datagram held for reordering waits for a next one before it is sent alone."""
SLICE_S = 0.05
"""Real seconds of one serve() poll: how quickly a set stop event is seen."""
RECV_SIZE = 65536
MAX_READ = 256
"""Datagrams read from one socket per poll, so one busy side cannot starve deliveries."""
_NETWORK_DRAWS = ("loss", "corrupt", "duplicate", "reorder", "jitter")


class ProxyConfigError(UserError, ValueError):
    """The proxy was asked to bind a non-loopback address without allow_remote."""


class FaultProxy:
    """Forwards robot <-> runtime datagrams with the faults of a FaultConfig; see the module docstring."""

    def __init__(self, config: FaultConfig, runtime: tuple[str, int], robot: tuple[str, int] | None = None,
                 clock: Clock | None = None, robot_side: tuple[str, int] = ("127.0.0.1", 0),
                 runtime_side: tuple[str, int] = ("127.0.0.1", 0), allow_remote: bool = False,
                 key: bytes | None = None) -> None:
        """``runtime``: where robot datagrams go. ``robot``: where runtime datagrams go (None: the sender of the
        first datagram on the robot side). ``robot_side`` / ``runtime_side``: local addresses to bind (port 0:
        any free one). Times in the config are ``clock`` seconds (a ScaledClock's delays pass F times faster)."""
        for name, (host, _port) in (("robot_side", robot_side), ("runtime_side", runtime_side)):
            if not is_loopback(host) and not allow_remote:
                raise ProxyConfigError(
                    f"FaultProxy: {name} address {host!r} is not loopback; the proxy listens on loopback unless "
                    "configured otherwise. Pass allow_remote=True (--allow-remote) to listen there.")
        self.config = config
        self.runtime = (runtime[0], int(runtime[1]))
        self.robot = None if robot is None else (robot[0], int(robot[1]))
        self.clock: Clock = clock if clock is not None else RealClock()
        self.start = self.clock.now()
        self._factor = float(getattr(self.clock, "factor", 1.0))  # clock seconds per real second
        self.counts = {d: dict.fromkeys(COUNTERS, 0) for d in DIRECTIONS}
        seed = config.seed
        self._draw = {(d, k): random.Random(f"{seed}:{d}:{k}") for d in DIRECTIONS for k in _NETWORK_DRAWS}
        self._flip = {d: random.Random(f"{seed}:{d}:corrupt_bytes") for d in DIRECTIONS}
        self._sensor = SensorFaults(config, self.start, key)
        self._heap: list[tuple[float, int, socket.socket, bytes, tuple[str, int]]] = []
        self._tiebreak = itertools.count()
        self._held: dict[str, tuple[bytes, tuple[str, int], int, float] | None] = dict.fromkeys(DIRECTIONS)
        self.closed = True
        self._robot_sock = self._bind(robot_side)
        try:
            self._runtime_sock = self._bind(runtime_side)
        except OSError:
            self._robot_sock.close()
            raise
        self.robot_side_address: tuple[str, int] = self._robot_sock.getsockname()
        """Bound (host, port) the robot sends to."""
        self.runtime_side_address: tuple[str, int] = self._runtime_sock.getsockname()
        """Bound (host, port) the runtime sends to."""
        self.closed = False

    @staticmethod
    def _bind(address: tuple[str, int]) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.bind(address)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    @property
    def pending(self) -> int:
        """Datagrams scheduled or held but not sent yet."""
        return len(self._heap) + sum(h is not None for h in self._held.values())

    def poll(self, timeout: float = SLICE_S) -> int:
        """Send what is due, wait up to ``timeout`` real seconds (less if a delivery falls due sooner) for
        datagrams, handle them, send what is then due; returns the number of datagrams received."""
        if self.closed:
            return 0
        self._deliver_due()
        wait = max(0.0, timeout)
        due = self._next_due()
        if due is not None:
            wait = min(wait, max(0.0, (due - self.clock.now()) / self._factor))
        try:
            ready, _, _ = select.select([self._robot_sock, self._runtime_sock], [], [], wait)
        except (OSError, ValueError):
            if self.closed:  # closed from another thread while waiting
                return 0
            raise
        n = 0
        for sock in ready:
            n += self._read(sock, TO_RUNTIME if sock is self._robot_sock else TO_ROBOT)
        self._deliver_due()
        return n

    def serve(self, stop: threading.Event | None = None) -> None:
        """Poll until ``stop`` is set (None: until close() from another thread)."""
        while not self.closed and not (stop is not None and stop.is_set()):
            self.poll(SLICE_S)

    def close(self) -> None:
        """Close both sockets (datagrams still pending are not sent); idempotent."""
        if not self.closed:
            self.closed = True
            self._robot_sock.close()
            self._runtime_sock.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def summary(self) -> dict[str, Any]:
        """Counters per direction (COUNTERS), addresses, datagrams pending, and the config: JSON-serialisable."""
        return {**{d: dict(self.counts[d]) for d in DIRECTIONS}, "pending": self.pending,
                "robot": None if self.robot is None else list(self.robot), "runtime": list(self.runtime),
                "robot_side": list(self.robot_side_address), "runtime_side": list(self.runtime_side_address),
                "config": self.config.to_dict()}

    def _read(self, sock: socket.socket, direction: str) -> int:
        counts = self.counts[direction]
        n = 0
        for _ in range(MAX_READ):
            try:
                data, addr = sock.recvfrom(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:  # e.g. an ICMP error from an earlier send, reported here
                counts["recv_errors"] += 1
                log.debug("FaultProxy %s: receive failed: %r", direction, e)
                continue
            n += 1
            try:
                self._handle(direction, data, addr)
            except Exception:  # a bug: logged and counted, never allowed to stop the proxy
                counts["internal_errors"] += 1
                log.exception("FaultProxy %s: internal error on a datagram of %d bytes", direction, len(data))
        return n

    def _handle(self, direction: str, data: bytes, addr: tuple[str, int]) -> None:
        counts = self.counts[direction]
        counts["received"] += 1
        now = self.clock.now()
        if direction == TO_RUNTIME:
            if self.robot is None:
                self.robot = (addr[0], addr[1])
            dest = self.runtime
            data = self._sensor.apply(data, now, counts)
        elif self.robot is None:
            counts["unroutable"] += 1
            return
        else:
            dest = self.robot
        if not self.config.applies(direction):
            self._schedule(direction, data, dest, now, 1)
            return
        cfg = self.config
        lost, corrupt, dup, hold, jitter = (self._draw[(direction, k)].random() for k in _NETWORK_DRAWS)
        if lost < cfg.loss:
            counts["dropped"] += 1
            return
        if corrupt < cfg.corrupt and data:
            data = corrupt_bytes(data, self._flip[direction])
            counts["corrupted"] += 1
        copies = 2 if dup < cfg.duplicate else 1
        counts["duplicated"] += copies - 1
        extra = cfg.delay + cfg.jitter * jitter
        counts["delayed"] += extra > 0.0
        if hold < cfg.reorder and self._held[direction] is None:
            self._held[direction] = (data, dest, copies, now)
            counts["reordered"] += 1
            return
        self._schedule(direction, data, dest, now + extra, copies)

    def _schedule(self, direction: str, data: bytes, dest: tuple[str, int], at: float, copies: int) -> None:
        """Queue ``copies`` of data for ``at``, then the datagram held back in this direction, if any."""
        sock = self._runtime_sock if direction == TO_RUNTIME else self._robot_sock
        for _ in range(copies):
            heapq.heappush(self._heap, (at, next(self._tiebreak), sock, data, dest))
        held = self._held[direction]
        if held is not None:
            self._held[direction] = None
            data, dest, copies, _held_at = held
            for _ in range(copies):
                heapq.heappush(self._heap, (at, next(self._tiebreak), sock, data, dest))

    def _next_due(self) -> float | None:
        times = [self._heap[0][0]] if self._heap else []
        times += [h[3] + REORDER_HOLD_S for h in self._held.values() if h is not None]
        return min(times) if times else None

    def _deliver_due(self) -> None:
        now = self.clock.now()
        for direction, held in self._held.items():
            if held is not None and now >= held[3] + REORDER_HOLD_S:  # no next datagram came: send it alone
                self._held[direction] = None
                sock = self._runtime_sock if direction == TO_RUNTIME else self._robot_sock
                for _ in range(held[2]):
                    heapq.heappush(self._heap, (now, next(self._tiebreak), sock, held[0], held[1]))
        while self._heap and self._heap[0][0] <= now:
            _, _, sock, data, dest = heapq.heappop(self._heap)
            counts = self.counts[TO_RUNTIME if sock is self._runtime_sock else TO_ROBOT]
            try:
                sock.sendto(data, dest)
                counts["delivered"] += 1
            except OSError as e:
                counts["send_errors"] += 1
                log.debug("FaultProxy: send to %s failed: %r", dest, e)


def _address(text: str) -> tuple[str, int]:
    """argparse type: HOST:PORT."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT with a port in 0 .. 65535, actual: {text!r}")
    return host, int(port)


def _faults(text: str) -> dict[str, Any]:
    """argparse type: a JSON object of FaultConfig keys."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object of fault settings, actual: {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m robonav.hil.proxy",
        description="UDP proxy between the robot (or the simulator playing it) and the runtime that injects network "
                    "and sensor faults (HIL tests); serves until SIGTERM or SIGINT.")
    hp = "HOST:PORT"
    p.add_argument("--runtime", type=_address, required=True, metavar=hp, help="where the runtime listens")
    p.add_argument("--robot", type=_address, metavar=hp, help="the robot (default: learned from its first datagram)")
    p.add_argument("--robot-side", type=_address, default=("127.0.0.1", 0), metavar=hp,
                   help="address to bind for the robot (default 127.0.0.1:0, any free port)")
    p.add_argument("--runtime-side", type=_address, default=("127.0.0.1", 0), metavar=hp,
                   help="address to bind for the runtime (default 127.0.0.1:0, any free port)")
    p.add_argument("--faults", type=_faults, required=True, metavar="JSON",
                   help="JSON object of FaultConfig settings ('{}': none)")
    p.add_argument("--clock", choices=[k for k in CLOCK_KINDS if k != "manual"], default="real")
    p.add_argument("--clock-factor", type=float, default=1.0, metavar="F",
                   help="clock seconds per real second (scaled clock)")
    p.add_argument("--allow-remote", action="store_true", help="allow binding a non-loopback address")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON line at the end")
    return p


def _table(summary: dict[str, Any]) -> str:
    active = {k: v for k, v in summary["config"].items() if v and k not in ("directions", "seed")}
    lines = [f"faults: {json.dumps(active) if active else 'none'} (seed {summary['config']['seed']}, "
             f"directions {summary['config']['directions']})", f"{'':16}{TO_RUNTIME:>12}{TO_ROBOT:>12}"]
    lines += [f"{k:16}{summary[TO_RUNTIME][k]:>12}{summary[TO_ROBOT][k]:>12}" for k in COUNTERS]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the proxy until SIGTERM or SIGINT; exit code 0, or 2 for bad arguments (message on stderr)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse printed the usage error (2) or --help (0)
        return int(e.code or 0) if not isinstance(e.code, str) else 2
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        config = FaultConfig.from_dict(args.faults)
        clock = make_clock(args.clock, args.clock_factor)
        from robonav.runtime.wire import load_key

        proxy = FaultProxy(config, args.runtime, args.robot, clock, args.robot_side, args.runtime_side,
                           args.allow_remote, load_key(None))
    except (ValueError, OSError) as e:  # FaultConfigError, ClockValueError, ProxyConfigError, bind failures
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        print(json.dumps({"robot_side": list(proxy.robot_side_address),
                          "runtime_side": list(proxy.runtime_side_address)}), flush=True)
        proxy.serve(stop)
    finally:
        proxy.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    summary = proxy.summary()
    print(json.dumps(summary) if args.json else _table(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
