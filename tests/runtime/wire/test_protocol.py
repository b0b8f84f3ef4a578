"""The robot wire: golden vectors (signed with the published test key), round trips, every rejection reason,
chunk loss/reordering, fuzz, C header."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import itertools
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robonav.runtime.wire import protocol as w
from robonav.runtime.wire import receiver as rxm
from robonav.sensors.frame import ScanSpec

from .golden_vectors import COUNTER0, GOLDEN, MESSAGES, SPEC, TEST_KEY, encode, first_counter, golden_frame

HEADER_H = Path(__file__).parents[3] / "deploy" / "wire" / "robonav_wire.h"
CODES = [500, 1234, w.RANGE_POS_INF, w.RANGE_NAN, w.RANGE_NEG_INF, 3500, 0, w.RANGE_POS_INF]
R2T = w.link_key(TEST_KEY, w.ROBOT_TO_RUNTIME)
T2R = w.link_key(TEST_KEY, w.RUNTIME_TO_ROBOT)
_counters = itertools.count(COUNTER0 + 10**6, 1000)


def signer(direction: bytes = w.ROBOT_TO_RUNTIME) -> w.Signer:
    """A TEST_KEY signer whose counters lie above every one used so far in this module (no clock)."""
    return w.Signer(TEST_KEY, direction, next(_counters), clock=lambda: 0)


def read_golden(name: str) -> list[bytes]:
    lines = (GOLDEN / f"{name}.hex").read_text().splitlines()
    return [bytes.fromhex(s) for s in lines if s and not s.startswith("#")]


def recrc(buf: bytes | bytearray) -> bytes:
    """Rewrite the trailer CRC, so a crafted fault reaches the check after the CRC."""
    b = bytearray(buf)
    b[-4:] = struct.pack("<I", zlib.crc32(bytes(b[:-4])))
    return bytes(b)


def resign(buf: bytes | bytearray, key: bytes = R2T) -> bytes:
    """Rewrite a signed datagram's tag (its counter kept), as only a key holder can."""
    b = bytearray(buf)
    b[-16:] = hmac.new(key, bytes(b[:-16]), hashlib.sha256).digest()[:16]
    return bytes(b)


def receiver_with_spec() -> rxm.Receiver:
    """A receiver holding TEST_KEY that took the golden DESCRIPTION (no clock bound: the vectors are old)."""
    rx = rxm.Receiver(key=R2T, freshness_s=None)
    rx.receive(read_golden("description")[0])
    return rx


# ---------------------------------------------------------------- golden vectors


def test_golden_command_bytes_by_hand():
    (cmd,) = read_golden("command")
    assert cmd[:8] == b"RNAV\x02\x04\x01\x00"  # magic, version 2, type COMMAND, flags SIGNED
    assert struct.unpack_from("<IIdII", cmd, 8) == (17, 3, 10.3, 24, 0)  # seq, episode, stamp, payload_len, 0
    assert struct.unpack_from("<IIdd", cmd, 32) == (42, 0, 0.4, -0.75)
    assert struct.unpack_from("<Q", cmd, 56)[0] == COUNTER0 + 300 and len(cmd) == w.COMMAND_SIZE == 80
    # The tag by hand: the link key of runtime->robot under the test key, then HMAC over bytes 0..63, 16 bytes.
    link = hmac.new(bytes(range(32)), b"robonav wire v2 runtime->robot", hashlib.sha256).digest()
    assert cmd[64:] == hmac.new(link, cmd[:64], hashlib.sha256).digest()[:16]
    (plain,) = read_golden("command_unsigned")
    assert plain[:8] == b"RNAV\x02\x04\x00\x00" and plain[8:56] == cmd[8:56] and len(plain) == 60
    assert struct.unpack_from("<I", plain, 56)[0] == zlib.crc32(plain[:56])


@pytest.mark.parametrize("name", list(MESSAGES))
def test_golden_messages(name):
    direction, expected = MESSAGES[name]
    assert encode(name) == read_golden(name)
    key = w.link_key(TEST_KEY, direction)
    assert [w.decode_counted(d, key) for d in read_golden(name)] == [(expected, first_counter(name))]
    assert w.decode(read_golden(name)[0], trust_signed=True) == expected  # a trusted recording: no key needed
    with pytest.raises(w.WireMacError):  # the other direction's key: a reflected datagram fails
        w.decode(read_golden(name)[0], w.link_key(TEST_KEY, w.ROBOT_TO_RUNTIME if key == T2R else
                                                  w.RUNTIME_TO_ROBOT))


