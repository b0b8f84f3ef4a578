"""Fault settings for the HIL proxy, and what each fault does to a datagram's bytes.

`FaultConfig` is the ``faults`` section of the HIL launch file (hil.yaml): network faults (loss, delay, jitter,
duplicate, reorder, corrupt, applied in the ``directions`` asked for) and sensor faults (frozen scans, NaN/inf bursts,
NaN odometry, applied to robot->runtime SCAN datagrams only). The functions are the byte-level faults, seeded by the
caller's ``random.Random``; `SensorFaults` decides per frame and per frozen window which of them a SCAN datagram gets.
All of it is built on the wire layout (robonav.runtime.wire.protocol), never on the meaning of its fields. Sensor faults
model a faulty sensor on the robot, in front of its signing: they rewrite the trailer (the CRC, or with the robot's
key the tag, keeping the counter), so the datagram stays valid and the receiver's own checks (finite odometry,
reserved range codes, sequence numbers) must catch them; a frozen window re-sends a frame's bytes unchanged, which
the replay window refuses. `corrupt_bytes` models the network: it leaves the CRC or tag stale, so the wire's CRC or
MAC check must catch it.
"""

from __future__ import annotations

import dataclasses
import hmac
import math
import random
import struct
import zlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from robonav.runtime import wire
from robonav.settings import SettingsError

__all__ = [
    "BURST_CODES", "BURST_LEN", "DIRECTIONS", "ODOM_X_OFFSET", "RECENT_FRAMES", "FaultConfig", "FaultConfigError",
    "SensorFaults", "burst_chunk", "corrupt_bytes", "draw_burst", "nan_odometry", "reseal",
]

DIRECTIONS = ("both", "to_runtime", "to_robot")
"""Values of FaultConfig.directions: which way the network faults apply."""

BURST_LEN = (5, 40)
"""Shortest and longest run of beams one NaN/inf burst covers (clamped to the scan's beam count)."""

BURST_CODES = (wire.RANGE_NAN, wire.RANGE_POS_INF, wire.RANGE_NEG_INF)
"""Reserved range codes a burst writes (one of them, drawn per burst)."""

RECENT_FRAMES = 8
"""Frames whose decisions and chunks SensorFaults remembers (a frame's chunks arrive together)."""

ODOM_X_OFFSET = wire.HEADER_SIZE + wire.CHUNK_FIXED - 5 * 8
"""Byte offset of a SCAN chunk's first odometry double (the fixed fields end with odom x, y, theta, goal x, y)."""

_PROBABILITY_MAX = {"loss": 0.3, "duplicate": 1.0, "reorder": 1.0, "corrupt": 1.0, "nan_burst": 1.0,
                    "nan_odometry": 1.0}
_TIMES = ("delay", "jitter", "freeze_every", "freeze_for", "kill_runtime_after")


class FaultConfigError(SettingsError):
    """A fault setting is out of range, of the wrong type, or unknown."""


