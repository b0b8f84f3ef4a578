"""The robot wire, version 2: fixed little-endian UDP messages between a robot (or the simulator playing one) and
the runtime, authenticated with a per-robot key.

Every datagram is ``header (32 bytes) | payload (payload_len bytes) | trailer``. Header flags bit 0 (SIGNED) says
which trailer follows:

    signed     counter u64 | tag 16 bytes = HMAC-SHA256(link key, header | payload | counter)[:16]
    unsigned   crc32 u32 (zlib's CRC-32, IEEE 802.3, over header and payload): development on loopback only

The link key is HMAC-SHA256(robot key, "robonav wire v2 robot->runtime" or "... runtime->robot"): one key per
robot, one derived key per direction, so a datagram reflected back to its sender fails its MAC. The tag is
truncated to 128 bits: NIST SP 800-107 allows truncation down to that floor, a forger has one online guess per
datagram (2**-128 each, at datagram rates forever out of reach), and the 16 bytes saved stay in the 1,472-byte
datagram budget (680 beams per SCAN chunk). The counter is the sender's: strictly increasing over every signed
datagram it sends, started at its wall clock in microseconds since the Unix epoch (``max(counter + 1, now_us)``),
so it keeps increasing across a restart of the sender; a receiver remembers the 256 highest counters it accepted
(`ReplayWindow`, RFC 4303's anti-replay window: reordered datagrams pass, each counter once), and
refuses counters more than ``FRESHNESS_S`` away from its own wall clock, so a capture replayed after the receiver
restarted is refused as well (as MAVLink 2 signing refuses first-seen streams far behind its clock). Robot and
runtime clocks must agree within FRESHNESS_S (chrony/NTP; firmware without a clock persists its counter, as
MAVLink 2 does). Once a receiver has a key it refuses unsigned, badly signed and replayed datagrams, each counted
under its reason, before anything else looks at them: a forged HELLO resets nothing.

deploy/wire/robonav_wire.h holds the same layouts as packed C structs, and tests/runtime/wire/golden/ one byte
vector per message, signed with a published test key, so firmware can be checked against this module.

    header   magic "RNAV", version u8 (2), type u8, flags u16 (bit 0: SIGNED), seq u32, episode_id u32,
             stamp f64 (sender clock, s), payload_len u32, reserved u32 (0)
    HELLO        robot<->runtime at connect: boot_id u32, role u8, 3 x u8 pad, watchdog_s f64 (runtime: the time
                 without a command after which the robot must stop; the robot clamps it to its own maximum,
                 `clamp_watchdog`)
    DESCRIPTION  robot->runtime at connect, on change and about once a second: spec_id u32, num_beams u32, flags u32
                 (bit 0: per-beam angles follow), reserved u32, angle_min, angle_increment, range_min, range_max f64;
                 then num_beams x f32 angles when flag bit 0 is set (at most MAX_DESCRIPTION_ANGLES)
    SCAN         robot->runtime, one chunk of a sensor frame: spec_id u32, num_beams u32, chunk_index u16,
                 chunk_count u16, chunk_beams u16, reserved u16, odometry pose x, y, theta f64, goal x, y f64; then
                 the chunk's ranges as u16 millimetres. Chunk i holds beams [i*chunk_beams, min((i+1)*chunk_beams, n));
                 chunk_count = ceil(n / chunk_beams); every chunk repeats the same odometry, goal, stamp, episode.
    COMMAND      runtime->robot: answers_seq u32 (the seq of the frame answered), flags u32 (bit 0: stop), v, omega f64

Sequence numbers: each sender numbers each message type on its own u32 counter from 0 at boot (the chunks of one
frame share the frame's seq, which becomes ``SensorFrame.seq``); receivers compare them modulo 2**32 (RFC 1982) and
drop old or duplicate ones. A HELLO with a new boot_id means the peer restarted: the receiver starts its sequence
counts over (never its replay window). Odometry travels as the robot's pose in the odometry frame (origin: its pose
at the episode's start), as nav_msgs/Odometry does, not as per-frame deltas: a lost or skipped frame then loses no
motion (the receiving driver turns poses into the deltas a SensorFrame carries, robonav.sensors.odometry.PoseDeltas).
Ranges (ROS REP 117): ``RANGE_POS_INF`` = no return within range, ``RANGE_NAN`` = invalid reading,
``RANGE_NEG_INF`` = too close; finite ranges are rounded to whole millimetres, at most ``RANGE_MAX_MM``; a finite
range >= 65.5325 m (beyond any describable range_max) goes out as +inf, a negative one as NaN.
"""

from __future__ import annotations

import heapq
import hmac
import math
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from robonav.errors import RobonavError
from robonav.sensors.frame import ScanSpec, ScanSpecError, SensorFrame

