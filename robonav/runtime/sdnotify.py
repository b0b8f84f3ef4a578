"""systemd's notify protocol in plain Python: READY=1 and the service watchdog, no dependency.

systemd (``Type=notify``) passes the path of a datagram socket in ``$NOTIFY_SOCKET`` (a name starting with '@'
is in the abstract namespace) and, with ``WatchdogSec=``, the watchdog time in ``$WATCHDOG_USEC`` (for the pid
in ``$WATCHDOG_PID`` when set). A service sends newline-separated ``KEY=VALUE`` datagrams. Without
``$NOTIFY_SOCKET`` everything here is a no-op, so the loop runs the same under a shell, a container or a test.

`ServiceWatchdog` is what the control loop calls once per tick: READY=1 after the first tick (the model is open,
the kernels are compiled, a tick ran), then WATCHDOG=1 at most once per tick and at least every quarter of the
watchdog time while ticks end on time. It stops sending while ticks are late and once the loop has been in a
fail-safe state (no frames, bad frames) for ``failsafe_limit`` seconds, so systemd restarts the service; a
loop that hangs sends nothing by itself.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Mapping

__all__ = ["FAILSAFE_LIMIT", "SdNotifier", "ServiceWatchdog", "watchdog_seconds"]

FAILSAFE_LIMIT = 30.0
"""Seconds in a fail-safe state (robot stopped: no frames or bad frames) after which the watchdog is no longer
fed and systemd restarts the service (a wedged socket or driver gets a fresh start; the robot stays stopped)."""


class SdNotifier:
    """Sends notify datagrams to ``address`` (default ``$NOTIFY_SOCKET``); a no-op without one.

    Sending never raises or blocks: a service manager that went away or lags must not stop the robot's loop;
    failures (no listener, a full queue) are counted in ``errors``.
    """

    def __init__(self, address: str | None = None, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "") if address is None else address
        self.address = "\0" + raw[1:] if raw.startswith("@") else raw
        """The socket address ('' when disabled; a leading NUL for the abstract namespace)."""
        self.errors = 0
        """Datagrams that could not be sent."""
        self.sent = 0
        """Datagrams sent."""
        self._sock: socket.socket | None = None
        if self.address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)  # a full queue (10 datagrams on Linux) must never stall the loop

    @property
    def enabled(self) -> bool:
        """Whether a notify socket was given."""
        return self._sock is not None

    def send(self, message: bytes | str) -> bool:
        """Send one datagram (``b"READY=1"``, ``"STATUS=..."``); whether it went out."""
        if self._sock is None:
            return False
        data = message.encode() if isinstance(message, str) else message
        try:
            self._sock.sendto(data, self.address)
        except OSError:
            self.errors += 1
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        """Close the socket; idempotent."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_seconds(environ: Mapping[str, str] | None = None) -> float | None:
    """The watchdog time systemd set for this process (``$WATCHDOG_USEC``), or None: none set, another
    process's (``$WATCHDOG_PID``), or not a positive number."""
    env = os.environ if environ is None else environ
    pid = env.get("WATCHDOG_PID")
    if pid is not None and pid.strip() != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 1e6 if usec > 0 else None


class ServiceWatchdog:
    """Per-tick READY / WATCHDOG decisions for the control loop (see the module docstring).

    ``interval``: seconds between WATCHDOG=1 datagrams (default a quarter of ``$WATCHDOG_USEC``; None with no
    watchdog set: READY only). Times are the loop's clock, real time on a robot.
    """

    _READY = b"READY=1\nSTATUS=control loop running"
    _WATCHDOG = b"WATCHDOG=1"
    _STOPPING = b"STOPPING=1\nSTATUS=control loop stopped"

    def __init__(self, notifier: SdNotifier, interval: float | None = None,
                 failsafe_limit: float = FAILSAFE_LIMIT) -> None:
        if interval is not None and not (0.0 < interval < math.inf):
            raise ValueError(f"ServiceWatchdog: interval must be finite and > 0 s, actual: {interval!r}")
        self.notifier = notifier
        self.interval = interval
        self.failsafe_limit = failsafe_limit
        self.ready = False
        """Whether READY=1 went out."""
        self.held_back = 0
        """Ticks on which a due WATCHDOG=1 was not sent (late tick, or fail-safe for too long)."""
        self._last = -math.inf  # loop time of the last WATCHDOG=1
        self._failsafe_since: float | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None,
                         failsafe_limit: float = FAILSAFE_LIMIT) -> ServiceWatchdog:
        """The watchdog systemd asked for through the environment (a no-op without ``$NOTIFY_SOCKET``)."""
        seconds = watchdog_seconds(environ)
        return cls(SdNotifier(environ=environ), None if seconds is None else seconds / 4, failsafe_limit)

    def tick(self, now: float, on_time: bool, failsafe: bool) -> None:
        """Called by the loop at the end of every tick: ``on_time`` (the tick ended before the next one's
        start), ``failsafe`` (the loop is holding the robot stopped: no frames or a bad frame)."""
        n = self.notifier
        if not n.enabled:
            return
        if not self.ready:
            self.ready = n.send(self._READY)
            self._last = now
        if failsafe:
            if self._failsafe_since is None:
                self._failsafe_since = now
        else:
            self._failsafe_since = None
        if self.interval is None or now - self._last < self.interval:
            return
        stuck = self._failsafe_since is not None and now - self._failsafe_since >= self.failsafe_limit
        if not on_time or stuck:
            self.held_back += 1
            return
        n.send(self._WATCHDOG)
        self._last = now

    def stopping(self) -> None:
        """Tell systemd the service is shutting down on purpose (SIGTERM, --ticks); then close the socket."""
        self.notifier.send(self._STOPPING)
        self.notifier.close()
