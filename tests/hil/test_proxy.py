"""FaultProxy over real loopback sockets: a robot socket and a runtime socket with the proxy between them. Each fault
alone with seeded draws (rates within binomial bounds, the effect checked on the bytes and by the wire's
decoder and Receiver), the transparent case, fuzzed input, and the `python -m robonav.hil.proxy` command."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robonav.control.clock import ManualClock, ScaledClock
from robonav.hil.faults import BURST_CODES, FaultConfig, FaultConfigError, reseal
from robonav.hil.proxy import REORDER_HOLD_S, FaultProxy, ProxyConfigError, main
from robonav.runtime import wire
from robonav.runtime.wire.receiver import Receiver
from robonav.sensors.frame import ScanSpec
from robonav.settings import SettingsError

ROOT = Path(__file__).resolve().parents[2]
SPEC = ScanSpec.evenly_spaced(300, range_max=4.0, spec_id=5)
CHUNK = 64  # 5 chunks per frame: bursts may cross chunk boundaries
DESC = wire.encode_description(wire.Description(SPEC))


def scan(seq: int, chunk_beams: int = CHUNK) -> list[bytes]:
    """The SCAN datagrams of frame ``seq``: finite ranges in [0.5, 1.5] m, so any reserved code is a fault."""
    r = (1.0 + 0.5 * np.sin(0.1 * np.arange(SPEC.num_beams) + seq)).astype(np.float32)
    # positional: built on the layout (3 odometry doubles, then the goal), not on the odometry field's name
    return wire.encode_frame(wire.ScanFrame(r, SPEC, np.array([0.1 * seq, 0.0, 0.01]), np.array([2.0, 1.0]), 1,
                                         0.1 * seq, seq), chunk_beams)


def command(seq: int) -> bytes:
    return wire.encode_command(wire.Command(0.2, 0.1, seq, seq=seq))


def seqs(datagrams: list[bytes]) -> list[int]:
    return [wire.decode(d).seq for d in datagrams]


def udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


def drain(sock: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(65536))
        except BlockingIOError:
            return out


class Rig:
    """Robot and runtime sockets with a FaultProxy between them, pumped from the test's thread."""

    def __init__(self, config: FaultConfig, clock=None, learn: bool = True, key: bytes | None = None) -> None:
        self.clock = clock if clock is not None else ManualClock()
        self.robot, self.runtime = udp(), udp()
        self.proxy = FaultProxy(config, self.runtime.getsockname(), None if learn else self.robot.getsockname(),
                                self.clock, key=key)

    def to_runtime(self, datagrams: list[bytes], batch: int = 50) -> list[bytes]:
        return self._through(self.robot, self.proxy.robot_side_address, self.runtime, "to_runtime", datagrams, batch)

    def to_robot(self, datagrams: list[bytes], batch: int = 50) -> list[bytes]:
        return self._through(self.runtime, self.proxy.runtime_side_address, self.robot, "to_robot", datagrams, batch)

    def _through(self, src, address, dst, direction, datagrams, batch) -> list[bytes]:
        out: list[bytes] = []
        for i in range(0, len(datagrams), batch):  # batches: never more in flight than the socket buffers hold
            part = datagrams[i:i + batch]
            want = self.proxy.counts[direction]["received"] + len(part)
            for d in part:
                src.sendto(d, address)
            self.pump(lambda want=want: self.proxy.counts[direction]["received"] >= want)
            out += drain(dst)  # loopback sendto queues at the receiver at once
        return out

    def pump(self, until, timeout: float = 5.0) -> None:
        end = time.monotonic() + timeout
        while not until():
            assert time.monotonic() < end, f"the proxy did not get there: {self.proxy.summary()}"
            self.proxy.poll(0.01)

    def flush(self, dst: socket.socket) -> list[bytes]:
        """Let held datagrams go (manual clock past REORDER_HOLD_S) and collect them."""
        self.clock.advance(REORDER_HOLD_S)
        self.proxy.poll(0.0)
        assert self.proxy.pending == 0
        return drain(dst)

    def close(self) -> None:
        self.proxy.close()
        self.robot.close()
        self.runtime.close()