__all__ = [
    "CHUNK_FIXED", "COMMAND_SIZE", "CRC_SIZE", "DATAGRAM_BUDGET", "DESCRIPTION_FIXED", "FLAG_SIGNED", "FRESHNESS_S",
    "HEADER_SIZE", "HELLO_SIZE", "MAGIC", "MAX_CHUNK_BEAMS", "MAX_DESCRIPTION_ANGLES", "RANGE_MAX_MM", "RANGE_NAN",
    "RANGE_NEG_INF", "RANGE_POS_INF", "REASONS", "RESYNC_AFTER", "ROBOT_TO_RUNTIME", "ROLE_ROBOT", "ROLE_RUNTIME",
    "RUNTIME_TO_ROBOT", "SIG_SIZE", "TAG_SIZE", "U32", "VERSION", "WATCHDOG_MAX_S", "Command", "Description", "Hello",
    "MsgType", "ReplayWindow", "ScanChunk", "ScanFrame", "Signer", "WireChunkError", "WireCrcError",
    "WireEncodeError", "WireError", "WireIncompleteError", "WireLimitError", "WireMacError", "WireMagicError",
    "WireNoKeyError", "WireNonFiniteError", "WireRateError", "WireReplayError", "WireSequenceError", "WireSizeError",
    "WireTypeError", "WireUnknownDescriptionError", "WireUnsignedError", "WireVersionError", "clamp_watchdog",
    "codes_to_ranges", "decode", "decode_counted", "encode_command", "encode_command_into", "encode_description",
    "encode_frame", "encode_hello", "link_key", "now_us", "ranges_to_codes", "seq_newer",
]

MAGIC = b"RNAV"
VERSION = 2
DATAGRAM_BUDGET = 1472
"""Largest datagram sent (UDP payload of a 1,500-byte Ethernet MTU): no IP fragmentation."""

HEADER = struct.Struct("<4sBBHIIdII")
HEADER_SIZE = HEADER.size  # 32
CRC_SIZE = 4
"""Trailer of an unsigned datagram: the CRC32."""
TAG_SIZE = 16
"""Bytes of HMAC-SHA256 kept (the module docstring says why 128 bits)."""
SIG_SIZE = 8 + TAG_SIZE
"""Trailer of a signed datagram: counter u64 and tag."""
FLAG_SIGNED = 1
"""Header flags bit 0: the datagram ends in counter and tag, not a CRC."""
HELLO_PAYLOAD = struct.Struct("<IB3xd")  # 16
DESCRIPTION_PAYLOAD = struct.Struct("<IIIIdddd")  # 48, then optional f32 angles
CHUNK_PAYLOAD = struct.Struct("<IIHHHH5d")  # 56, then u16 ranges
COMMAND_PAYLOAD = struct.Struct("<IIdd")  # 24
COUNTER = struct.Struct("<Q")
HELLO_SIZE = HEADER_SIZE + HELLO_PAYLOAD.size + SIG_SIZE  # 72 signed (56 unsigned)
COMMAND_SIZE = HEADER_SIZE + COMMAND_PAYLOAD.size + SIG_SIZE  # 80 signed (60 unsigned)
DESCRIPTION_FIXED = DESCRIPTION_PAYLOAD.size
CHUNK_FIXED = CHUNK_PAYLOAD.size
MAX_CHUNK_BEAMS = (DATAGRAM_BUDGET - HEADER_SIZE - CHUNK_FIXED - SIG_SIZE) // 2  # 680
MAX_DESCRIPTION_ANGLES = (DATAGRAM_BUDGET - HEADER_SIZE - DESCRIPTION_FIXED - SIG_SIZE) // 4  # 342
WATCHDOG_MAX_S = 1.0
"""Longest watchdog a runtime may ask of a robot in its HELLO (encode_hello refuses more); a robot clamps what it
is sent to its own maximum anyway (`clamp_watchdog`)."""
FRESHNESS_S = 10.0
"""Seconds a signed datagram's counter may lie from the receiver's wall clock (either way) before it is refused as
a replay: what keeps old captures out of a receiver that restarted (and so forgot its replay window)."""
ROBOT_TO_RUNTIME = b"robot->runtime"
RUNTIME_TO_ROBOT = b"runtime->robot"

RANGE_POS_INF = 0xFFFF
RANGE_NAN = 0xFFFE
RANGE_NEG_INF = 0xFFFD
RANGE_MAX_MM = 0xFFFC
"""Largest finite range code: 65,532 mm. A description's range_max must not exceed 65.532 m."""
DESC_PER_BEAM_ANGLES = 1
CMD_STOP = 1
ROLE_ROBOT, ROLE_RUNTIME = 1, 2
U32 = 1 << 32
RESYNC_AFTER = 16
"""Old frames in a row after which a receiver concludes the robot restarted without a HELLO and follows its new
sequence counter (each of the first RESYNC_AFTER - 1 is dropped and counted)."""