@pytest.mark.parametrize("name, chunk_beams, sizes", [("scan", w.MAX_CHUNK_BEAMS, [128]),
                                                      ("scan_chunks", 3, [118, 118, 116])])
def test_golden_scan(name, chunk_beams, sizes):
    data = read_golden(name)
    assert encode(name) == data
    assert [len(d) for d in data] == sizes  # 32 + 56 + 2 * beams + 8 (counter) + 16 (tag)
    counters = [struct.unpack_from("<Q", d, len(d) - 24)[0] for d in data]
    assert counters == [first_counter(name) + i for i in range(len(data))]
    chunks = [w.decode(d, R2T) for d in data]
    assert [c.chunk_index for c in chunks] == list(range(len(data)))
    assert np.concatenate([c.codes for c in chunks]).tolist() == CODES
    c = chunks[0]
    assert (c.seq, c.episode_id, c.stamp, c.spec_id, c.num_beams, c.odom_pose, c.goal) == (
        42, 3, 10.25, 7, 8, (0.1, -0.02, 0.05), (4.0, -2.5))
    rx = receiver_with_spec()
    frames = [rx.receive(d) for d in reversed(data)]  # chunks (and counters) in reverse: the window lets them in
    frame = frames[-1]
    assert frames[:-1] == [None] * (len(data) - 1) and isinstance(frame, w.ScanFrame)
    np.testing.assert_array_equal(frame.ranges, np.array([0.5, 1.234, np.inf, np.nan, -np.inf, 3.5, 0, np.inf],
                                                         np.float32))
    assert frame.ranges.dtype == np.float32 and frame.scan == SPEC
    assert (frame.seq, frame.episode_id, frame.stamp, frame.goal.tolist()) == (42, 3, 10.25, [4.0, -2.5])


# ---------------------------------------------------------------- range codes


def test_range_codes_pinned():
    r = np.array([0.0, 0.0004, 0.0006, 65.532, 65.5324, 65.5326, 1e9, -0.1, np.nan, np.inf, -np.inf])
    assert w.ranges_to_codes(r).tolist() == [0, 0, 1, 65532, 65532, w.RANGE_POS_INF, w.RANGE_POS_INF, w.RANGE_NAN,
                                             w.RANGE_NAN, w.RANGE_POS_INF, w.RANGE_NEG_INF]
    back = w.codes_to_ranges(np.array([0, 1, 65532, 0xFFFD, 0xFFFE, 0xFFFF], np.uint16))
    np.testing.assert_array_equal(back, np.array([0, 0.001, 65.532, -np.inf, np.nan, np.inf], np.float32))


# ---------------------------------------------------------------- round trips

finite = dict(allow_nan=False, allow_infinity=False)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 1500), chunk=st.integers(1, w.MAX_CHUNK_BEAMS), seed=st.integers(0, 2**32 - 1),
       seq=st.integers(0, 2**32 - 1), episode=st.integers(0, 2**32 - 1), stamp=st.floats(**finite))