@pytest.fixture()
def rig_for():
    rigs: list[Rig] = []

    def make(clock=None, learn: bool = True, key: bytes | None = None, **faults) -> Rig:
        rigs.append(Rig(FaultConfig(**faults), clock, learn, key))
        return rigs[-1]

    yield make
    for r in rigs:
        r.close()


# --- FaultConfig ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw, message", [
    ({"loss": 0.5}, r"FaultConfig\.loss must be a probability in 0 \.\. 0\.3, actual: 0\.5\."),
    ({"duplicate": -0.1}, r"FaultConfig\.duplicate must be a probability in 0 \.\. 1\.0, actual: -0\.1\."),
    ({"delay": -1}, r"FaultConfig\.delay must be >= 0 clock seconds, actual: -1\.0\."),
    ({"jitter": float("nan")}, r"FaultConfig\.jitter must be a finite number, actual: nan\."),
    ({"corrupt": True}, r"FaultConfig\.corrupt must be a finite number, actual: True\."),
    ({"nan_burst": "0.1"}, r"FaultConfig\.nan_burst must be a finite number, actual: '0\.1'\."),
    ({"kill_runtime_after": -5.0}, r"FaultConfig\.kill_runtime_after must be >= 0 clock seconds, actual: -5\.0"),
    ({"freeze_every": 1.0}, r"FaultConfig\.freeze_for must be in \(0, freeze_every = 1\.0\) clock seconds"),
    ({"freeze_every": 1.0, "freeze_for": 1.0}, r"freeze_for must be in \(0, freeze_every = 1\.0\).*actual: 1\.0"),
    ({"directions": "sideways"}, r"directions must be one of both, to_runtime, to_robot, actual: 'sideways'\."),
    ({"seed": 1.5}, r"FaultConfig\.seed must be an integer, actual: 1\.5\."),
])
def test_config_refuses_bad_values(kw, message):
    with pytest.raises(FaultConfigError, match=message):
        FaultConfig(**kw)


def test_config_from_dict_any_and_frozen():
    with pytest.raises(SettingsError, match=r"unknown key\(s\) \['los'\]; known keys: loss, delay, jitter, "
                                            r"duplicate, reorder, corrupt, freeze_every, freeze_for, nan_burst"):
        FaultConfig.from_dict({"los": 0.1})
    with pytest.raises(FaultConfigError, match="expected a mapping of fault settings, actual: \\[1\\]"):
        FaultConfig.from_dict([1])  # type: ignore[arg-type]
    c = FaultConfig.from_dict({"delay": 1, "seed": 3})
    assert c.delay == 1.0 and isinstance(c.delay, float) and c.seed == 3 and c.any
    assert FaultConfig.from_dict(c.to_dict()) == c
    assert not FaultConfig().any and not FaultConfig(seed=9, directions="to_robot", freeze_for=0.5).any
    for kw in ({"loss": 0.1}, {"jitter": 0.1}, {"duplicate": 0.1}, {"reorder": 0.1}, {"corrupt": 0.1},
               {"freeze_every": 1.0, "freeze_for": 0.5}, {"nan_burst": 0.1}, {"nan_odometry": 0.1},
               {"kill_runtime_after": 30.0}):
        assert FaultConfig(**kw).any, kw
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.loss = 0.2  # type: ignore[misc]


def test_proxy_refuses_non_loopback_bind():
    with pytest.raises(ProxyConfigError, match=r"robot_side address '0\.0\.0\.0' is not loopback.*allow_remote"):
        FaultProxy(FaultConfig(), ("127.0.0.1", 9), robot_side=("0.0.0.0", 0))


# --- no faults --------------------------------------------------------------------------------------------------