class MsgType:
    """Message type codes (header byte 5)."""

    HELLO = 1
    DESCRIPTION = 2
    SCAN = 3
    COMMAND = 4


_TYPE_NAMES = {1: "HELLO", 2: "DESCRIPTION", 3: "SCAN", 4: "COMMAND"}


class WireError(RobonavError, ValueError):
    """A datagram was rejected (or a message cannot be encoded); ``reason`` keys the receiver's counters."""

    reason = "wire"


class WireSizeError(WireError):
    """The datagram's length does not fit the header's payload_len or the message type's layout."""

    reason = "size"


class WireMagicError(WireError):
    """The datagram does not start with the magic b"RNAV": not a robonav wire message."""

    reason = "magic"


class WireVersionError(WireError):
    """The sender speaks another version of the wire."""

    reason = "version"


class WireTypeError(WireError):
    """The header names a message type this version does not know."""

    reason = "type"


class WireCrcError(WireError):
    """The CRC32 over header and payload does not match the trailer: bytes were corrupted."""

    reason = "crc"


class WireSequenceError(WireError):
    """An old or duplicate sequence number (or a chunk already received)."""

    reason = "sequence"


class WireIncompleteError(WireError):
    """A frame's chunk set was abandoned with chunks missing (a newer frame completed, or too many pending)."""

    reason = "incomplete"


class WireNonFiniteError(WireError):
    """NaN or infinity in a field where it is not allowed (odometry, goal, stamp, command, description)."""

    reason = "non_finite"


class WireUnknownDescriptionError(WireError):
    """A scan names a description id no DESCRIPTION message has announced."""

    reason = "unknown_description"


class WireChunkError(WireError):
    """A scan chunk's index, count or beam fields are inconsistent (with each other, the description or the
    other chunks of its frame)."""

    reason = "chunk"


class WireEncodeError(WireError):
    """A message cannot be expressed on the wire (a value out of its field's range)."""

    reason = "encode"


class WireUnsignedError(WireError):
    """An unsigned datagram reached a receiver that has a key: refused (signing is on)."""

    reason = "unsigned"


class WireNoKeyError(WireError):
    """A signed datagram reached a receiver without a key: it cannot be verified, so it is refused."""

    reason = "no_key"


class WireMacError(WireError):
    """The datagram's tag is not the HMAC of its bytes under this link's key: forged, corrupted or another key."""

    reason = "mac"


class WireReplayError(WireError):
    """A correctly signed datagram whose counter was seen already, is below the replay window, or lies more than
    FRESHNESS_S from this side's clock: a replayed capture (or a peer whose clock is off)."""

    reason = "replay"


class WireLimitError(WireError):
    """A field beyond what this receiver is configured to hold (beam count, chunk count): refused, nothing held."""

    reason = "limit"


class WireRateError(WireError):
    """A peer sent datagrams faster than its token bucket allows: dropped before any other check."""

    reason = "rate"


REASONS = ("size", "magic", "version", "type", "crc", "sequence", "incomplete", "non_finite",
           "unknown_description", "chunk", "unsigned", "no_key", "mac", "replay", "limit", "rate")
"""Rejection reasons a receiver counts (the ``reason`` of each WireError subclass)."""


def now_us() -> int:
    """Wall clock in whole microseconds since the Unix epoch: what counters start from and are checked against."""
    return time.time_ns() // 1000


def link_key(key: bytes, direction: bytes) -> bytes:
    """The key one direction is signed with: HMAC-SHA256(key, "robonav wire v2 " + direction)."""
    return hmac.digest(key, b"robonav wire v2 " + direction, "sha256")


class Signer:
    """Signs one direction's datagrams: its link key and its counter (module docstring)."""

    __slots__ = ("clock", "counter", "key")

    def __init__(self, key: bytes, direction: bytes, counter: int | None = None,
                 clock: Callable[[], int] = now_us) -> None:
        """``counter``: the first counter (None: the clock's now); ``clock``: microseconds the counter never
        falls behind (a constant makes golden vectors)."""
        self.key = link_key(key, direction)
        self.clock = clock
        self.counter = (clock() if counter is None else counter) - 1
        """The last counter used (the next is at least one more, and at least the clock)."""

    def next_counter(self) -> int:
        self.counter = max(self.counter + 1, self.clock())
        return self.counter


