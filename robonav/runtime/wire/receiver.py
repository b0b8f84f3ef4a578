"""The receive side of the robot wire both ends share: chunk reassembly and per-type sequence checks.

robonav.runtime.wire.protocol holds the layouts and the stateless encode/decode; this module holds the state a receiver
keeps between datagrams: the scanner descriptions it was sent, the chunk sets of frames still arriving, and the
newest sequence number accepted per message type.
"""

from __future__ import annotations

import numpy as np

from robonav.runtime.wire.protocol import (
    _TYPE_NAMES,
    RESYNC_AFTER,
    U32,
    Command,
    Description,
    Hello,
    MsgType,
    ScanChunk,
    ScanFrame,
    WireChunkError,
    WireIncompleteError,
    WireSequenceError,
    WireUnknownDescriptionError,
    codes_to_ranges,
    decode,
    seq_newer,
)
from robonav.sensors.frame import ScanSpec

__all__ = ["Reassembler", "Receiver"]


class _Pending:
    """One frame's chunks as they arrive."""

    __slots__ = ("codes", "first", "got")

    def __init__(self, first: ScanChunk) -> None:
        self.first = first
        self.codes = np.empty(first.num_beams, dtype=np.uint16)
        self.got = np.zeros(first.chunk_count, dtype=bool)


class Reassembler:
    """Joins SCAN chunks into ScanFrames: chunks in any order, newest frame wins, incomplete sets dropped.

    A frame is returned once its last missing chunk arrives. Completing frame S drops every pending set older than
    S (counted in ``incomplete`` and reported to ``on_reject`` as WireIncompleteError); so does holding more than
    ``max_pending`` sets. Chunks of frames at or before the newest completed one, and repeated chunks, raise
    WireSequenceError. ``descriptions`` maps spec_id to ScanSpec (the Receiver fills it).
    """

    def __init__(self, descriptions: dict[int, ScanSpec] | None = None, max_pending: int = 4,
                 on_reject=None) -> None:
        self.descriptions: dict[int, ScanSpec] = {} if descriptions is None else descriptions
        self.max_pending = max_pending
        self.on_reject = on_reject
        self.incomplete = 0
        """Chunk sets dropped with chunks missing."""
        self.last_seq: int | None = None
        """Seq of the newest completed frame."""
        self.resyncs = 0
        """Times RESYNC_AFTER old frames in a row, with advancing seqs, made the reassembler follow a restarted sender
        (repeats of one frame, a frozen sender, never do)."""
        self._old_run = 0
        self._old_seq: int | None = None  # seq of the last old frame counted in _old_run
        self._pending: dict[int, _Pending] = {}

    @property
    def pending(self) -> int:
        """Chunk sets waiting for chunks."""
        return len(self._pending)

    def reset(self) -> None:
        """Forget pending sets and the newest seq (the sender restarted)."""
        self._pending.clear()
        self.last_seq = None
        self._old_run = 0
        self._old_seq = None

    def add(self, chunk: ScanChunk) -> ScanFrame | None:
        """Take one chunk; the completed ScanFrame, or None while chunks are missing."""
        where = f"SCAN seq {chunk.seq} chunk {chunk.chunk_index}/{chunk.chunk_count}"
        spec = self.descriptions.get(chunk.spec_id)
        if spec is None:
            raise WireUnknownDescriptionError(
                f"{where}: names description id {chunk.spec_id}, known: {sorted(self.descriptions) or 'none'}. "
                "The robot must send its DESCRIPTION at connect and on change before scans that name it.")
        if spec.num_beams != chunk.num_beams:
            raise WireChunkError(f"{where}: num_beams {chunk.num_beams} differs from description {chunk.spec_id} "
                                 f"({spec.num_beams} beams); send a new description id when the scanner changes.")
        if self.last_seq is not None and not seq_newer(chunk.seq, self.last_seq):
            if self._old_seq is None or seq_newer(chunk.seq, self._old_seq):
                self._old_run += 1  # only an advancing old counter counts: a frozen sender repeats one seq
                self._old_seq = chunk.seq
            if self._old_run >= RESYNC_AFTER:  # the sender restarted without a HELLO: follow its new counter
                self.resyncs += 1
                self.reset()
                return self.add(chunk)
            raise WireSequenceError(f"{where}: old or duplicate frame, the newest completed frame is seq "
                                    f"{self.last_seq}; dropped (late, repeated or replayed datagram).")
        p = self._pending.get(chunk.seq)
        if p is None:
            while len(self._pending) >= self.max_pending:
                self._drop(min(self._pending, key=lambda s: (s - chunk.seq) % U32), "too many pending frames")
            p = self._pending[chunk.seq] = _Pending(chunk)
        f = p.first
        if (chunk.episode_id, chunk.stamp, chunk.spec_id, chunk.num_beams, chunk.chunk_count, chunk.chunk_beams,
                chunk.odom_pose, chunk.goal) != (f.episode_id, f.stamp, f.spec_id, f.num_beams, f.chunk_count,
                                                 f.chunk_beams, f.odom_pose, f.goal):
            raise WireChunkError(f"{where}: episode, stamp, description, beam counts, odometry or goal differ from "
                                 f"chunk {f.chunk_index} of the same frame; every chunk must repeat them.")
        if p.got[chunk.chunk_index]:
            raise WireSequenceError(f"{where}: duplicate chunk, already received; dropped.")
        start = chunk.chunk_index * chunk.chunk_beams
        p.codes[start:start + len(chunk.codes)] = chunk.codes
        p.got[chunk.chunk_index] = True
        if not p.got.all():
            return None
        del self._pending[chunk.seq]
        for s in [s for s in self._pending if not seq_newer(s, chunk.seq)]:
            self._drop(s, f"frame {chunk.seq} completed first")
        self.last_seq = chunk.seq
        self._old_run = 0
        return ScanFrame(codes_to_ranges(p.codes), spec, np.array(f.odom_pose), np.array(f.goal), f.episode_id,
                         f.stamp, f.seq)

    def _drop(self, seq: int, why: str) -> None:
        p = self._pending.pop(seq)
        self.incomplete += 1
        if self.on_reject is not None:
            missing = np.flatnonzero(~p.got).tolist()
            self.on_reject(WireIncompleteError(f"SCAN seq {seq}: chunk set dropped incomplete ({why}), missing "
                                               f"chunks {missing} of {len(p.got)}; the frame is lost."))