def test_transparent_both_ways_robot_learned(rig_for):
    rig = rig_for()
    assert rig.to_robot([command(0)]) == [] and rig.proxy.counts["to_robot"]["unroutable"] == 1  # robot unknown
    up = [wire.encode_hello(wire.Hello(7, wire.ROLE_ROBOT)), DESC, *scan(1), *scan(2), b"not a wire message", b""]
    assert rig.to_runtime(up) == up
    assert rig.proxy.robot == rig.robot.getsockname()
    down = [command(i) for i in range(5)] + [b"\x00" * 3]
    assert rig.to_robot(down) == down
    s = json.loads(json.dumps(rig.proxy.summary()))
    assert s["to_runtime"]["received"] == s["to_runtime"]["delivered"] == len(up)
    assert s["to_robot"]["received"] == len(down) + 1 and s["to_robot"]["delivered"] == len(down)
    faults = ("dropped", "duplicated", "reordered", "corrupted", "delayed", "frozen", "nan_bursts", "nan_odometry",
              "internal_errors")
    assert all(s[d][k] == 0 for d in ("to_runtime", "to_robot") for k in faults)
    assert s["robot"] == list(rig.robot.getsockname()) and s["config"] == FaultConfig().to_dict()
    rig.proxy.close()
    rig.proxy.close()
    assert rig.proxy.poll(0.0) == 0


# --- network faults ---------------------------------------------------------------------------------------------

def test_loss_rate_binomial_and_seeded(rig_for):
    sent = [command(i) for i in range(2000)]
    runs = [seqs(rig_for(loss=0.2, seed=seed).to_runtime(sent)) for seed in (7, 7, 8)]
    dropped = 2000 - len(runs[0])
    assert 320 <= dropped <= 480  # 400 +- 4.5 sd (sd = sqrt(2000 * 0.2 * 0.8) = 17.9)
    assert runs[0] == sorted(runs[0]) and runs[0] == runs[1] and runs[0] != runs[2]
    c = FaultConfig(loss=0.2, directions="to_robot")
    rig = rig_for(**c.to_dict())
    rig.to_runtime([command(0)])  # the robot is learned
    assert len(rig.to_runtime(sent[:300])) == 300 and len(rig.to_robot(sent)) < 1800


def test_duplicate_adjacent_copies(rig_for):
    rig = rig_for(duplicate=0.25, seed=1)
    got = seqs(rig.to_runtime([command(i) for i in range(500)]))
    dup = rig.proxy.counts["to_runtime"]["duplicated"]
    assert 80 <= dup <= 170  # 125 +- 4.6 sd
    assert len(got) == 500 + dup == rig.proxy.counts["to_runtime"]["delivered"]
    assert sorted(set(got)) == list(range(500)) and got == sorted(got)  # each copy right after its original
    assert sum(a == b for a, b in itertools.pairwise(got)) == dup


def test_reorder_swaps_with_the_next(rig_for):
    rig = rig_for(reorder=0.3, seed=2)
    got = seqs(rig.to_runtime([command(i) for i in range(500)]))
    got += seqs(rig.flush(rig.runtime))
    assert sorted(got) == list(range(500))
    swaps = [i for i in range(len(got) - 1) if got[i] > got[i + 1]]
    assert all(got[i] == got[i + 1] + 1 for i in swaps)  # only adjacent swaps: held back by exactly one
    assert len(swaps) == rig.proxy.counts["to_runtime"]["reordered"] > 60  # about 500 * 0.3 / 1.3
    # with no next datagram, a held one goes alone after REORDER_HOLD_S clock seconds
    lonely = rig_for(reorder=1.0)
    assert lonely.to_runtime([command(1)]) == [] and lonely.proxy.pending == 1
    assert seqs(lonely.flush(lonely.runtime)) == [1]