def test_frame_round_trip_any_order(n, chunk, seed, seq, episode, stamp):
    rng = np.random.default_rng(seed)
    r = rng.uniform(-1.0, 80.0, n).astype(np.float32)
    r[rng.random(n) < 0.1] = np.inf
    r[rng.random(n) < 0.1] = np.nan
    r[rng.random(n) < 0.1] = -np.inf
    spec = ScanSpec(n, -1.0, 0.01, 0.05, 60.0, None, 5)
    frame = w.ScanFrame(r, spec, rng.normal(size=3), rng.normal(size=2), episode, stamp, seq)
    data = w.encode_frame(frame, chunk)
    assert all(len(d) <= w.DATAGRAM_BUDGET for d in data) and len(data) == -(-n // chunk)
    rx = rxm.Reassembler({5: spec}, max_chunks=1500)
    order = rng.permutation(len(data))
    got = [rx.add(w.decode(data[i])) for i in order]
    out = got[-1]
    assert all(g is None for g in got[:-1]) and out is not None
    near = np.isfinite(r) & (r >= 0) & (r < 65.5)
    assert np.abs(out.ranges[near] - r[near]).max(initial=0) <= 0.0005 + 8e-6  # half a mm + float32 rounding at 65 m
    np.testing.assert_array_equal(out.ranges, w.codes_to_ranges(w.ranges_to_codes(r)))
    np.testing.assert_array_equal(out.odom_pose, frame.odom_pose)
    assert (out.seq, out.episode_id, out.stamp) == (seq, episode, stamp)


@settings(max_examples=40, deadline=None)
@given(v=st.floats(**finite), om=st.floats(**finite), ans=st.integers(0, 2**32 - 1), stop=st.booleans(),
       seq=st.integers(0, 2**32 - 1), boot=st.integers(0, 2**32 - 1), wd=st.floats(0, w.WATCHDOG_MAX_S))
def test_command_and_hello_round_trip(v, om, ans, stop, seq, boot, wd):
    cmd = w.Command(v, om, ans, stop, seq, 1, 2.0)
    assert w.decode(w.encode_command(cmd)) == cmd
    assert w.decode(w.encode_command(cmd, signer(w.RUNTIME_TO_ROBOT)), T2R) == cmd
    hello = w.Hello(boot, 1, wd, seq)
    assert w.decode(w.encode_hello(hello)) == hello
    assert w.decode(w.encode_hello(hello, signer()), R2T) == hello


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, w.MAX_DESCRIPTION_ANGLES), per_beam=st.booleans(), rmax=st.floats(0.2, 65.532),
       spec_id=st.integers(0, 2**32 - 1))
def test_description_round_trip(n, per_beam, rmax, spec_id):
    angles = tuple(float(a) for a in np.linspace(-2, 2, n, dtype=np.float32)) if per_beam else None
    spec = ScanSpec(n, -0.5, 0.001, 0.1, rmax, angles, spec_id)
    assert w.decode(w.encode_description(w.Description(spec, 9))).spec == spec


# ---------------------------------------------------------------- rejections, one per reason

CMD = read_golden("command_unsigned")[0]
SIGNED = read_golden("command")[0]


@pytest.mark.parametrize("data, error, match", [
    (CMD[:20], w.WireSizeError, "datagram of 20 bytes is shorter than header"),
    (CMD + b"\0", w.WireSizeError, "payload_len 24 does not match the datagram"),
    (b"XNAV" + CMD[4:], w.WireMagicError, r"starts with b'XNAV', expected magic b'RNAV'"),
    (CMD[:4] + b"\x01" + CMD[5:], w.WireVersionError, "wire version 1, expected 2"),
    (recrc(CMD[:6] + b"\x02" + CMD[7:]), w.WireTypeError, "header flags 0x0002 set bits"),
    (SIGNED[:-1], w.WireSizeError, "does not match the datagram .79 bytes => 23 payload bytes signed"),
    (CMD[:40] + bytes([CMD[40] ^ 1]) + CMD[41:], w.WireCrcError, "does not match the trailer"),
    (recrc(CMD[:5] + b"\x09" + CMD[6:]), w.WireTypeError, "message type 9 is unknown"),
    (recrc(CMD[:5] + b"\x01" + CMD[6:]), w.WireSizeError, "HELLO seq 17: payload of 24 bytes, expected 16"),
    (recrc(CMD[:40] + struct.pack("<d", np.nan) + CMD[48:]), w.WireNonFiniteError, "v must be finite"),
    (recrc(CMD[:16] + struct.pack("<d", np.inf) + CMD[24:]), w.WireNonFiniteError, "stamp must be finite"),
])
def test_decode_rejections(data, error, match):
    with pytest.raises(error, match=match) as e:
        w.decode(data)
    assert e.value.reason in w.REASONS


def scan_with(field_offset: int, fmt: str, value) -> bytes:
    (d,) = read_golden("scan")
    b = bytearray(d)
    struct.pack_into(fmt, b, w.HEADER_SIZE + field_offset, value)
    return resign(b)


