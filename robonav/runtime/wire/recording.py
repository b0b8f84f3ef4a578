"""The wire recorder: every datagram the runtime receives and sends, and which frame the loop took, in one file.

A field engineer's first tool after a bad run is the run itself: `robonav replay LOG` (robonav.runtime.wire.replay)
feeds a recording back through the same receiver, preprocessing, policy and safety layer and checks that the
commands come out bit for bit as they went to the robot.

File layout: the 8-byte magic ``RNAVLOG1``, then records ``kind u8 | clock time f64 | length u32 | bytes``
(little-endian). Kinds: META (UTF-8 JSON: what ran, written first), RX (a received datagram), TX (a sent
datagram), TAKE (the loop took the newest frame: episode_id u32, seq u32). Records are appended through a
buffer flushed at every TAKE, so a killed runtime loses at most the records of its last tick; `read_log` stops
at a torn last record and says so.

Rotation: once a file passes ``max_bytes`` it is renamed to ``<path>.1`` (``.1`` to ``.2`` and so on, the
oldest beyond ``keep`` deleted) and a new file starts with the magic and the same META, so a hostile flood (every
received datagram is recorded) costs at most ``max_bytes * (keep + 1)`` of disk. Each file reads on its own;
bit-for-bit replay holds for the first (a later one starts with the policy's state of a run it does not hold).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from robonav.errors import UserError
from robonav.runtime.telemetry import rotate

__all__ = ["META", "RX", "TAKE", "TX", "LogRecord", "WireLogError", "WireRecorder", "read_log"]

MAGIC = b"RNAVLOG1"
RECORD = struct.Struct("<BdI")
TAKE_PAYLOAD = struct.Struct("<II")
META, RX, TX, TAKE = 0, 1, 2, 3
KIND_NAMES = {META: "META", RX: "RX", TX: "TX", TAKE: "TAKE"}
MAX_BYTES = 256 << 20
"""Default size (bytes) at which a recording rotates: about 40 minutes of a 360-beam robot at 10 Hz."""
KEEP = 3
"""Default rotated files kept beside the current one."""



class WireLogError(UserError, ValueError):
    """A file is not a wire recording, or is damaged before its last record."""


@dataclass(frozen=True)
class LogRecord:
    """One record: its kind (META, RX, TX, TAKE), the recorder's clock time and its bytes."""

    kind: int
    t: float
    data: bytes

    def meta(self) -> dict[str, Any]:
        """A META record's JSON."""
        return json.loads(self.data.decode())

    def take(self) -> tuple[int, int]:
        """A TAKE record's (episode_id, seq)."""
        episode, seq = TAKE_PAYLOAD.unpack(self.data)
        return episode, seq


class WireRecorder:
    """Appends records to a new file (an existing one is replaced: one recording per run), rotated by size."""

    def __init__(self, path: str | Path, meta: dict[str, Any] | None = None, max_bytes: int = MAX_BYTES,
                 keep: int = KEEP) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes, self.keep = max_bytes, keep
        self._meta = json.dumps(meta or {}, sort_keys=True).encode()
        self.records = 0
        self.rotations = 0
        self._f: BinaryIO | None = None
        self._open()

    def _open(self) -> None:
        self._f = open(self.path, "wb", buffering=1 << 16)  # closed in close() or at rotation
        self._f.write(MAGIC)
        self._bytes = len(MAGIC)
        self.write(META, 0.0, self._meta)
        self._f.flush()

    def write(self, kind: int, t: float, data: bytes | bytearray | memoryview) -> None:
        """Append one record (rotating first when the file has reached max_bytes)."""
        if self._f is None:
            return
        if self._bytes >= self.max_bytes and kind != META:
            self._f.close()
            rotate(self.path, self.keep)
            self.rotations += 1
            self._open()
        self._f.write(RECORD.pack(kind, t, len(data)))
        self._f.write(data)
        self._bytes += RECORD.size + len(data)
        self.records += 1

    def take(self, t: float, episode_id: int, seq: int) -> None:
        """Record that the loop took frame (episode_id, seq), and flush: one tick's records reach the file."""
        self.write(TAKE, t, TAKE_PAYLOAD.pack(episode_id % (1 << 32), seq % (1 << 32)))
        if self._f is not None:
            self._f.flush()

    def close(self) -> None:
        """Flush and close; idempotent."""
        if self._f is not None:
            self._f.close()
            self._f = None


def read_log(path: str | Path) -> tuple[list[LogRecord], str | None]:
    """All whole records of a recording, and a note when the file ends in a torn record (else None)."""
    data = Path(path).read_bytes()
    if not data.startswith(MAGIC):
        raise WireLogError(f"{path}: not a robonav wire recording (it starts with {data[:8]!r}, expected {MAGIC!r}); "
                           "record one with `robonav run --set record=FILE` (driver: udp).")
    records: list[LogRecord] = []
    note = None
    for rec in _records(data):
        if isinstance(rec, str):
            note = rec
            break
        records.append(rec)
    if not records or records[0].kind != META:
        raise WireLogError(f"{path}: the recording has no META record first; it is damaged at the start.")
    return records, note


def _records(data: bytes) -> Iterator[LogRecord | str]:
    i, n = len(MAGIC), len(data)
    while i < n:
        if i + RECORD.size > n:
            yield f"torn record header at byte {i} of {n} (the recorder was killed mid-write); ignored"
            return
        kind, t, length = RECORD.unpack_from(data, i)
        start = i + RECORD.size
        if kind not in KIND_NAMES:
            raise WireLogError(f"record at byte {i}: unknown kind {kind}, expected one of {sorted(KIND_NAMES)}; "
                               "the recording is damaged.")
        if start + length > n:
            yield f"torn {KIND_NAMES[kind]} record at byte {i} ({n - start} of {length} bytes); ignored"
            return
        yield LogRecord(kind, t, data[start:start + length])
        i = start + length