def test_delay_and_jitter_on_a_scaled_clock(rig_for):
    clock = ScaledClock(10.0)
    rig = rig_for(clock, delay=0.5, jitter=0.2, seed=3)
    rig.runtime.setblocking(True)
    rig.runtime.settimeout(2.0)
    stop = threading.Event()
    server = threading.Thread(target=rig.proxy.serve, args=(stop,))
    server.start()
    try:
        latency = []
        for i in range(15):
            t0 = clock.now()
            rig.robot.sendto(command(i), rig.proxy.robot_side_address)
            assert wire.decode(rig.runtime.recv(100)).seq == i
            latency.append(clock.now() - t0)
    finally:
        stop.set()
        server.join(2.0)
    lat = np.array(latency)
    assert lat.min() >= 0.5 and lat.max() <= 0.7 + 0.3, lat  # never early; at most 30 ms (real) late
    assert lat.max() - lat.min() > 0.03 and 0.55 < lat.mean() < 0.8, lat  # jitter is drawn per datagram
    assert rig.proxy.counts["to_runtime"]["delayed"] == 15 and rig.proxy.pending == 0


def test_waiting_proxy_sleeps(rig_for):
    rig = rig_for(ScaledClock(1.0), delay=100.0)
    rig.robot.sendto(command(1), rig.proxy.robot_side_address)
    stop = threading.Event()
    server = threading.Thread(target=rig.proxy.serve, args=(stop,))
    server.start()
    try:
        cpu, wall = time.process_time(), time.monotonic()
        time.sleep(0.4)  # one datagram due in 100 clock s: the proxy waits in select, no busy spin
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    finally:
        stop.set()
        server.join(2.0)
    assert not server.is_alive() and rig.proxy.pending == 1 and drain(rig.runtime) == []
    assert cpu < 0.1 * wall, (cpu, wall)


def test_corrupt_fails_the_crc_and_directions(rig_for):
    rig = rig_for(corrupt=1.0, seed=4)
    sent = [DESC, wire.encode_hello(wire.Hello(1, wire.ROLE_ROBOT))] + [d for s in range(40) for d in scan(s)]
    got = rig.to_runtime(sent)
    assert len(got) == len(sent) == rig.proxy.counts["to_runtime"]["corrupted"]
    for a, b in zip(sent, got):
        assert len(a) == len(b) and 1 <= sum(x != y for x, y in zip(a, b)) <= 3
        with pytest.raises(wire.WireError) as e:
            wire.decode(b)
        assert e.value.reason in ("crc", "size", "magic", "version", "type")  # the header may be hit first
    one_way = rig_for(corrupt=1.0, directions="to_robot")
    assert one_way.to_runtime(sent[:10]) == sent[:10]
    cmds = [command(i) for i in range(20)]
    assert all(a != b for a, b in zip(cmds, one_way.to_robot(cmds)))


KEY = bytes(range(32))  # the published test key
R2T, T2R = wire.link_key(KEY, wire.ROBOT_TO_RUNTIME), wire.link_key(KEY, wire.RUNTIME_TO_ROBOT)


def test_signed_pass_untouched_corruption_fails_the_mac(rig_for):
    robot, runtime = wire.Signer(KEY, wire.ROBOT_TO_RUNTIME), wire.Signer(KEY, wire.RUNTIME_TO_ROBOT)
    sent = [wire.encode_description(wire.Description(SPEC), robot)]
    sent += [d for s in range(30) for d in wire.encode_frame(wire.ScanFrame(
        np.full(SPEC.num_beams, 2.0, np.float32), SPEC, np.zeros(3), np.zeros(2), 1, 0.1 * s, s), CHUNK, robot)]
    clean = rig_for(key=KEY)
    assert clean.to_runtime(sent) == sent  # forwarded byte for byte
    rx = Receiver(key=R2T)
    assert sum(isinstance(rx.receive(d), wire.ScanFrame) for d in sent) == 30
    rig = rig_for(corrupt=1.0, seed=4, key=KEY)  # the proxy holds the key, yet never re-signs a corruption
    cmds = [wire.encode_command(wire.Command(0.2, 0.1, i, seq=i), runtime) for i in range(30)]
    for direction, datagrams, key in (("to_runtime", sent, R2T), ("to_robot", cmds, T2R)):
        got = rig.to_runtime(datagrams) if direction == "to_runtime" else rig.to_robot(datagrams)
        assert len(got) == len(datagrams) == rig.proxy.counts[direction]["corrupted"]
        reasons = []
        for b in got:
            with pytest.raises(wire.WireError) as e:
                Receiver(key=key).receive(b)
            reasons.append(e.value.reason)
        assert set(reasons) <= {"mac", "size", "magic", "version", "type"} and reasons.count("mac") > len(got) // 2


