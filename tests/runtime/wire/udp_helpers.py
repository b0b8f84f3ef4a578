"""Shared by the UDP wire tests (imported by path, like tests/runtime/loop_toys.py)."""

from __future__ import annotations

import time
from collections.abc import Callable

from robonav.runtime.wire.udp_driver import UdpDriver


def drain(driver: UdpDriver, until: Callable[[UdpDriver], bool], timeout: float = 3.0):
    """Poll latest_frame() until ``until(driver)`` holds or ``timeout`` s pass (loopback datagrams arrive within
    microseconds); the last frame polled."""
    end = time.monotonic() + timeout
    got = driver.latest_frame()
    while not until(driver) and time.monotonic() < end:
        time.sleep(0.001)
        got = driver.latest_frame()
    return got
