"""The golden byte vectors of tests/runtime/wire/golden/: what each message encodes to, signed with TEST_KEY.

TEST_KEY is a published test key (bytes 0x00 .. 0x1f), for these vectors only: never a robot's key. Regenerate
the files after a deliberate change of the wire with ``python tests/runtime/wire/golden_vectors.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robonav.runtime.wire import protocol as w
from robonav.sensors.frame import ScanSpec

GOLDEN = Path(__file__).parent / "golden"
TEST_KEY = bytes(range(32))
"""The published test key of the golden vectors (hex 000102...1f)."""
COUNTER0 = 1_765_000_000_000_000
"""Counters of the vectors start here (microseconds since the epoch, 2025-12-06): vector i at COUNTER0 + 100 i."""
SPEC = ScanSpec(8, -np.pi, np.pi / 4, 0.05, 3.5, None, 7)
ANGLES_SPEC = ScanSpec(4, 0.0, 0.0, 0.1, 10.0, (-1.5, -0.5, 0.5, 1.5), 9)
RANGES = np.array([0.5, 1.2344, np.inf, np.nan, -np.inf, 3.5, 0.0, 70.0], np.float32)


def first_counter(name: str) -> int:
    """The counter of vector ``name``'s first datagram (each vector its own, so one receiver takes them all)."""
    return COUNTER0 + 100 * NAMES.index(name)


def signer(direction: bytes, name: str) -> w.Signer:
    """A signer on TEST_KEY whose counters are first_counter(name), + 1, ... whatever the time."""
    return w.Signer(TEST_KEY, direction, first_counter(name), clock=lambda: 0)


def golden_frame(seq: int = 42) -> w.ScanFrame:
    return w.ScanFrame(RANGES.copy(), SPEC, np.array([0.1, -0.02, 0.05]), np.array([4.0, -2.5]), 3, 10.25, seq)


MESSAGES = {
    "hello": (w.RUNTIME_TO_ROBOT, w.Hello(0x12345678, 2, 0.25, 1, 0, 1.5)),
    "description": (w.ROBOT_TO_RUNTIME, w.Description(SPEC, 2, 3, 2.0)),
    "description_angles": (w.ROBOT_TO_RUNTIME, w.Description(ANGLES_SPEC, 3, 3, 2.5)),
    "command": (w.RUNTIME_TO_ROBOT, w.Command(0.4, -0.75, 42, False, 17, 3, 10.3)),
    "stop": (w.RUNTIME_TO_ROBOT, w.Command(0.0, 0.0, 42, True, 18, 3, 10.4)),
}
"""name -> (direction, message) of the one-datagram vectors."""
NAMES = (*MESSAGES, "scan", "scan_chunks")


def encode(name: str, signed: bool = True) -> list[bytes]:
    """The datagrams of vector ``name`` (scan: one chunk; scan_chunks: chunks of 3 beams)."""
    if name in ("scan", "scan_chunks"):
        s = signer(w.ROBOT_TO_RUNTIME, name) if signed else None
        return w.encode_frame(golden_frame(), w.MAX_CHUNK_BEAMS if name == "scan" else 3, s)
    direction, msg = MESSAGES[name]
    s = signer(direction, name) if signed else None
    if isinstance(msg, w.Hello):
        return [w.encode_hello(msg, s)]
    if isinstance(msg, w.Description):
        return [w.encode_description(msg, s)]
    assert isinstance(msg, w.Command)
    return [w.encode_command(msg, s)]




def write_all() -> None:
    """Write every vector: <name>.hex signed with TEST_KEY, command_unsigned.hex without a key."""
    for name in NAMES:
        head = (f"# robot wire v{w.VERSION} golden vector: {name}, signed with the published TEST key 000102..1f "
                f"(never a robot's key), counters from {first_counter(name)}; one datagram per line, hex; "
                "see tests/runtime/wire/golden_vectors.py\n")
        (GOLDEN / f"{name}.hex").write_text(head + "".join(d.hex() + "\n" for d in encode(name)))
    (GOLDEN / "command_unsigned.hex").write_text(
        f"# robot wire v{w.VERSION} golden vector: command, unsigned (CRC32 trailer: loopback development)\n"
        + encode("command", signed=False)[0].hex() + "\n")


if __name__ == "__main__":
    write_all()
