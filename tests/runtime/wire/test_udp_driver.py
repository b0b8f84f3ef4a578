"""UdpDriver over real loopback sockets: a fake robot socket sends a description and frames (some bad); the driver
yields the right SensorFrames, counts the bad datagrams, never raises, and its commands echo the answered seq."""

from __future__ import annotations

import socket
import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from robonav.control.clock import ManualClock
from robonav.runtime import wire
from robonav.runtime.driver import Driver
from robonav.runtime.wire.udp_driver import UdpDriver, UdpDriverConfigError
from robonav.sensors.frame import ScanSpec, SensorFrame

sys.path.insert(0, str(Path(__file__).resolve().parent))
from udp_helpers import drain

SPEC = ScanSpec.evenly_spaced(1000, range_max=30.0, spec_id=3)  # two chunks per frame


def frame(seq: int, episode: int = 1) -> wire.ScanFrame:
    """Frame ``seq`` of a robot driving straight along x at 1 cm per frame (odometry pose on the wire)."""
    r = np.linspace(0.1, 29.0, SPEC.num_beams).astype(np.float32)
    r[::97] = np.inf
    return wire.ScanFrame(r, SPEC, np.array([0.01 * seq, 0.0, 0.0]), np.array([3.0, 1.0]), episode, 0.1 * seq, seq)


@pytest.fixture()
def rig():
    robot = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    robot.bind(("127.0.0.1", 0))
    robot.settimeout(2.0)
    clock = ManualClock()
    driver = UdpDriver(bind=("127.0.0.1", 0), robot=robot.getsockname(), watchdog=0.25, clock=clock)
    yield robot, driver, clock
    driver.close()
    robot.close()


def send(robot: socket.socket, driver: UdpDriver, datagrams) -> None:
    for d in datagrams:
        robot.sendto(d, driver.address)


def recv_msg(robot: socket.socket):
    return wire.decode(robot.recv(2048))


def test_frames_in_bad_counted_commands_echo_seq(rig):
    robot, driver, clock = rig
    assert isinstance(driver, Driver)
    hello = recv_msg(robot)  # the driver's HELLO carries the robot's watchdog
    assert isinstance(hello, wire.Hello) and hello.watchdog_s == 0.25 and hello.role == wire.ROLE_RUNTIME
    assert driver.latest_frame() is None

    good1 = wire.encode_frame(frame(10))
    send(robot, driver, good1)  # before the description: unknown description id, both chunks counted
    drain(driver, lambda d: d.rejected["unknown_description"] == 2)
    send(robot, driver, [wire.encode_description(wire.Description(SPEC, seq=0))])
    send(robot, driver, good1)
    f = drain(driver, lambda d: d.frames == 1)
    assert f is not None and (f.seq, f.episode_id, f.scan) == (10, 1, SPEC)
    assert isinstance(f, SensorFrame)
    np.testing.assert_allclose(f.odom_delta, [0.10, 0.0, 0.0])  # the first frame taken: the whole pose
    np.testing.assert_array_equal(f.ranges, wire.codes_to_ranges(wire.ranges_to_codes(frame(10).ranges)))

    corrupt = bytearray(wire.encode_frame(frame(11))[0])
    corrupt[100] ^= 0xFF
    bad = [bytes(corrupt), b"hello robot", b"X" * 64, good1[0], wire.encode_frame(frame(12))[0]]
    # crc, size, magic, old frame, chunk 0 of a frame whose chunk 1 is lost
    good13 = wire.encode_frame(frame(13))
    send(robot, driver, [*bad, *good13])
    f = drain(driver, lambda d: d.frames == 2)
    assert f.seq == 13 and driver.rejected["crc"] == 1 and driver.rejected["magic"] == 1
    np.testing.assert_allclose(f.odom_delta, [0.03, 0.0, 0.0], atol=1e-12)  # 11 and 12 lost: no motion lost
    assert driver.rejected["size"] == 1
    assert driver.rejected["sequence"] == 1 and driver.rejected["incomplete"] == 1  # 12 lost its second chunk
    assert driver.last_reason.startswith("incomplete: SCAN seq 12")
    assert driver.latest_frame() is f  # nothing new: the same frame again (the loop sees the same seq)

    clock.set(5.0)
    driver.publish(0.3, -0.2, f.seq)
    driver.stop()
    cmd, stop = recv_msg(robot), recv_msg(robot)
    assert cmd == wire.Command(0.3, -0.2, 13, False, seq=0, episode_id=1, stamp=5.0)
    assert stop == wire.Command(0.0, 0.0, 13, True, seq=1, episode_id=1, stamp=5.0)
    driver.publish(float("nan"), 0.0, 13)  # never a bad value on the wire: a stop goes instead
    assert recv_msg(robot).stop and driver.rejected["encode"] == 1
    assert driver.rejected["internal"] == 0 and driver.rejected["socket"] == 0


def test_fuzz_datagrams_never_raise(rig):
    robot, driver, _ = rig
    rng = np.random.default_rng(0)
    send(robot, driver, [wire.encode_description(wire.Description(SPEC))])
    sent = 0
    for i in range(300):
        good = wire.encode_frame(frame(100 + i))
        d = bytearray(good[i % 2])
        if i % 3 == 0:
            d = bytearray(rng.bytes(int(rng.integers(0, 1500))))
        else:
            d[int(rng.integers(len(d)))] ^= int(rng.integers(1, 256))
            if i % 3 == 1:  # valid CRC: the fault reaches the layout checks
                struct.pack_into("<I", d, len(d) - 4, zlib.crc32(bytes(d[:-4])))
        robot.sendto(bytes(d), driver.address)
        sent += 1
        if i % 50 == 0:
            driver.latest_frame()
    drain(driver, lambda d: d.received >= sent + 1, timeout=3.0)
    assert driver.received == sent + 1
    assert driver.rejected["internal"] == 0
    assert sum(driver.rejected.values()) + driver.frames + driver._rx.reassembler.pending >= sent - 10