class ReplayWindow:
    """Anti-replay state of one direction: the REPLAY_WINDOW highest counters accepted (a min-heap and a set) and
    the highest counter ever forgotten (``floor``). A counter at or below the floor, or among those remembered, is
    refused; so is one more than the freshness bound from this side's wall clock (None: no bound, for replaying
    recordings). It is RFC 4303's sliding window kept as a set, because counters are microsecond times, not
    consecutive numbers: datagrams reordered within the last REPLAY_WINDOW pass, each counter once."""

    def __init__(self, freshness_s: float | None = FRESHNESS_S, size: int = 256) -> None:
        self.size = size
        self.floor = -1
        self._heap: list[int] = []
        self._seen: set[int] = set()
        self.freshness_us = None if freshness_s is None else int(freshness_s * 1e6)

    def check(self, counter: int, where: str) -> None:
        """Accept ``counter`` (and remember it) or raise WireReplayError."""
        if self.freshness_us is not None:
            off = counter - now_us()
            if abs(off) > self.freshness_us:
                raise WireReplayError(
                    f"{where}: counter {counter} is {off / 1e6:+.3f} s from this side's clock, beyond "
                    f"{self.freshness_us / 1e6:g} s: a replayed capture, or the peer's clock is off (sync both "
                    "clocks, e.g. chrony).")
        if counter <= self.floor or counter in self._seen:
            raise WireReplayError(f"{where}: counter {counter} was accepted already or is older than the "
                                  f"{self.size} newest accepted: a replayed datagram, dropped.")
        heapq.heappush(self._heap, counter)
        self._seen.add(counter)
        if len(self._heap) > self.size:
            self.floor = heapq.heappop(self._heap)
            self._seen.discard(self.floor)


def clamp_watchdog(requested: float, maximum: float) -> float:
    """The watchdog a robot applies when a HELLO asks for ``requested`` s: at most its own ``maximum``; 0, negative,
    NaN and infinity mean "use my maximum" (a HELLO can shorten the watchdog, never lengthen or disable it)."""
    if not math.isfinite(requested) or requested <= 0.0:
        return maximum
    return min(requested, maximum)


@dataclass(frozen=True)
class Hello:
    """Connection message: who the sender is and, from the runtime, the watchdog the robot must apply."""

    boot_id: int
    """Random per process start; a new one tells the receiver the sender restarted (sequence counts start over)."""
    role: int = ROLE_RUNTIME
    """ROLE_ROBOT (1) or ROLE_RUNTIME (2)."""
    watchdog_s: float = 0.0
    """Seconds without a command after which the robot stops (0 from a robot)."""
    seq: int = 0
    episode_id: int = 0
    stamp: float = 0.0


@dataclass(frozen=True)
class Description:
    """The scanner description a scan names by ``spec.spec_id``."""

    spec: ScanSpec
    seq: int = 0
    episode_id: int = 0
    stamp: float = 0.0


@dataclass(frozen=True)
class ScanChunk:
    """One decoded SCAN datagram: a slice of a frame's range codes plus the frame's odometry and goal."""

    seq: int
    episode_id: int
    stamp: float
    spec_id: int
    num_beams: int
    chunk_index: int
    chunk_count: int
    chunk_beams: int
    odom_pose: tuple[float, float, float]
    goal: tuple[float, float]
    codes: np.ndarray
    """uint16 range codes of beams [chunk_index * chunk_beams, ...) (a copy, owned by the chunk)."""


@dataclass(frozen=True)
class ScanFrame:
    """A complete sensor frame as the wire carries it: a SensorFrame with the odometry pose in place of the delta
    (the module docstring says why); `to_sensor_frame` makes the SensorFrame once the delta is known."""

    ranges: np.ndarray
    """float32 [num_beams] ranges in metres, REP 117 codes included."""
    scan: ScanSpec
    odom_pose: np.ndarray
    """float64 [3]: x, y, theta of the robot in the odometry frame (origin: its pose at the episode's start)."""
    goal: np.ndarray
    """float64 [2]: the goal in the odometry frame."""
    episode_id: int = 0
    stamp: float = 0.0
    seq: int = 0

    @classmethod
    def from_sensor_frame(cls, frame: SensorFrame, odom_pose: np.ndarray) -> ScanFrame:
        """The wire form of ``frame`` for a robot whose odometry pose is ``odom_pose``."""
        return cls(frame.ranges, frame.scan, np.asarray(odom_pose, dtype=np.float64), frame.goal, frame.episode_id,
                   frame.stamp, frame.seq)

    def to_sensor_frame(self, odom_delta: np.ndarray) -> SensorFrame:
        """The SensorFrame the loop takes, with the odometry delta since the frame it took before."""
        return SensorFrame(self.ranges, self.scan, odom_delta, self.goal, self.episode_id, self.stamp, self.seq)


