"""HIL runs: the runtime and the sim-robot as two real processes over real UDP sockets (and the fault proxy as a
third), on 3x3 mazes at 8x real time; one run per fault kind, each with its expected outcome."""

from __future__ import annotations

import dataclasses
import os
import shutil
import struct

import pytest

from robonav.hil.faults import FaultConfig
from robonav.hil.runner import HilSettings, junit_xml, run_hil
from robonav.runtime import wire
from robonav.runtime.wire.recording import MAGIC, RECORD, TX, read_log
from robonav.runtime.wire.replay import replay

BASE = HilSettings(episodes=2, suite="val-3x3", seed=3, clock="scaled", clock_factor=8.0, timeout=240.0)


def hil(tmp_path, record: bool = False, **faults) -> dict:
    settings = dataclasses.replace(BASE, faults=FaultConfig(seed=1, **faults), out=str(tmp_path / "hil"),
                                   record=record)
    report = run_hil(settings, "hil")
    pids = {p["pid"] for p in report["processes"]}
    assert os.getpid() not in pids and len(pids) == len(report["processes"]) >= 2  # real, separate processes
    return report


def passed(report: dict) -> None:
    failed = {k: c for k, c in report["verdict"]["checks"].items() if not c["ok"]}
    assert report["verdict"]["passed"], failed


def test_clean_run_records_and_replays_bit_for_bit(tmp_path):
    r = hil(tmp_path, record=True)
    passed(r)
    t = r["timing"]
    assert r["episodes"] == 2 and r["faults"]["runtime_rejected"] == {}
    assert t["frames_sent"] - 2 <= t["frames_received"] <= t["frames_sent"]  # loopback: at most the last in flight
    assert r["timing"]["deadline_misses"] is not None and r["timing"]["loop_p50_us"] > 0
    log = tmp_path / "hil" / "wire.rnavlog"
    key_file = tmp_path / "hil" / "wire.key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600" and r["faults"]["signed"]
    same = replay(log)  # no key: the recording is trusted
    assert same["identical"] and same["commands_logged"] > 50 and same["max_abs_diff"] == 0.0
    assert not same["verified"]
    verified = replay(log, key_file=str(key_file))  # with the run's key: every datagram verified as the driver did
    assert verified["identical"] and verified["verified"] and verified["commands_logged"] == same["commands_logged"]
    # Alter one logged command by one ulp of v (its tag left as it was): the replay must see it.
    data = bytearray(log.read_bytes())
    i = len(MAGIC)
    while True:
        kind, _, n = RECORD.unpack_from(data, i)
        start = i + RECORD.size
        if kind == TX and n == wire.COMMAND_SIZE and not wire.decode(bytes(data[start:start + n]),
                                                                      trust_signed=True).stop:
            off = start + wire.HEADER_SIZE + 8
            (v,) = struct.unpack_from("<d", data, off)
            struct.pack_into("<d", data, off, float(v + abs(v) * 2**-52 + 5e-324))
            break
        i = start + n
    bad = tmp_path / "altered.rnavlog"
    bad.write_bytes(bytes(data))
    diff = replay(bad)
    assert not diff["identical"] and diff["first_mismatch"]["index"] == 0 and 0 < diff["max_abs_diff"] < 1e-9
    checked = replay(bad, key_file=str(key_file))  # with the key the altered command fails its MAC: one missing
    assert not checked["identical"] and checked["commands_logged"] == same["commands_logged"] - 1
    junit = tmp_path / "hil.xml"
    junit_xml(r, junit)
    assert 'failures="0"' in junit.read_text() and 'name="none"' in junit.read_text()
    assert len(read_log(log)[0]) > 100


def test_loss(tmp_path):
    r = hil(tmp_path, loss=0.2)
    passed(r)
    t = r["timing"]
    assert t["frames_received"] < t["frames_sent"] and r["faults"]["proxy"]["to_runtime"]["dropped"] > 0


def test_delay_and_jitter(tmp_path):
    r = hil(tmp_path, delay=0.03, jitter=0.02)
    passed(r)
    assert r["timing"]["command_age_ms"]["p50"] >= 60.0  # 30 ms each way at least, on the robot's clock


def test_duplication_and_reordering(tmp_path):
    r = hil(tmp_path, duplicate=0.2, reorder=0.2)
    passed(r)
    # Duplicates are refused on both sides as replayed counters, frames overtaken by newer ones as old sequences.
    rt, rb = r["faults"]["runtime_rejected"], r["faults"]["robot_rejected"]
    assert rt.get("replay", 0) > 0 and rt.get("sequence", 0) > 0
    assert rb.get("replay", 0) + rb.get("sequence", 0) + r["faults"]["stale_dropped"] > 0


def test_corruption_is_counted_on_both_sides(tmp_path):
    r = hil(tmp_path, corrupt=0.1)
    passed(r)
    proxy = r["faults"]["proxy"]
    assert proxy["to_runtime"]["corrupted"] > 0 and proxy["to_robot"]["corrupted"] > 0
    # Every corrupted datagram that reached the runtime is counted (those the proxy sent before the runtime's
    # socket was up, during start-up, never arrived: delivered minus received).
    unreceived = proxy["to_runtime"]["delivered"] - r["faults"]["runtime_received"]
    assert unreceived >= 0
    assert sum(r["faults"]["runtime_rejected"].values()) + unreceived >= proxy["to_runtime"]["corrupted"]
    assert r["faults"]["robot_rejected"].get("mac", 0) > 0  # signed: a corruption is a bad MAC, never a command
    assert r["faults"]["runtime_rejected"].get("mac", 0) > 0


def test_frozen_sensor_stops_the_robot(tmp_path):
    r = hil(tmp_path, freeze_every=4.0, freeze_for=1.0)
    passed(r)
    assert r["faults"]["proxy"]["to_runtime"]["frozen"] > 0
    assert r["faults"]["runtime_rejected"].get("replay", 0) > 0  # the frozen frame's bytes are a replay
    assert r["faults"]["stale_ticks"] > 0 and r["timing"]["watchdog_stops"] > 0  # the runtime's watchdog acted


def test_nan_and_inf_bursts_and_nan_odometry(tmp_path):
    r = hil(tmp_path, nan_burst=0.3, nan_odometry=0.1)
    passed(r)
    proxy = r["faults"]["proxy"]["to_runtime"]
    assert proxy["nan_bursts"] > 0 and proxy["nan_odometry"] > 0
    assert r["faults"]["runtime_rejected"].get("non_finite", 0) > 0  # NaN odometry refused, never integrated


def test_runtime_killed_and_restarted_mid_episode(tmp_path):
    r = hil(tmp_path, kill_runtime_after=3.0)
    passed(r)
    assert r["faults"]["runtime_restarts"] == 1 and r["timing"]["watchdog_stops"] >= 1
    assert len(r["processes"]) == 3  # the killed runtime, its successor and the sim-robot
    assert r["timing"]["watchdog_stop_delay_ms"]["max"] <= 1e3 * (r["timing"]["watchdog"] + r["timing"]["period"])


@pytest.mark.skipif(shutil.which("true") is None, reason="needs a POSIX shell environment")
def test_cli_refuses_bad_settings(capsys):
    from robonav.cli import main

    assert main(["sim-robot", "--set", "robot.bind=nowhere"]) == 2
    assert "robot.bind: 'nowhere' is not host:port" in capsys.readouterr().err
    assert main(["hil", "--set", "hil.faults.loss=0.5"]) == 2
    assert "loss" in capsys.readouterr().err
