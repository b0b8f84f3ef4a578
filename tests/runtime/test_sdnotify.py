"""systemd's notify protocol: datagrams on a real AF_UNIX socket (a path and the abstract namespace), the
watchdog environment, and the control loop feeding systemd's watchdog (READY once, WATCHDOG while ticks are on
time and the loop is not held in a fail-safe state for long)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loop_toys as toys

from robonav.control.clock import ManualClock
from robonav.runtime.driver import ReplayDriver
from robonav.runtime.loop import ControlLoop, LoopConfig
from robonav.runtime.sdnotify import SdNotifier, ServiceWatchdog, watchdog_seconds


class Listener:
    """A datagram socket systemd would listen on, drained by a thread as systemd does (Linux queues only 10
    datagrams per socket by default)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.02)
        self.got: list[bytes] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        while not self.done.is_set():
            try:
                self.got.append(self.sock.recv(4096))
            except TimeoutError:
                pass

    def wait_for(self, count: int, timeout: float = 5.0) -> None:
        """Until ``count`` datagrams have been drained (so a burst never meets a full queue on a loaded machine)."""
        end = time.monotonic() + timeout
        while len(self.got) < count and time.monotonic() < end:
            time.sleep(0.001)

    def received(self) -> list[bytes]:
        """Everything sent so far (waits for the queue to empty)."""
        time.sleep(0.1)
        return list(self.got)

    def close(self) -> None:
        self.done.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def listener(tmp_path):
    listener = Listener(str(tmp_path / "notify"))
    yield listener
    listener.close()


def test_without_notify_socket_nothing_is_sent():
    n = SdNotifier(environ={})
    assert not n.enabled and n.send("READY=1") is False and n.sent == 0
    wd = ServiceWatchdog.from_environment({})
    wd.tick(0.0, True, False)
    wd.stopping()
    assert not wd.ready and wd.notifier.sent == 0


def test_datagrams_reach_a_path_socket(listener):
    n = SdNotifier(environ={"NOTIFY_SOCKET": listener.path})
    assert n.send("READY=1") and n.send(b"WATCHDOG=1")
    assert listener.received() == [b"READY=1", b"WATCHDOG=1"]
    n.close()
    n.close()  # idempotent
    assert n.send("WATCHDOG=1") is False


def test_an_address_starting_with_at_is_in_the_abstract_namespace():
    name = f"robonav-sdnotify-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2.0)
    try:
        n = SdNotifier(environ={"NOTIFY_SOCKET": "@" + name})
        assert n.address == "\0" + name and n.send("READY=1")
        assert sock.recv(64) == b"READY=1"
        n.close()
    finally:
        sock.close()


