"""The receive side of the robot wire both ends share: authentication, replay window, bounds, chunk reassembly
and per-type sequence checks.

robonav.runtime.wire.protocol holds the layouts and the stateless encode/decode; this module holds the state a receiver
keeps between datagrams, every piece of it bounded whatever a peer sends: the replay window (64 counters), the
scanner descriptions (an LRU of MAX_DESCRIPTIONS), the chunk sets of frames still arriving (``max_pending``, each at
most ``max_beams`` beams), the newest sequence number per message type, and the per-peer token buckets of
`RateLimiter` (an LRU of MAX_PEERS).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable

import numpy as np

from robonav.runtime.wire.protocol import (
    _TYPE_NAMES,
    FRESHNESS_S,
    RESYNC_AFTER,
    U32,
    Command,
    Description,
    Hello,
    MsgType,
    ReplayWindow,
    ScanChunk,
    ScanFrame,
    WireChunkError,
    WireIncompleteError,
    WireLimitError,
    WireSequenceError,
    WireUnknownDescriptionError,
    codes_to_ranges,
    decode_counted,
    seq_newer,
)
from robonav.sensors.frame import ScanSpec

__all__ = ["MAX_BEAMS", "MAX_CHUNKS", "MAX_DESCRIPTIONS", "MAX_PEERS", "DescriptionCache", "RateLimiter",
           "Reassembler", "Receiver"]

MAX_DESCRIPTIONS = 8
"""Scanner descriptions a receiver keeps (least recently announced evicted first): a robot has one or two scanners
and changes a description rarely, and it repeats the one in use about once a second, so 8 never evicts a live one
while 3,000 forged ids cost 8 entries, not 33 MiB."""
MAX_BEAMS = 4096
"""Default most beams per scan (a 0.1-degree 360-degree scanner has 3,600)."""
MAX_CHUNKS = 16
"""Default most chunks per frame (a MAX_BEAMS scan needs 7 of the largest size; 16 leaves room for smaller ones)."""
MAX_PEERS = 16
"""Peer addresses whose token buckets a RateLimiter keeps (least recently seen evicted first)."""


class DescriptionCache(OrderedDict):  # type: ignore[type-arg]
    """spec_id -> ScanSpec, at most ``size`` entries: setting one makes it the newest, the oldest goes first."""

    def __init__(self, size: int = MAX_DESCRIPTIONS) -> None:
        super().__init__()
        self.size = size
        self.evicted = 0
        """Descriptions dropped to make room."""

    def __setitem__(self, key: int, value: ScanSpec) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)
            self.evicted += 1


BURST = 1024.0
"""Datagrams a peer may send at once. The bucket is read when the loop drains its socket, not when datagrams
arrive, so a backlog queued while the loop was late looks like a burst: 1,024 is above what the kernel's default
receive buffer (about 212 kB, some 260 scan datagrams) can queue, so only a sustained flood is cut."""


class RateLimiter:
    """One token bucket per peer (``rate`` datagrams per second, bursts of ``burst``), in an LRU of ``max_peers``:
    ``allow(peer)`` takes a token or says no. Real time (time.monotonic), whatever clock the loop runs on."""

    def __init__(self, rate: float = 2000.0, burst: float = BURST, max_peers: int = MAX_PEERS) -> None:
        self.rate, self.burst, self.max_peers = float(rate), float(burst), max_peers
        self._peers: OrderedDict[Hashable, list[float]] = OrderedDict()  # peer -> [tokens, last time]

    def allow(self, peer: Hashable, now: float | None = None) -> bool:
        t = time.monotonic() if now is None else now
        b = self._peers.get(peer)
        if b is None:
            b = self._peers[peer] = [self.burst, t]
            while len(self._peers) > self.max_peers:
                self._peers.popitem(last=False)
        else:
            self._peers.move_to_end(peer)
            b[0] = min(self.burst, b[0] + (t - b[1]) * self.rate)
            b[1] = t
        if b[0] < 1.0:
            return False
        b[0] -= 1.0
        return True


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
                 on_reject=None, max_beams: int = MAX_BEAMS, max_chunks: int = MAX_CHUNKS) -> None:
        self.descriptions: dict[int, ScanSpec] = DescriptionCache() if descriptions is None else descriptions
        self.max_pending = max_pending
        self.max_beams, self.max_chunks = max_beams, max_chunks
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
        if chunk.num_beams > self.max_beams or chunk.chunk_count > self.max_chunks:
            raise WireLimitError(f"{where}: {chunk.num_beams} beams in {chunk.chunk_count} chunks, this receiver "
                                 f"holds at most {self.max_beams} beams in {self.max_chunks} chunks; refused. Raise "
                                 "the receiver's max_beams / max_chunks if the scanner really has that many.")
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
    """The stateful receive side both ends share: decode and authenticate, replay window, per-type sequence checks,
    bounded descriptions, reassembly.

    ``receive(datagram)`` returns a completed ScanFrame, a Command, a Hello, a Description, or None (a chunk of
    an unfinished frame), or raises the WireError naming what was wrong. Incomplete chunk sets are reported to
    ``on_reject``. ``key``: the link key of the direction received (protocol.link_key; None: unsigned datagrams
    only, development on loopback). ``trust_signed``: take signed datagrams without a key, unverified (replaying
    a trusted recording). ``freshness_s``: the replay window's clock bound (None: none, for recordings).
    """

    def __init__(self, on_reject=None, max_pending: int = 4, key: bytes | None = None, trust_signed: bool = False,
                 freshness_s: float | None = FRESHNESS_S, max_beams: int = MAX_BEAMS,
                 max_chunks: int = MAX_CHUNKS) -> None:
        self.key, self.trust_signed = key, trust_signed
        self.descriptions = DescriptionCache()
        self.reassembler = Reassembler(self.descriptions, max_pending, on_reject, max_beams, max_chunks)
        self.window = ReplayWindow(freshness_s)
        self.peer_boot_id: int | None = None
        self._last: dict[int, int] = {}  # msg type -> newest accepted seq (SCAN: the reassembler's)

    def receive(self, data: bytes | bytearray | memoryview) -> ScanFrame | Command | Hello | Description | None:
        msg, counter = decode_counted(data, self.key, self.trust_signed)
        if counter is not None:  # signed (and, with a key, verified): each counter once, never from long ago
            name = "SCAN" if isinstance(msg, ScanChunk) else type(msg).__name__.upper()
            self.window.check(counter, f"{name} seq {msg.seq}")
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
            if msg.spec.num_beams > self.reassembler.max_beams:
                raise WireLimitError(f"DESCRIPTION seq {msg.seq}: {msg.spec.num_beams} beams, this receiver holds "
                                     f"at most {self.reassembler.max_beams}; refused.")
            self.descriptions[msg.spec.spec_id] = msg.spec
        return msg