def test_signature_rejections():
    with pytest.raises(w.WireUnsignedError, match="COMMAND seq 17: unsigned datagram refused, this side has a wire"):
        w.decode(CMD, T2R)
    with pytest.raises(w.WireNoKeyError, match="signed datagram reached a receiver without a wire key"):
        w.decode(SIGNED)
    for i in (0, 20, 40, 60, 70, 79):  # a flipped bit anywhere (header, payload, counter, tag) fails the MAC
        bad = bytearray(SIGNED)
        bad[i] ^= 0x10
        with pytest.raises((w.WireMacError, w.WireMagicError), match=r"tag does not match|magic"):
            w.decode(bytes(bad), T2R)
    with pytest.raises(w.WireMacError, match="signed with another robot's key"):
        w.decode(SIGNED, w.link_key(b"another robot's key!", w.RUNTIME_TO_ROBOT))


def test_replay_window_reorders_each_counter_once_and_bounds_time():
    win = w.ReplayWindow(freshness_s=None, size=4)
    for c in (10, 12, 11, 15):  # reordered within the window: all pass
        win.check(c, "t")
    for c in (10, 12, 15):  # each once
        with pytest.raises(w.WireReplayError, match="accepted already or is older than the 4 newest"):
            win.check(c, "t")
    win.check(16, "t")  # five remembered > 4: 10 is forgotten and becomes the floor
    assert win.floor == 10
    with pytest.raises(w.WireReplayError):
        win.check(9, "t")  # never seen, but below the floor: refused
    win.check(13, "t")  # never seen, above the floor: a late datagram passes
    fresh = w.ReplayWindow(freshness_s=10.0)
    fresh.check(w.now_us(), "t")
    with pytest.raises(w.WireReplayError, match=r"SCAN seq 1: counter \d+ is -6\d\.\d+ s from this side's clock"):
        fresh.check(w.now_us() - 61_000_000, "SCAN seq 1")  # a capture a minute old, to a restarted receiver
    with pytest.raises(w.WireReplayError, match="beyond 10 s"):
        fresh.check(w.now_us() + 11_000_000, "t")


def test_clamp_watchdog():
    assert [w.clamp_watchdog(x, 0.3) for x in (0.1, 0.3, 0.5, 1e9, 0.0, -1.0, np.nan, np.inf, -np.inf)] == [
        0.1, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3]
    with pytest.raises(w.WireEncodeError, match=r"watchdog_s must be in 0 .. 1.0 s, actual: 5.0"):
        w.encode_hello(w.Hello(1, w.ROLE_RUNTIME, 5.0))
    with pytest.raises(w.WireEncodeError, match="watchdog_s must be in 0"):
        w.encode_hello(w.Hello(1, w.ROLE_RUNTIME, -0.1))


def test_scan_rejections():
    with pytest.raises(w.WireChunkError, match="chunk_index 1 \\(expected < chunk_count\\)"):
        w.decode(scan_with(8, "<H", 1), R2T)
    with pytest.raises(w.WireChunkError, match="chunk_count 2 \\(expected ceil"):
        w.decode(scan_with(10, "<H", 2), R2T)
    with pytest.raises(w.WireNonFiniteError, match="goal_x must be finite"):
        w.decode(scan_with(40, "<d", np.nan), R2T)
    with pytest.raises(w.WireMacError):  # the same change without the key: refused before it is parsed
        w.decode(scan_with(40, "<d", np.nan)[:-1] + b"\0", R2T)
    with pytest.raises(w.WireUnknownDescriptionError, match="names description id 7, known: none"):
        rxm.Receiver(key=R2T, freshness_s=None).receive(read_golden("scan")[0])
    rx = receiver_with_spec()
    with pytest.raises(w.WireChunkError, match="num_beams 9 differs from description 7"):
        bad = dataclasses.replace(golden_frame(), scan=ScanSpec(9, spec_id=7), ranges=np.ones(9, np.float32))
        rx.receive(w.encode_frame(bad, signer=signer())[0])
    a = w.encode_frame(golden_frame(), 3)[0]
    rx = rxm.Receiver()  # unsigned: the duplicate reaches the reassembler's own check
    rx.receive(encode("description", signed=False)[0])
    rx.receive(a)
    with pytest.raises(w.WireSequenceError, match="duplicate chunk"):
        rx.receive(a)
    other = dataclasses.replace(golden_frame(), goal=np.array([9.0, 9.0]))
    with pytest.raises(w.WireChunkError, match="odometry or goal differ from chunk 0"):
        rx.receive(w.encode_frame(other, 3)[1])