@dataclass(frozen=True)
class FaultConfig:
    """Faults the HIL proxy injects (all off by default: a transparent proxy). Times are clock seconds."""

    loss: float = 0.0
    """Probability each datagram is dropped (0 .. 0.3: heavier loss starves the runtime of whole frames)."""
    delay: float = 0.0
    """Clock seconds added to each datagram's delivery (>= 0)."""
    jitter: float = 0.0
    """Uniform extra delay in [0, jitter] clock seconds, drawn per datagram (>= 0; it may reorder datagrams)."""
    duplicate: float = 0.0
    """Probability a datagram is delivered twice (the copy right after the original)."""
    reorder: float = 0.0
    """Probability a datagram is held back and delivered right after the next one in its direction."""
    corrupt: float = 0.0
    """Probability 1 to 3 random bytes of a datagram are flipped (the receiver's CRC check must catch it)."""
    freeze_every: float = 0.0
    """Clock seconds between the starts of frozen-sensor windows, the first at freeze_every (0: never)."""
    freeze_for: float = 0.0
    """Length of each frozen-sensor window (clock s, < freeze_every): robot->runtime SCAN datagrams are replaced by
    the bytes of the last frame seen before the window, as from a sensor driver stuck re-sending its last message."""
    nan_burst: float = 0.0
    """Probability a scan frame gets a run of 5 to 40 consecutive beams set to one reserved code (NaN, +inf or
    -inf), the CRC rewritten; every chunk of the frame alike."""
    nan_odometry: float = 0.0
    """Probability a scan frame's odometry x becomes NaN (CRC rewritten): the receiver must reject it."""
    directions: str = "both"
    """Which way loss, delay, jitter, duplicate, reorder and corrupt apply: both, to_runtime or to_robot."""
    kill_runtime_after: float = 0.0
    """Clock s after the robot's first answered frame at which the HIL runner SIGKILLs and restarts the runtime
    (0: never; the proxy only validates it)."""
    seed: int = 0
    """Seed of every random draw: the same seed and the same traffic give the same faults."""

    def __post_init__(self) -> None:
        for name, top in _PROBABILITY_MAX.items():
            value = self._number(name)
            if not 0.0 <= value <= top:
                raise FaultConfigError(f"FaultConfig.{name} must be a probability in 0 .. {top}, actual: {value!r}. "
                                       f"Set it within the range (0 turns the fault off).")
        for name in _TIMES:
            value = self._number(name)
            if value < 0.0:
                raise FaultConfigError(f"FaultConfig.{name} must be >= 0 clock seconds, actual: {value!r}.")
        if self.freeze_every > 0.0 and not 0.0 < self.freeze_for < self.freeze_every:
            raise FaultConfigError(
                f"FaultConfig.freeze_for must be in (0, freeze_every = {self.freeze_every}) clock seconds when "
                f"freeze_every is set, actual: {self.freeze_for!r}. Windows must not overlap; set freeze_every to "
                "0 to turn frozen-sensor windows off.")
        if self.directions not in DIRECTIONS:
            raise FaultConfigError(f"FaultConfig.directions must be one of {', '.join(DIRECTIONS)}, actual: "
                                   f"{self.directions!r}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise FaultConfigError(f"FaultConfig.seed must be an integer, actual: {self.seed!r}.")

    def _number(self, name: str) -> float:
        """The field as a finite float (ints accepted and stored as floats); refuses bools, strings, NaN, inf."""
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise FaultConfigError(f"FaultConfig.{name} must be a finite number, actual: {value!r}.")
        object.__setattr__(self, name, float(value))
        return float(value)

    @property
    def any(self) -> bool:
        """True when any fault is on (network, sensor, or the runner's runtime kill)."""
        return any(getattr(self, name) > 0.0 for name in (*_PROBABILITY_MAX, "delay", "jitter", "freeze_every",
                                                         "kill_runtime_after"))

    def applies(self, direction: str) -> bool:
        """Whether network faults apply to datagrams going ``direction`` ("to_runtime" or "to_robot")."""
        return self.directions in ("both", direction)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain JSON-able mapping (the keys from_dict takes)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FaultConfig:
        """Build from a mapping (launch file, --faults JSON); unknown keys are refused, listing the known ones."""
        if not isinstance(d, Mapping):
            raise FaultConfigError(f"FaultConfig: expected a mapping of fault settings, actual: {d!r}.")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(str(k) for k in d if k not in known)
        if unknown:
            raise FaultConfigError(f"FaultConfig: unknown key(s) {unknown}; known keys: {', '.join(known)}. "
                                   "Check the spelling in the launch file or --faults.")
        return cls(**d)


def reseal(buf: bytearray, key: bytes | None = None) -> None:
    """Rewrite the trailer of a wire datagram after its header or payload was changed: the CRC32 of an unsigned one,
    the tag of a signed one (under ``key``, the robot->runtime link key; its counter kept; no key: left stale)."""
    if struct.unpack_from("<H", buf, 6)[0] & wire.FLAG_SIGNED:
        if key is not None:
            end = len(buf) - wire.TAG_SIZE
            buf[end:] = hmac.digest(key, memoryview(buf)[:end], "sha256")[:wire.TAG_SIZE]
        return
    end = len(buf) - 4
    struct.pack_into("<I", buf, end, zlib.crc32(memoryview(buf)[:end]))


def corrupt_bytes(data: bytes, rng: random.Random) -> bytes:
    """``data`` with 1 to 3 distinct random bytes XOR-ed with a random non-zero value (the CRC left stale)."""
    if not data:
        return data
    buf = bytearray(data)
    for i in rng.sample(range(len(buf)), min(len(buf), rng.randint(1, 3))):
        buf[i] ^= rng.randint(1, 255)
    return bytes(buf)


def draw_burst(num_beams: int, rng: random.Random) -> tuple[int, int, int]:
    """A burst for a frame of ``num_beams`` beams: (first beam, number of beams, reserved code)."""
    length = min(rng.randint(*BURST_LEN), num_beams)
    return rng.randint(0, num_beams - length), length, rng.choice(BURST_CODES)


def burst_chunk(data: bytes, chunk: wire.ScanChunk, burst: tuple[int, int, int], key: bytes | None = None
                ) -> bytes:
    """The SCAN datagram ``data`` (decoded as ``chunk``) with the frame-level ``burst`` written into the beams this
    chunk holds, CRC rewritten; unchanged if the burst misses the chunk."""
    start, length, code = burst
    lo = chunk.chunk_index * chunk.chunk_beams
    a, b = max(start, lo), min(start + length, lo + len(chunk.codes))
    if a >= b:
        return data
    buf = bytearray(data)
    codes = np.frombuffer(buf, dtype="<u2", count=len(chunk.codes), offset=wire.HEADER_SIZE + wire.CHUNK_FIXED)
    codes[a - lo:b - lo] = code
    reseal(buf, key)
    return bytes(buf)


def nan_odometry(data: bytes, key: bytes | None = None) -> bytes:
    """The SCAN datagram ``data`` with its odometry x set to NaN, trailer rewritten."""
    buf = bytearray(data)
    struct.pack_into("<d", buf, ODOM_X_OFFSET, math.nan)
    reseal(buf, key)
    return bytes(buf)


class SensorFaults:
    """Frozen windows, NaN/inf bursts and NaN odometry on robot->runtime SCAN datagrams (other bytes pass as they
    are). ``counts`` given to apply() gains frozen (datagrams replaced), nan_bursts and nan_odometry (frames)."""

    def __init__(self, config: FaultConfig, start: float, key: bytes | None = None) -> None:
        self.config = config
        self.key = None if key is None else wire.link_key(key, wire.ROBOT_TO_RUNTIME)
        self.start = start
        self._rng_burst = random.Random(f"{config.seed}:to_runtime:nan_burst")
        self._rng_odom = random.Random(f"{config.seed}:to_runtime:nan_odometry")
        self._decisions: OrderedDict[tuple, tuple[tuple[int, int, int] | None, bool]] = OrderedDict()
        self._recent: OrderedDict[tuple, tuple[int, dict[int, bytes]]] = OrderedDict()  # frame -> count, chunks
        self._window: int | None = None
        self._frozen: list[bytes] = []

    def apply(self, data: bytes, now: float, counts: dict[str, int]) -> bytes:
        """The datagram to forward in place of ``data``."""
        try:
            chunk = wire.decode(data, trust_signed=True)
        except wire.WireError:
            return data
        if not isinstance(chunk, wire.ScanChunk):
            return data
        window = self._window_at(now)
        if window is not None and window != self._window:
            self._frozen = self._snapshot()
        self._window = window
        if window is not None and self._frozen:
            counts["frozen"] += 1
            return self._frozen[chunk.chunk_index % len(self._frozen)]
        key = (chunk.seq, chunk.episode_id, chunk.stamp)
        burst, odom = self._decide(key, chunk, counts)
        if burst is not None:
            data = burst_chunk(data, chunk, burst, self.key)
        if odom:
            data = nan_odometry(data, self.key)
        if window is None:
            count, chunks = self._recent.pop(key, (chunk.chunk_count, {}))
            chunks[chunk.chunk_index] = data
            self._recent[key] = (count, chunks)
            while len(self._recent) > RECENT_FRAMES:
                self._recent.popitem(last=False)
        return data

    def _window_at(self, now: float) -> int | None:
        """Index k >= 1 of the frozen window holding ``now`` ([k * every, k * every + for) after the start)."""
        every = self.config.freeze_every
        if every <= 0.0:
            return None
        t = now - self.start
        k = math.floor(t / every)
        return k if k >= 1 and t - k * every < self.config.freeze_for else None

    def _snapshot(self) -> list[bytes]:
        """Chunks of the newest complete frame seen (else of the newest partial one), in chunk order."""
        frames = list(reversed(self._recent.values()))
        for count, chunks in frames:
            if len(chunks) == count:
                return [chunks[i] for i in sorted(chunks)]
        return [frames[0][1][i] for i in sorted(frames[0][1])] if frames else []

    def _decide(self, key: tuple, chunk: wire.ScanChunk, counts: dict[str, int]
                ) -> tuple[tuple[int, int, int] | None, bool]:
        """This frame's burst and NaN-odometry decision, drawn at its first chunk."""
        decision = self._decisions.get(key)
        if decision is None:
            cfg = self.config
            hit = self._rng_burst.random() < cfg.nan_burst
            burst = draw_burst(chunk.num_beams, self._rng_burst) if hit else None
            decision = self._decisions[key] = (burst, self._rng_odom.random() < cfg.nan_odometry)
            counts["nan_bursts"] += burst is not None
            counts["nan_odometry"] += decision[1]
            while len(self._decisions) > RECENT_FRAMES:
                self._decisions.popitem(last=False)
        return decision