def test_a_vanished_socket_or_a_full_queue_is_counted_never_raised_or_waited_on(tmp_path):
    n = SdNotifier(environ={"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert n.send("WATCHDOG=1") is False and n.errors == 1
    n.close()
    path = str(tmp_path / "nobody-reads")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)  # bound, never read: the queue fills
    n = SdNotifier(environ={"NOTIFY_SOCKET": path})
    for _ in range(1000):
        n.send("WATCHDOG=1")
    assert n.sent >= 1 and n.errors >= 1 and n.sent + n.errors == 1000
    n.close()
    sock.close()


def test_watchdog_seconds_reads_systemds_environment():
    assert watchdog_seconds({"WATCHDOG_USEC": "2000000"}) == 2.0
    assert watchdog_seconds({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}) == 2.0
    assert watchdog_seconds({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid() + 1)}) is None
    assert watchdog_seconds({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_seconds({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_seconds({}) is None
    wd = ServiceWatchdog.from_environment({"WATCHDOG_USEC": "2000000"})
    assert wd.interval == 0.5  # four per WatchdogSec: at least two even when a few ticks are late


def loop_with(watchdog: ServiceWatchdog, frames, ticks: int, listener: Listener,
              backend=None) -> tuple[ControlLoop, ReplayDriver]:
    backend = backend or toys.NumpyToy().open()
    driver = ReplayDriver(frames)
    config = LoopConfig.for_model(backend.sidecar, ticks=ticks, watchdog=0.25, handle_signals=False)
    loop = ControlLoop.for_backend(backend, driver, ManualClock(), config)

    def tick(now: float, on_time: bool, failsafe: bool) -> None:
        watchdog.tick(now, on_time, failsafe)
        listener.wait_for(watchdog.notifier.sent)  # the manual clock runs ticks back to back: let systemd keep up

    loop.on_tick = tick
    loop.run()
    watchdog.stopping()
    assert watchdog.notifier.errors == 0
    return loop, driver


def test_the_loop_feeds_the_watchdog_until_it_is_held_in_a_fail_safe_state(listener):
    wd = ServiceWatchdog(SdNotifier(environ={"NOTIFY_SOCKET": listener.path}), interval=0.15, failsafe_limit=0.55)
    # Ticks every 0.1 s on the manual clock: frames at ticks 0..9, none after. READY at tick 0; WATCHDOG every
    # second tick (0.2 s >= 0.15 s). Stale from tick 12 (0.3 s > 0.25 s since the frame of tick 9): the fail-safe
    # state, fed on until 0.55 s in it (tick 17 is 0.5 s, tick 18 0.6 s): the last WATCHDOG is tick 16's.
    loop, driver = loop_with(wd, toys.frames(10) + [None] * 20, ticks=30, listener=listener)
    msgs = listener.received()
    assert msgs[0] == b"READY=1\nSTATUS=control loop running"
    assert msgs[1:-1] == [b"WATCHDOG=1"] * 8  # ticks 2, 4, ..., 16
    assert msgs[-1] == b"STOPPING=1\nSTATUS=control loop stopped"
    assert wd.held_back == 12  # ticks 18..29
    assert loop.summary.stale_ticks == 18 and driver.stops == 19


def test_frames_coming_back_feed_the_watchdog_again(listener):
    wd = ServiceWatchdog(SdNotifier(environ={"NOTIFY_SOCKET": listener.path}), interval=0.15, failsafe_limit=0.55)
    f = toys.frames(20)
    # Stale ticks 12..19, frames again from tick 20.
    loop_with(wd, f[:10] + [None] * 10 + f[10:], ticks=30, listener=listener)
    # WATCHDOG at ticks 2, 4, ..., 16; ticks 18 and 19 are 0.6 and 0.7 s in the fail-safe state: held back; tick
    # 20 answers a frame: sent, then every second tick (22 .. 28).
    assert listener.received().count(b"WATCHDOG=1") == 8 + 5
    assert wd.held_back == 2


def test_a_late_tick_does_not_feed_the_watchdog(listener):
    clock = ManualClock()

    class Slow(toys.NumpyToy):
        steps = -1  # -1: the loop's warm-up step

        def _step(self, obs):
            self.steps += 1
            if self.steps == 4:
                clock.advance(0.15)  # tick 4 (due 0.4 s, next at 0.5 s) ends at 0.55 s: late
            return super()._step(obs)

    wd = ServiceWatchdog(SdNotifier(environ={"NOTIFY_SOCKET": listener.path}), interval=0.15)
    backend = Slow().open()
    driver = ReplayDriver(toys.frames(8))
    config = LoopConfig.for_model(backend.sidecar, ticks=8, handle_signals=False)
    loop = ControlLoop.for_backend(backend, driver, clock, config)
    loop.on_tick = wd.tick
    loop.run()
    assert loop.summary.deadline_misses == 1 and wd.held_back == 1
    # READY (tick 0), WATCHDOG at ticks 2, 5 (0.55 s, on time for its slot), 7 (0.75 s)
    assert listener.received() == [b"READY=1\nSTATUS=control loop running"] + [b"WATCHDOG=1"] * 3
    assert driver.log[:, 3].tolist() == [0] * 8 + [1]  # every frame answered; the stop at shutdown


def test_robonav_run_notifies_systemd_as_a_notify_unit(listener, tmp_path):
    # The environment systemd gives a Type=notify unit with WatchdogSec=0.4s: the socket and the watchdog time.
    model = toys.write_toy(tmp_path)
    env = {**os.environ, "NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "400000"}
    out = subprocess.run([sys.executable, "-m", "robonav.cli", "run", "--launch", "robot", "--backend", "ort",
                          "--set", f"model={model}", "--set", "telemetry=null", "--ticks", "20", "--json"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    msgs = listener.received()
    assert msgs[0] == b"READY=1\nSTATUS=control loop running"
    assert msgs[-1] == b"STOPPING=1\nSTATUS=control loop stopped"
    watchdogs = msgs[1:-1]
    assert watchdogs and set(watchdogs) == {b"WATCHDOG=1"}  # every 0.1 s while ticks are on time: up to 19
    assert len(watchdogs) <= 19