def test_limits_and_description_cache():
    rx = rxm.Receiver(key=R2T, freshness_s=None, max_beams=100, max_chunks=3)
    big = ScanSpec(101, spec_id=1)
    with pytest.raises(w.WireLimitError, match="DESCRIPTION seq 0: 101 beams, this receiver holds at most 100"):
        rx.receive(w.encode_description(w.Description(big), signer()))
    rx.receive(w.encode_description(w.Description(ScanSpec(100, spec_id=2), 1), signer()))
    f = w.ScanFrame(np.ones(100, np.float32), ScanSpec(100, spec_id=2), np.zeros(3), np.zeros(2), 0, 0.0, 1)
    with pytest.raises(w.WireLimitError, match="100 beams in 4 chunks, this receiver holds at most 100 beams in 3"):
        rx.receive(w.encode_frame(f, 25, signer())[0])
    assert isinstance(rx.receive(w.encode_frame(f, 34, signer())[2]), type(None))
    s = signer()
    for i in range(3000):  # description spam: 3,000 ids, 8 kept
        rx.receive(w.encode_description(w.Description(ScanSpec(10, spec_id=1000 + i), 2 + i), s))
    assert list(rx.descriptions) == list(range(3992, 4000)) and rx.descriptions.evicted == 3000 - 8 + 1


def test_rate_limiter_token_bucket():
    lim = rxm.RateLimiter(rate=10.0, burst=3.0, max_peers=2)
    assert [lim.allow("a", 0.0) for _ in range(4)] == [True, True, True, False]  # the burst, then empty
    assert lim.allow("a", 0.05) is False and lim.allow("a", 0.1) is True  # 10/s: one token per 0.1 s
    assert lim.allow("b", 0.1) and lim.allow("c", 0.1)  # a third peer evicts the least recent ("a")
    assert len(lim._peers) == 2 and "a" not in lim._peers


def test_sequence_rejections_and_hello_restart():
    rx = rxm.Receiver()  # unsigned: the sequence rules alone (signed, a repeat is a replay first)
    rx.receive(encode("description", signed=False)[0])
    with pytest.raises(w.WireSequenceError, match="DESCRIPTION seq 2: old or duplicate, the newest accepted is 2"):
        rx.receive(encode("description", signed=False)[0])
    assert isinstance(rx.receive(encode("scan", signed=False)[0]), w.ScanFrame)
    with pytest.raises(w.WireSequenceError, match="old or duplicate frame, the newest completed frame is seq 42"):
        rx.receive(encode("scan", signed=False)[0])
    assert rx.receive(CMD).answers_seq == 42
    with pytest.raises(w.WireSequenceError, match="COMMAND seq 17: old or duplicate"):
        rx.receive(CMD)
    rx.receive(w.encode_hello(w.Hello(boot_id=77, role=1)))  # the peer restarted: counts start over
    assert rx.receive(CMD).seq == 17
    assert isinstance(rx.receive(encode("scan", signed=False)[0]), w.ScanFrame)


def test_forged_hello_resets_nothing_signed_hello_resets_sequences_only():
    rx = receiver_with_spec()
    assert isinstance(rx.receive(read_golden("scan")[0]), w.ScanFrame)
    forged = w.encode_hello(w.Hello(boot_id=666, role=1), w.Signer(b"not the key, guessing", w.ROBOT_TO_RUNTIME))
    for d in (forged, w.encode_hello(w.Hello(boot_id=666, role=1))):
        with pytest.raises((w.WireMacError, w.WireUnsignedError)):
            rx.receive(d)
    assert rx.peer_boot_id is None and rx.reassembler.last_seq == 42
    with pytest.raises(w.WireReplayError):  # the captured frame replayed
        rx.receive(read_golden("scan")[0])
    rx.receive(w.encode_hello(w.Hello(boot_id=77, role=1), signer()))  # the real robot restarted
    assert rx.peer_boot_id == 77 and rx.reassembler.last_seq is None
    with pytest.raises(w.WireReplayError):  # its old frame is still a replay: the window survived the HELLO
        rx.receive(read_golden("scan")[0])
    assert isinstance(rx.receive(w.encode_frame(golden_frame(0), signer=signer())[0]), w.ScanFrame)