def test_sensor_faults_re_signed_with_the_key_reach_the_checks(rig_for):
    robot = wire.Signer(KEY, wire.ROBOT_TO_RUNTIME)
    sent = [d for s in range(20) for d in wire.encode_frame(wire.ScanFrame(
        np.full(SPEC.num_beams, 2.0, np.float32), SPEC, np.zeros(3), np.zeros(2), 1, 0.1 * s, s), CHUNK, robot)]
    rig = rig_for(nan_burst=1.0, nan_odometry=0.3, seed=3, key=KEY)
    got = rig.to_runtime(sent)
    reasons = {"ok": 0, "non_finite": 0}
    burst_beams = 0
    for b in got:  # a faulty sensor in front of the signing: valid tags, the receiver's own checks decide
        try:
            c = wire.decode(b, R2T)
        except wire.WireNonFiniteError:
            reasons["non_finite"] += 1
            continue
        reasons["ok"] += 1
        assert np.isin(c.codes, [2000, *BURST_CODES]).all()  # 2.0 m or a burst code, nothing else
        burst_beams += int((c.codes != 2000).sum())
    assert reasons["ok"] > 0 and burst_beams >= 5  # bursts went through, re-signed
    assert reasons["non_finite"] == 5 * rig.proxy.counts["to_runtime"]["nan_odometry"] > 0  # 5 chunks a frame
    no_key = rig_for(nan_burst=1.0, seed=3)  # without the key the proxy cannot re-sign: the MAC refuses them
    changed = 0
    for a, b in zip(sent, no_key.to_runtime(sent)):
        if a != b:
            changed += 1
            with pytest.raises(wire.WireMacError):
                wire.decode(b, R2T)
    assert changed >= 20  # every frame got a burst, in at least one of its chunks


# --- sensor faults ----------------------------------------------------------------------------------------------

def frame_codes(datagrams: list[bytes]) -> dict[int, np.ndarray]:
    """Decode every SCAN datagram (each must be valid) and join each frame's codes."""
    frames: dict[int, dict[int, np.ndarray]] = {}
    for d in datagrams:
        c = wire.decode(d)
        if isinstance(c, wire.ScanChunk):
            frames.setdefault(c.seq, {})[c.chunk_index] = c.codes
    return {s: np.concatenate([ch[i] for i in sorted(ch)]) for s, ch in frames.items()}


def test_nan_burst_one_run_per_frame(rig_for):
    rig = rig_for(nan_burst=1.0, seed=5)
    sent = [DESC, command(0)] + [d for s in range(40) for d in scan(s)]
    got = rig.to_runtime(sent)
    assert got[:2] == sent[:2]  # only SCAN datagrams are touched
    clean, hit = frame_codes(sent), frame_codes(got)
    kinds, crossing = set(), 0
    for s in range(40):
        bad = np.flatnonzero(hit[s] != clean[s])
        assert 5 <= len(bad) <= 40 and np.all(np.diff(bad) == 1), (s, bad)  # one consecutive run
        assert len(set(hit[s][bad].tolist())) == 1 and int(hit[s][bad[0]]) in BURST_CODES
        kinds.add(int(hit[s][bad[0]]))
        crossing += bad[0] // CHUNK != bad[-1] // CHUNK
    assert len(kinds) >= 2 and crossing >= 1 and rig.proxy.counts["to_runtime"]["nan_bursts"] == 40
    half = rig_for(nan_burst=0.5, seed=6)
    hit = frame_codes(half.to_runtime([d for s in range(100) for d in scan(s)]))
    with_burst = sum(bool(np.any(hit[s] != clean.get(s, frame_codes(scan(s))[s]))) for s in range(100))
    assert with_burst == half.proxy.counts["to_runtime"]["nan_bursts"] and 25 <= with_burst <= 75