def test_robot_address_learned_and_hello_answered():
    robot = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    robot.bind(("127.0.0.1", 0))
    robot.settimeout(2.0)
    with UdpDriver(watchdog=0.5) as driver:
        driver.publish(0.1, 0.0, 1)  # no robot known yet: nothing to send to, no error
        assert driver.sent == 0
        robot.sendto(wire.encode_hello(wire.Hello(99, wire.ROLE_ROBOT)), driver.address)
        drain(driver, lambda d: d.sent == 1)
        assert driver.robot == robot.getsockname()
        assert recv_msg(robot).watchdog_s == 0.5
    assert driver.closed and driver.latest_frame() is None
    robot.close()


def test_refuses_non_loopback_bind_and_bad_watchdog():
    with pytest.raises(UdpDriverConfigError, match=r"bind address '0\.0\.0\.0' is not loopback"):
        UdpDriver(bind=("0.0.0.0", 0))
    with pytest.raises(UdpDriverConfigError, match=r"bind address '0\.0\.0\.0' is not loopback"):
        UdpDriver(bind=("0.0.0.0", 0), key=bytes(32))  # a key alone does not open the network: allow_remote does
    with pytest.raises(UdpDriverConfigError, match="allow_remote is set but no wire key is configured"):
        UdpDriver(bind=("0.0.0.0", 0), allow_remote=True)
    for bad in (0.0, -1.0, 1.5, float("inf"), float("nan")):  # never more than the most a HELLO may ask
        with pytest.raises(UdpDriverConfigError, match=r"watchdog must be > 0 and <= 1\.0 s"):
            UdpDriver(watchdog=bad)


def test_recording_holds_every_datagram_and_take(tmp_path):
    from robonav.runtime.wire import recording as wirelog

    robot = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    robot.bind(("127.0.0.1", 0))
    log = tmp_path / "run.rnavlog"
    with UdpDriver(robot=robot.getsockname(), watchdog=0.5, clock=ManualClock(2.5), record=str(log),
                   record_meta={"model": "m"}) as driver:
        desc = wire.encode_description(wire.Description(SPEC))
        chunks = wire.encode_frame(frame(5))
        send(robot, driver, [desc, *chunks])
        f = drain(driver, lambda d: d.frames == 1)
        driver.publish(0.2, 0.1, f.seq)
    records, torn = wirelog.read_log(log)
    assert torn is None and records[0].meta() == {"model": "m"}
    kinds = [r.kind for r in records[1:]]
    assert kinds == [wirelog.TX, wirelog.RX, wirelog.RX, wirelog.RX, wirelog.TAKE, wirelog.TX]  # hello first
    assert [r.data for r in records[2:5]] == [desc, *chunks]
    assert records[5].take() == (1, 5)
    assert wire.decode(records[6].data) == wire.Command(0.2, 0.1, 5, False, seq=0, episode_id=1, stamp=2.5)
    assert {r.t for r in records[1:]} == {2.5}  # stamped on the driver's clock
    # A killed recorder leaves a torn last record: read back up to it, with a note.
    log.write_bytes(log.read_bytes()[:-7])
    records, torn = wirelog.read_log(log)
    assert len(records) == 6 and "torn TX record" in torn
    robot.close()
    (tmp_path / "other").write_bytes(b"not a log")
    with pytest.raises(wirelog.WireLogError, match="not a robonav wire recording"):
        wirelog.read_log(tmp_path / "other")


def test_frame_ready_takes_nothing(rig):
    """The loop's align waits on frame_ready(): it must not hand a frame out (nor advance the odometry deltas), so
    the frame taken at tick 0 carries the whole pose since the episode's start."""
    robot, driver, _ = rig
    send(robot, driver, [wire.encode_description(wire.Description(SPEC)), *wire.encode_frame(frame(20))])
    end = time.monotonic() + 2.0
    while not driver.frame_ready() and time.monotonic() < end:
        time.sleep(0.001)
    assert driver.frame_ready() and driver.frames == 1
    send(robot, driver, wire.encode_frame(frame(21)))  # a newer frame arrives before tick 0
    f = drain(driver, lambda d: d.frames == 2)
    assert f.seq == 21
    np.testing.assert_allclose(f.odom_delta, [0.21, 0.0, 0.0])  # from the origin: frame 20 was never taken
    assert not driver.frame_ready()


def test_recording_rotates_by_size_each_file_reads_alone(tmp_path):
    from robonav.runtime.wire import recording as wirelog

    log = tmp_path / "run.rnavlog"
    rec = wirelog.WireRecorder(log, {"model": "m"}, max_bytes=4096, keep=2)
    datagram = bytes(1000)
    for i in range(20):  # 20 kB of RX records through 4 kB files
        rec.write(wirelog.RX, float(i), datagram)
        rec.take(float(i), 1, i)
    rec.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.rnavlog", "run.rnavlog.1", "run.rnavlog.2"]
    assert rec.rotations >= 4
    for name in ("run.rnavlog.2", "run.rnavlog.1", "run.rnavlog"):
        records, torn = wirelog.read_log(tmp_path / name)  # magic and META first in every file
        assert torn is None and records[0].meta() == {"model": "m"}
        assert (tmp_path / name).stat().st_size <= 4096 + 1000 + 2 * wirelog.RECORD.size
    takes = [r.take()[1] for name in ("run.rnavlog.2", "run.rnavlog.1", "run.rnavlog")
             for r in wirelog.read_log(tmp_path / name)[0] if r.kind == wirelog.TAKE]
    assert takes == list(range(takes[0], 20))