def test_sequence_wraps_and_resyncs_after_silent_restart():
    assert w.seq_newer(0, 2**32 - 1) and not w.seq_newer(2**32 - 1, 0) and not w.seq_newer(5, 5)
    re = rxm.Reassembler({7: SPEC})
    assert re.add(w.decode(w.encode_frame(golden_frame(1000))[0])) is not None
    for s in range(w.RESYNC_AFTER - 1):
        with pytest.raises(w.WireSequenceError):
            re.add(w.decode(w.encode_frame(golden_frame(s))[0]))
    assert re.add(w.decode(w.encode_frame(golden_frame(99))[0])).seq == 99 and re.resyncs == 1
    frozen = w.encode_frame(golden_frame(50))[0]  # a frozen sender repeats one old frame: never a resync
    for _ in range(3 * w.RESYNC_AFTER):
        with pytest.raises(w.WireSequenceError):
            re.add(w.decode(frozen))
    assert re.resyncs == 1


def test_encode_refusals():
    with pytest.raises(w.WireNonFiniteError, match="encode COMMAND: omega must be finite"):
        w.encode_command(w.Command(0.0, np.nan, 1))
    with pytest.raises(w.WireEncodeError, match="answers_seq must fit an unsigned 32-bit field"):
        w.encode_command(w.Command(0.0, 0.0, -1))
    with pytest.raises(w.WireEncodeError, match=r"range_max must be <= 65\.532 m"):
        w.encode_description(w.Description(ScanSpec(4, range_max=100.0)))
    with pytest.raises(w.WireEncodeError, match="at most 342 per-beam angles"):
        w.encode_description(w.Description(ScanSpec(400, angles=tuple(np.zeros(400)))))
    bad = golden_frame()
    bad = dataclasses.replace(bad, odom_pose=np.array([0.0, np.nan, 0.0]))
    with pytest.raises(w.WireNonFiniteError, match="encode SCAN: odom_y must be finite"):
        w.encode_frame(bad)


# ---------------------------------------------------------------- chunk loss and reordering


def test_chunk_loss_and_reordering():
    dropped: list[w.WireError] = []
    re = rxm.Reassembler({7: SPEC}, max_pending=2, on_reject=dropped.append)
    f1, f2, f3, f4 = (w.encode_frame(golden_frame(s), 3) for s in (1, 2, 3, 4))
    re.add(w.decode(f1[0]))
    re.add(w.decode(f1[2]))  # f1's chunk 1 is lost
    assert [re.add(w.decode(d)) for d in (f2[2], f2[0])] == [None, None]
    assert re.add(w.decode(f2[1])).seq == 2  # completes: f1 can never be used, dropped
    assert re.incomplete == 1 and re.pending == 0
    assert isinstance(dropped[0], w.WireIncompleteError)
    assert "SCAN seq 1: chunk set dropped incomplete (frame 2 completed first), missing chunks [1] of 3" in str(
        dropped[0])
    with pytest.raises(w.WireSequenceError):  # f1's lost chunk arrives late
        re.add(w.decode(f1[1]))
    for d in (f3[1], f4[0], w.encode_frame(golden_frame(5), 3)[0]):  # 3 pending sets, max 2: the oldest goes
        re.add(w.decode(d))
    assert re.incomplete == 2 and "too many pending frames" in str(dropped[1]) and "SCAN seq 3" in str(dropped[1])
    assert [re.add(w.decode(d)) for d in (f4[2],)] == [None] and re.add(w.decode(f4[1])).seq == 4


# ---------------------------------------------------------------- fuzz


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200), golden=st.sampled_from(["hello", "description", "scan_chunks", "command"]),
       pos=st.integers(0, 2000), val=st.integers(0, 255), fix=st.booleans(), keyed=st.booleans())