def test_nan_odometry_rejected_as_non_finite(rig_for):
    rig = rig_for(nan_odometry=0.5, seed=7)
    sent = [scan(s, 100) for s in range(60)]  # 3 chunks per frame
    got = rig.to_runtime([d for f in sent for d in f])
    bad_frames = 0
    for s, f in enumerate(sent):
        outcomes = []
        for a, b in zip(f, got[3 * s:3 * s + 3]):
            try:
                wire.decode(b)
                outcomes.append(a == b)
            except wire.WireNonFiniteError as e:
                assert "odom" in str(e)
                changed = {i for i in range(len(a)) if a[i] != b[i]}
                odom_x, crc = set(range(wire.HEADER_SIZE + 16, wire.HEADER_SIZE + 24)), set(range(len(a) - 4, len(a)))
                assert changed & odom_x and changed <= odom_x | crc  # odometry x and the CRC, nothing else
                outcomes.append(False)
        assert len(set(outcomes)) == 1, (s, outcomes)  # every chunk of a frame alike
        bad_frames += not outcomes[0]
    assert bad_frames == rig.proxy.counts["to_runtime"]["nan_odometry"] and 15 <= bad_frames <= 45


def test_freeze_resends_the_last_frame_and_receiver_drops_it(rig_for):
    clock = ManualClock()
    rig = rig_for(clock, freeze_every=1.0, freeze_for=0.3)
    rx = Receiver()
    rx.receive(rig.to_runtime([DESC])[0])
    frames, old = [], 0
    for k in range(25):  # frame k at 0.1 k + 0.05 clock s: windows [1.0, 1.3) and [2.0, 2.3) hold 3 frames each
        clock.set(0.1 * k + 0.05)
        got = rig.to_runtime(scan(k, 200))  # 2 chunks per frame
        frozen_to = {10: 9, 11: 9, 12: 9, 20: 19, 21: 19, 22: 19}.get(k)
        assert got == scan(k if frozen_to is None else frozen_to, 200), k
        for d in got:
            try:
                f = rx.receive(d)
                frames += [f.seq] if f is not None else []
            except wire.WireSequenceError:
                old += 1
    assert frames == [k for k in range(25) if k not in (10, 11, 12, 20, 21, 22)]
    assert old == 12 == rig.proxy.counts["to_runtime"]["frozen"]


# --- determinism and fuzz ---------------------------------------------------------------------------------------

ALL = {"loss": 0.1, "duplicate": 0.2, "reorder": 0.2, "corrupt": 0.2, "nan_burst": 0.3, "nan_odometry": 0.3}


def test_same_seed_same_faults(rig_for):
    traffic = [DESC] + [d for s in range(60) for d in (*scan(s), command(s))]
    a, b, c = (rig_for(seed=seed, **ALL) for seed in (11, 11, 12))
    out = [r.to_runtime(traffic) + r.flush(r.runtime) for r in (a, b, c)]
    assert out[0] == out[1] and out[0] != out[2]
    assert a.proxy.counts == b.proxy.counts != c.proxy.counts


@pytest.fixture(scope="module")
def fuzz_rig():
    rig = Rig(FaultConfig(delay=0.05, jitter=0.05, freeze_every=0.5, freeze_for=0.2, seed=13, **ALL))
    rig.to_runtime([DESC])
    yield rig
    rig.close()