@dataclass(frozen=True)
class Command:
    """A velocity command answering the frame numbered ``answers_seq`` (stop: v = omega = 0, flag set)."""

    v: float
    omega: float
    answers_seq: int
    stop: bool = False
    seq: int = 0
    episode_id: int = 0
    stamp: float = 0.0


def ranges_to_codes(ranges: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """float ranges (m, REP 117 codes included) -> uint16 millimetres with the reserved codes (module docstring)."""
    r = np.asarray(ranges, dtype=np.float64)
    if out is None:
        out = np.empty(r.shape, dtype=np.uint16)
    with np.errstate(invalid="ignore"):
        mm = np.rint(np.where(np.isfinite(r), r, 0.0) * 1000.0)
        np.copyto(out, np.clip(mm, 0, RANGE_MAX_MM), casting="unsafe")
        out[(r >= (RANGE_MAX_MM + 0.5) / 1000.0)] = RANGE_POS_INF  # +inf and beyond the wire's reach
        out[np.isnan(r) | (r < 0.0) & np.isfinite(r)] = RANGE_NAN
        out[r == -np.inf] = RANGE_NEG_INF
    return out


def codes_to_ranges(codes: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """uint16 wire codes -> float32 ranges in metres (reserved codes -> +inf, NaN, -inf)."""
    c = np.asarray(codes, dtype=np.uint16)
    if out is None:
        out = np.empty(c.shape, dtype=np.float32)
    np.divide(c, 1000.0, out=out, casting="unsafe")  # in float64, then rounded once to float32
    out[c == RANGE_POS_INF] = np.inf
    out[c == RANGE_NAN] = np.nan
    out[c == RANGE_NEG_INF] = -np.inf
    return out


def _check_u32(value: int, name: str, where: str) -> int:
    value = int(value)
    if not 0 <= value < U32:
        raise WireEncodeError(f"{where}: {name} must fit an unsigned 32-bit field (0 .. {U32 - 1}), "
                              f"actual: {value}. Wrap counters modulo 2**32.")
    return value


def _check_finite(values: tuple[float, ...], names: str, where: str) -> None:
    for name, x in zip(names.split(), values):
        if not math.isfinite(x):
            raise WireNonFiniteError(f"{where}: {name} must be finite, actual: {x!r}. Drop or repair the value "
                                     "at its source; only scan ranges may carry NaN or infinity (as codes).")


def trailer_size(signer: Signer | None) -> int:
    """Bytes after the payload: counter and tag when signing, else the CRC."""
    return CRC_SIZE if signer is None else SIG_SIZE


def _seal(buf: bytearray | memoryview, msg_type: int, seq: int, episode_id: int, stamp: float,
          payload_len: int, signer: Signer | None) -> int:
    """Write the header into buf[:32] and the trailer after the payload (the payload must already be in place);
    returns the datagram's length."""
    where = f"encode {_TYPE_NAMES[msg_type]}"
    _check_finite((stamp,), "stamp", where)
    HEADER.pack_into(buf, 0, MAGIC, VERSION, msg_type, 0 if signer is None else FLAG_SIGNED,
                     _check_u32(seq, "seq", where), _check_u32(episode_id, "episode_id", where), stamp, payload_len, 0)
    end = HEADER_SIZE + payload_len
    if signer is None:
        struct.pack_into("<I", buf, end, zlib.crc32(memoryview(buf)[:end]))
        return end + CRC_SIZE
    COUNTER.pack_into(buf, end, signer.next_counter())
    end += 8
    buf[end:end + TAG_SIZE] = hmac.digest(signer.key, memoryview(buf)[:end], "sha256")[:TAG_SIZE]
    return end + TAG_SIZE


def encode_hello(msg: Hello, signer: Signer | None = None) -> bytes:
    """HELLO datagram (72 bytes signed, 52 unsigned); refuses a watchdog outside 0 .. WATCHDOG_MAX_S."""
    _check_finite((msg.watchdog_s,), "watchdog_s", "encode HELLO")
    if not 0.0 <= msg.watchdog_s <= WATCHDOG_MAX_S:
        raise WireEncodeError(f"encode HELLO: watchdog_s must be in 0 .. {WATCHDOG_MAX_S} s, actual: "
                              f"{msg.watchdog_s!r}. A robot stops after its watchdog; ask for a shorter one.")
    buf = bytearray(HEADER_SIZE + HELLO_PAYLOAD.size + trailer_size(signer))
    HELLO_PAYLOAD.pack_into(buf, HEADER_SIZE, _check_u32(msg.boot_id, "boot_id", "encode HELLO"), msg.role,
                            msg.watchdog_s)
    _seal(buf, MsgType.HELLO, msg.seq, msg.episode_id, msg.stamp, HELLO_PAYLOAD.size, signer)
    return bytes(buf)


def encode_description(msg: Description, signer: Signer | None = None) -> bytes:
    """DESCRIPTION datagram; refuses a range_max the millimetre codes cannot carry or too many per-beam angles."""
    s, where = msg.spec, "encode DESCRIPTION"
    _check_finite((s.angle_min, s.angle_increment, s.range_min, s.range_max),
                  "angle_min angle_increment range_min range_max", where)
    if s.range_max > RANGE_MAX_MM / 1000.0:
        raise WireEncodeError(f"{where}: range_max must be <= {RANGE_MAX_MM / 1000.0} m (uint16 millimetres), "
                              f"actual: {s.range_max} m. Report farther returns as +inf.")
    n_angles = 0 if s.angles is None else s.num_beams
    if n_angles > MAX_DESCRIPTION_ANGLES:
        raise WireEncodeError(f"{where}: at most {MAX_DESCRIPTION_ANGLES} per-beam angles fit one datagram, "
                              f"actual: {n_angles}. Describe the scanner by angle_min and angle_increment.")
    payload_len = DESCRIPTION_FIXED + 4 * n_angles
    buf = bytearray(HEADER_SIZE + payload_len + trailer_size(signer))
    DESCRIPTION_PAYLOAD.pack_into(buf, HEADER_SIZE, _check_u32(s.spec_id, "spec_id", where), s.num_beams,
                                  DESC_PER_BEAM_ANGLES if n_angles else 0, 0, s.angle_min, s.angle_increment,
                                  s.range_min, s.range_max)
    if n_angles:
        angles = np.asarray(s.angles, dtype="<f4")
        _check_finite(tuple(float(a) for a in angles), " ".join(f"angles[{i}]" for i in range(n_angles)), where)
        buf[HEADER_SIZE + DESCRIPTION_FIXED:HEADER_SIZE + payload_len] = angles.tobytes()
    _seal(buf, MsgType.DESCRIPTION, msg.seq, msg.episode_id, msg.stamp, payload_len, signer)
    return bytes(buf)


def encode_frame(frame: ScanFrame, chunk_beams: int = MAX_CHUNK_BEAMS, signer: Signer | None = None
                 ) -> list[bytes]:
    """A ScanFrame as its SCAN datagrams (one per ``chunk_beams`` beams; the frame's seq on every chunk)."""
    where = "encode SCAN"
    if np.shape(frame.ranges) != (frame.scan.num_beams,):
        raise WireEncodeError(f"{where}: ranges have shape {np.shape(frame.ranges)}, expected "
                              f"({frame.scan.num_beams},) from the ScanSpec (spec_id {frame.scan.spec_id}).")
    if not 1 <= chunk_beams <= MAX_CHUNK_BEAMS:
        raise WireEncodeError(f"{where}: chunk_beams must be in 1 .. {MAX_CHUNK_BEAMS} (the datagram budget of "
                              f"{DATAGRAM_BUDGET} bytes), actual: {chunk_beams}.")
    odom = tuple(float(x) for x in np.asarray(frame.odom_pose, dtype=np.float64).reshape(3))
    goal = tuple(float(x) for x in np.asarray(frame.goal, dtype=np.float64).reshape(2))
    _check_finite(odom + goal, "odom_x odom_y odom_theta goal_x goal_y", where)
    codes = ranges_to_codes(frame.ranges)
    n = frame.scan.num_beams
    count = -(-n // chunk_beams)
    if count > 0xFFFF:
        raise WireEncodeError(f"{where}: {n} beams need {count} chunks, more than 65535; raise chunk_beams.")
    out = []
    for i in range(count):
        part = codes[i * chunk_beams:(i + 1) * chunk_beams]
        payload_len = CHUNK_FIXED + 2 * len(part)
        buf = bytearray(HEADER_SIZE + payload_len + trailer_size(signer))
        CHUNK_PAYLOAD.pack_into(buf, HEADER_SIZE, _check_u32(frame.scan.spec_id, "spec_id", where), n, i, count,
                                chunk_beams, 0, *odom, *goal)
        buf[HEADER_SIZE + CHUNK_FIXED:HEADER_SIZE + payload_len] = part.astype("<u2").tobytes()
        _seal(buf, MsgType.SCAN, frame.seq, frame.episode_id, frame.stamp, payload_len, signer)
        out.append(bytes(buf))
    return out


def encode_command_into(buf: bytearray, v: float, omega: float, answers_seq: int, stop: bool = False,
                        seq: int = 0, episode_id: int = 0, stamp: float = 0.0, signer: Signer | None = None
                        ) -> memoryview:
    """Write a COMMAND into a preallocated ``buf`` (>= COMMAND_SIZE bytes): the loop's hot path, no new buffer."""
    _check_finite((v, omega), "v omega", "encode COMMAND")
    COMMAND_PAYLOAD.pack_into(buf, HEADER_SIZE, _check_u32(answers_seq, "answers_seq", "encode COMMAND"),
                              CMD_STOP if stop else 0, v, omega)
    n = _seal(buf, MsgType.COMMAND, seq, episode_id, stamp, COMMAND_PAYLOAD.size, signer)
    return memoryview(buf)[:n]


def encode_command(msg: Command, signer: Signer | None = None) -> bytes:
    """COMMAND datagram (80 bytes signed, 60 unsigned)."""
    buf = bytearray(COMMAND_SIZE)
    return bytes(encode_command_into(buf, msg.v, msg.omega, msg.answers_seq, msg.stop, msg.seq, msg.episode_id,
                                     msg.stamp, signer))


def decode(data: bytes | bytearray | memoryview, key: bytes | None = None, trust_signed: bool = False
           ) -> Hello | Description | ScanChunk | Command:
    """Check and decode one datagram (stateless: replay, sequence and description checks are the Receiver's);
    ``key`` is the link key of the direction it travels (`link_key`), ``trust_signed`` decodes a signed datagram
    without a key, unverified (a recording that is trusted, the HIL proxy). See `decode_counted`."""
    return decode_counted(data, key, trust_signed)[0]


def decode_counted(data: bytes | bytearray | memoryview, key: bytes | None = None, trust_signed: bool = False
                   ) -> tuple[Hello | Description | ScanChunk | Command, int | None]:
    """The decoded message and its counter (None: unsigned).

    Raises the WireError subclass naming the first thing wrong, checked in the order size, magic, version,
    flags, length, then signature (with a key: unsigned refused, tag checked; without: signed refused unless
    trusted, CRC checked), type, layout, finiteness: nothing of an unauthenticated datagram is parsed.
    """
    mv = memoryview(data).cast("B")
    n = len(mv)
    if n < HEADER_SIZE + CRC_SIZE:
        raise WireSizeError(f"datagram of {n} bytes is shorter than header + CRC ({HEADER_SIZE + CRC_SIZE} bytes); "
                            "the sender truncated it or it is not a robonav wire message.")
    magic, version, msg_type, flags, seq, episode_id, stamp, payload_len, _res = HEADER.unpack_from(mv, 0)
    if magic != MAGIC:
        raise WireMagicError(f"datagram starts with {bytes(magic)!r}, expected magic {MAGIC!r}: not a robonav wire "
                             "message (check the port the sender writes to).")
    if version != VERSION:
        raise WireVersionError(f"wire version {version}, expected {VERSION}: update the sender or the runtime so "
                               "both speak the same version.")
    if flags & ~FLAG_SIGNED:
        raise WireTypeError(f"header flags {flags:#06x} set bits this version does not know (only bit 0, SIGNED).")
    signed = bool(flags & FLAG_SIGNED)
    trailer = SIG_SIZE if signed else CRC_SIZE
    if payload_len != n - HEADER_SIZE - trailer:
        raise WireSizeError(f"header payload_len {payload_len} does not match the datagram ({n} bytes => "
                            f"{n - HEADER_SIZE - trailer} payload bytes {'signed' if signed else 'unsigned'}); "
                            "the datagram was truncated or padded.")
    end = HEADER_SIZE + payload_len
    counter = None
    if signed:
        counter = COUNTER.unpack_from(mv, end)[0]
        if key is not None:
            tag = hmac.digest(key, mv[:end + 8], "sha256")[:TAG_SIZE]
            if not hmac.compare_digest(tag, mv[end + 8:end + SIG_SIZE]):
                raise WireMacError(f"{_TYPE_NAMES.get(msg_type, msg_type)} seq {seq}: the tag does not match the "
                                   "datagram under this link's key: forged, corrupted on the way, or signed with "
                                   "another robot's key; dropped.")
        elif not trust_signed:
            raise WireNoKeyError("a signed datagram reached a receiver without a wire key: it cannot be verified. "
                                 "Give this side the robot's key (udp.key_file or ROBONAV_WIRE_KEY_FILE).")
    else:
        if key is not None:
            raise WireUnsignedError(f"{_TYPE_NAMES.get(msg_type, msg_type)} seq {seq}: unsigned datagram refused, "
                                    "this side has a wire key; the sender must sign with the same key.")
        crc = struct.unpack_from("<I", mv, end)[0]
        actual = zlib.crc32(mv[:end])
        if crc != actual:
            raise WireCrcError(f"CRC32 {actual:#010x} over {end} bytes does not match the trailer {crc:#010x}: "
                               "the datagram was corrupted on the way.")
    name = _TYPE_NAMES.get(msg_type)
    if name is None:
        raise WireTypeError(f"message type {msg_type} is unknown, expected one of "
                            f"{', '.join(f'{k} ({v})' for k, v in _TYPE_NAMES.items())}.")
    where = f"{name} seq {seq}"
    _check_finite((stamp,), "stamp", where)

    def want(size: int, what: str) -> None:
        if payload_len != size:
            raise WireSizeError(f"{where}: payload of {payload_len} bytes, expected {size} ({what}).")

    if msg_type == MsgType.HELLO:
        want(HELLO_PAYLOAD.size, "the HELLO layout")
        boot_id, role, watchdog_s = HELLO_PAYLOAD.unpack_from(mv, HEADER_SIZE)
        _check_finite((watchdog_s,), "watchdog_s", where)
        return Hello(boot_id, role, watchdog_s, seq, episode_id, stamp), counter
    if msg_type == MsgType.COMMAND:
        want(COMMAND_PAYLOAD.size, "the COMMAND layout")
        answers_seq, flags, v, omega = COMMAND_PAYLOAD.unpack_from(mv, HEADER_SIZE)
        _check_finite((v, omega), "v omega", where)
        return Command(v, omega, answers_seq, bool(flags & CMD_STOP), seq, episode_id, stamp), counter
    if msg_type == MsgType.DESCRIPTION:
        if payload_len < DESCRIPTION_FIXED:
            want(DESCRIPTION_FIXED, "at least the fixed DESCRIPTION fields")
        spec_id, num_beams, flags, _r, amin, ainc, rmin, rmax = DESCRIPTION_PAYLOAD.unpack_from(mv, HEADER_SIZE)
        _check_finite((amin, ainc, rmin, rmax), "angle_min angle_increment range_min range_max", where)
        n_angles = num_beams if flags & DESC_PER_BEAM_ANGLES else 0
        want(DESCRIPTION_FIXED + 4 * n_angles, f"fixed fields + {n_angles} per-beam f32 angles")
        angles = None
        if n_angles:
            a = np.frombuffer(mv, dtype="<f4", count=n_angles, offset=HEADER_SIZE + DESCRIPTION_FIXED)
            if not np.isfinite(a).all():
                raise WireNonFiniteError(f"{where}: per-beam angle {int(np.argmin(np.isfinite(a)))} must be "
                                         "finite. Fix the sender's angle table.")
            angles = tuple(float(x) for x in a)
        try:
            spec = ScanSpec(num_beams, amin, ainc, rmin, rmax, angles, spec_id)
        except ScanSpecError as e:
            raise WireChunkError(f"{where}: the description is not a valid ScanSpec: {e}") from None
        return Description(spec, seq, episode_id, stamp), counter
    # SCAN
    if payload_len < CHUNK_FIXED:
        want(CHUNK_FIXED, "at least the fixed SCAN fields")
    spec_id, num_beams, index, count, chunk_beams, _r, ox, oy, oth, gx, gy = CHUNK_PAYLOAD.unpack_from(
        mv, HEADER_SIZE)
    _check_finite((ox, oy, oth, gx, gy), "odom_x odom_y odom_theta goal_x goal_y", where)
    if num_beams < 1 or not 1 <= chunk_beams <= MAX_CHUNK_BEAMS or count != -(-num_beams // chunk_beams) \
            or index >= count:
        raise WireChunkError(f"{where}: chunk fields inconsistent: num_beams {num_beams}, chunk_beams "
                             f"{chunk_beams} (1 .. {MAX_CHUNK_BEAMS}), chunk_count {count} (expected "
                             f"ceil(num_beams / chunk_beams)), chunk_index {index} (expected < chunk_count).")
    beams = min(chunk_beams, num_beams - index * chunk_beams)
    want(CHUNK_FIXED + 2 * beams, f"fixed fields + {beams} u16 ranges of chunk {index}/{count}")
    codes = np.frombuffer(mv, dtype="<u2", count=beams, offset=HEADER_SIZE + CHUNK_FIXED).astype(np.uint16)
    return ScanChunk(seq, episode_id, stamp, spec_id, num_beams, index, count, chunk_beams, (ox, oy, oth),
                     (gx, gy), codes), counter


def seq_newer(seq: int, last: int) -> bool:
    """True if u32 ``seq`` comes after ``last`` (RFC 1982 serial arithmetic: wraps at 2**32)."""
    d = (seq - last) % U32
    return 0 < d < (U32 >> 1)