def test_fuzz_only_wire_errors(data, golden, pos, val, fix, keyed):
    rx = receiver_with_spec() if keyed else rxm.Receiver()
    for d in [data, w.MAGIC + data, *read_golden(golden), *encode(golden, signed=False)]:
        b = bytearray(d)
        if b:
            b[pos % len(b)] = val
        fixed = (resign(b) if len(b) > 16 and b[6] & 1 else recrc(b)) if fix and len(b) >= 4 else bytes(b)
        for x in (bytes(b), fixed):
            try:
                rx.receive(x)
            except w.WireError as e:
                assert e.reason in w.REASONS and str(e)


# ---------------------------------------------------------------- the C header

C_TEST = r"""
#include <stdio.h>
#include <string.h>
#include "robonav_wire.h"
int main(void) {
    unsigned char buf[RNW_COMMAND_SIZE], key[32], link[32];
    for (int i = 0; i < 32; i++) key[i] = (unsigned char)i; /* the published TEST key */
    rnw_link_key(key, 32, "runtime->robot", link);
    rnw_header_t h = {{'R','N','A','V'}, RNW_VERSION, RNW_COMMAND, RNW_FLAG_SIGNED, 17, 3, 10.3,
                      sizeof(rnw_command_t), 0};
    rnw_command_t c = {42, 0, 0.4, -0.75};
    memcpy(buf, &h, sizeof h);
    memcpy(buf + sizeof h, &c, sizeof c);
    size_t n = rnw_sign(buf, sizeof h + sizeof c, 1765000000000300ull, link);
    for (size_t i = 0; i < n; i++) printf("%02x", buf[i]);
    h.flags = 0;
    memcpy(buf, &h, sizeof h);
    uint32_t crc = rnw_crc32(0, buf, sizeof h + sizeof c);
    memcpy(buf + sizeof h + sizeof c, &crc, 4);
    printf(" ");
    for (size_t i = 0; i < sizeof h + sizeof c + 4; i++) printf("%02x", buf[i]);
    printf(" %d", rnw_tag_equal(buf, buf) && !rnw_tag_equal(buf, buf + 1));
    double wd[] = {0.1, 0.5, 0.0, -1.0, 0.0 / 0.0, 1.0 / 0.0};
    for (int i = 0; i < 6; i++) printf(" %g", rnw_clamp_watchdog(wd[i], 0.3));
    printf("\n%zu %zu %zu %zu %zu %d %d\n", sizeof(rnw_header_t), sizeof(rnw_hello_t), sizeof(rnw_description_t),
           sizeof(rnw_scan_chunk_t), sizeof(rnw_command_t), RNW_MAX_CHUNK_BEAMS, RNW_MAX_DESCRIPTION_ANGLES);
    float r[] = {0.5f, 1.2344f, 1.0f / 0.0f, 0.0f / 0.0f, -1.0f / 0.0f, 3.5f, 0.0f, 70.0f, -0.1f};
    for (int i = 0; i < 9; i++) printf("%u ", rnw_range_code(r[i]));
    printf("\n");
    return 0;
}
"""


def test_c_header_matches_python(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (cc/gcc) on PATH: the header's sizes are checked where one is installed")
    (tmp_path / "t.c").write_text(C_TEST)
    subprocess.run([cc, "-std=c11", "-Wall", "-Werror", "-I", str(HEADER_H.parent), "-o", str(tmp_path / "t"),
                    str(tmp_path / "t.c")], check=True, capture_output=True)
    first, sizes, codes = subprocess.run([str(tmp_path / "t")], check=True, capture_output=True,
                                         text=True).stdout.splitlines()
    signed, unsigned, equal, *watchdogs = first.split()
    assert bytes.fromhex(signed) == read_golden("command")[0]  # SHA-256, HMAC, link key and tag in C, byte for byte
    assert bytes.fromhex(unsigned) == read_golden("command_unsigned")[0]
    assert equal == "1" and [float(x) for x in watchdogs] == [0.1, 0.3, 0.3, 0.3, 0.3, 0.3]
    assert [int(x) for x in sizes.split()] == [w.HEADER_SIZE, w.HELLO_PAYLOAD.size, w.DESCRIPTION_FIXED,
                                               w.CHUNK_FIXED, w.COMMAND_PAYLOAD.size, w.MAX_CHUNK_BEAMS,
                                               w.MAX_DESCRIPTION_ANGLES]
    assert [int(x) for x in codes.split()] == [*CODES, w.RANGE_NAN]