def mutated_scan(data: st.DataObject) -> bytes:
    """A valid SCAN chunk with a slice overwritten, CRC rewritten or not: reaches the layout checks."""
    buf = bytearray(scan(data.draw(st.integers(0, 50)), data.draw(st.integers(1, 400)))[0])
    at = data.draw(st.integers(0, len(buf) - 1))
    junk = data.draw(st.binary(min_size=1, max_size=16))
    buf[at:at + len(junk)] = junk
    if data.draw(st.booleans()):
        reseal(buf)
    return bytes(buf)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_never_raises(fuzz_rig, data):
    rig = fuzz_rig
    sent = [data.draw(st.binary(max_size=1500)) if data.draw(st.booleans()) else mutated_scan(data)
            for _ in range(data.draw(st.integers(1, 8)))]
    rig.clock.advance(data.draw(st.floats(0.0, 0.3)))
    rig.to_runtime(sent)
    rig.to_robot(sent)
    rig.clock.advance(0.2)
    rig.proxy.poll(0.0)
    drain(rig.runtime), drain(rig.robot)
    assert all(rig.proxy.counts[d]["internal_errors"] == 0 for d in ("to_runtime", "to_robot"))


# --- the command ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("as_json, sig", [(True, signal.SIGTERM), (False, signal.SIGINT)])
def test_command_serves_until_signalled(as_json, sig):
    robot, runtime = udp(), udp()
    robot.settimeout(5.0), runtime.settimeout(5.0)
    robot_address = robot.getsockname()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "robonav.hil.proxy", "--runtime", f"127.0.0.1:{runtime.getsockname()[1]}",
            "--faults", '{"seed": 1, "delay": 0.01}', "--clock", "scaled", "--clock-factor", "2"]
    proc = subprocess.Popen(argv + (["--json"] if as_json else []), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(proc.stdout.readline())
        robot.sendto(DESC, tuple(first["robot_side"]))
        assert runtime.recv(2048) == DESC
        runtime.sendto(command(3), tuple(first["runtime_side"]))
        assert robot.recv(2048) == command(3)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
        robot.close()
        runtime.close()
    assert proc.returncode == 0, err
    last = out.strip().splitlines()[-1]
    if as_json:
        s = json.loads(last)
        assert s["robot"] == list(robot_address) and s["config"]["delay"] == 0.01
        assert [s[d]["received"] for d in ("to_runtime", "to_robot")] == [1, 1]
        assert [s[d]["delivered"] for d in ("to_runtime", "to_robot")] == [1, 1]
    else:
        assert last.split() == ["internal_errors", "0", "0"] and "delivered" in out and '"delay": 0.01' in out


@pytest.mark.parametrize("argv, message", [
    (["--runtime", "127.0.0.1:9", "--faults", '{"lossy": 1}'], r"unknown key\(s\) \['lossy'\]; known keys: loss,"),
    (["--runtime", "127.0.0.1:9", "--faults", '{"loss": 0.9}'], r"loss must be a probability in 0 \.\. 0\.3"),
    (["--runtime", "127.0.0.1:9", "--faults", "{oops"], r"argument --faults: not valid JSON"),
    (["--runtime", "127.0.0.1:9", "--faults", "[1]"], r"expected a JSON object of fault settings"),
    (["--runtime", "nohost", "--faults", "{}"], r"argument --runtime: expected HOST:PORT"),
    (["--faults", "{}"], r"the following arguments are required: --runtime"),
    (["--runtime", "127.0.0.1:9", "--faults", "{}", "--robot-side", "0.0.0.0:0"], r"is not loopback"),
    (["--runtime", "127.0.0.1:9", "--faults", "{}", "--clock-factor", "3"], r"a real clock runs at factor 1\.0"),
])
def test_command_refuses_bad_arguments(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert re.search(message, err.strip().splitlines()[-1]), err