class Receiver:
    """The stateful receive side both ends share: decode, per-type sequence checks, descriptions, reassembly.

    ``receive(datagram)`` returns a completed ScanFrame, a Command, a Hello, a Description, or None (a chunk of
    an unfinished frame), or raises the WireError naming what was wrong. Incomplete chunk sets are reported to
    ``on_reject``.
    """

    def __init__(self, on_reject=None, max_pending: int = 4) -> None:
        self.descriptions: dict[int, ScanSpec] = {}
        self.reassembler = Reassembler(self.descriptions, max_pending, on_reject)
        self.peer_boot_id: int | None = None
        self._last: dict[int, int] = {}  # msg type -> newest accepted seq (SCAN: the reassembler's)

    def receive(self, data: bytes | bytearray | memoryview) -> ScanFrame | Command | Hello | Description | None:
        msg = decode(data)
        if isinstance(msg, ScanChunk):
            return self.reassembler.add(msg)
        kind = (MsgType.HELLO if isinstance(msg, Hello) else MsgType.COMMAND if isinstance(msg, Command)
                else MsgType.DESCRIPTION)
        if isinstance(msg, Hello) and msg.boot_id != self.peer_boot_id:
            self.peer_boot_id = msg.boot_id  # the peer (re)started: its counters start over
            self._last.clear()
            self.reassembler.reset()
        last = self._last.get(kind)
        if last is not None and not seq_newer(msg.seq, last):
            raise WireSequenceError(f"{_TYPE_NAMES[kind]} seq {msg.seq}: old or duplicate, the newest accepted is "
                                    f"{last}; dropped (late, repeated or replayed datagram).")
        self._last[kind] = msg.seq
        if isinstance(msg, Description):
            self.descriptions[msg.spec.spec_id] = msg.spec
        return msg
