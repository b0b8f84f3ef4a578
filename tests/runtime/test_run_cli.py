"""`robonav run` and `robonav selftest` as a robot runs them: a real process, real signals, recorded episodes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loop_toys as toys

from robonav.runtime.backends.onnx_backend import OnnxBackend
from robonav.runtime.selftest import (
    RecordingError,
    SelftestRecording,
    format_result,
    record,
    recording_path,
    run_selftest,
)

ROBONAV = [sys.executable, "-m", "robonav.cli"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return toys.write_toy(tmp_path_factory.mktemp("toy"))


def _recording(model, steps=300):
    """``steps`` ticks of 3x3 validation episodes (100 ticks each) driven by the loop on the simulated robot."""
    import dataclasses

    from robonav.deploy.parity import sim_config
    from robonav.eval.episodes import make_episodes
    from robonav.sim.driver import SimDriver

    with OnnxBackend(model) as reference:
        config = dataclasses.replace(sim_config(reference.sidecar), time_limit_factor=0.0, time_limit_extra=9.95)
        driver = SimDriver(config, make_episodes("val-3x3", 4, 0))  # 100 ticks per episode
        try:
            return record(reference, driver, steps, suite="val-3x3")
        finally:
            driver.close()


def test_sigterm_ends_robonav_run_with_a_stop_sent_and_exit_code_0(model, tmp_path):
    telemetry = tmp_path / "run.jsonl"
    proc = subprocess.Popen([*ROBONAV, "run", "--launch", "robot", "--backend", "ort", "--set", f"model={model}",
                             "--set", f"telemetry={telemetry}", "--ticks", "1000000", "--json"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # until the loop has its signal handlers in place
            if "robonav run: running" in line:
                break
        time.sleep(0.45)  # a few 0.1 s ticks on the real clock
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["exit_reason"] == "SIGTERM" and result["ticks"] >= 3
    assert result["stops"] == 1 and result["sim_stops"] == 1  # the stop reached the (simulated) robot
    assert result["sim_commands"] == result["frames"] == result["ticks"]
    end = json.loads(telemetry.read_text().splitlines()[-1])
    assert end["event"] == "end" and end["exit_reason"] == "SIGTERM"


def test_run_refuses_an_unknown_driver_in_one_line(model, tmp_path):
    out = subprocess.run([*ROBONAV, "run", "--set", f"model={model}", "--set", "driver=can"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("robonav run: ")
    assert "run.driver must be one of ['sim', 'udp', 'ros2'], got 'can'" in out.stderr


def test_selftest_records_on_a_dev_machine_and_passes(model, tmp_path):
    out = subprocess.run([*ROBONAV, "selftest", "--backend", "ort", "--model", str(model), "--steps", "150",
                          "--mazes", "val-3x3"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("PASS  selftest of OnnxBackend(toy.onnx) (fp32) on 150 recorded ticks")
    assert [line.split()[0] for line in lines[1:]] == ["PASS", "PASS", "PASS"]


def test_a_recording_survives_save_and_load_and_replays_exactly(model, tmp_path):
    rec = _recording(model)
    assert rec.steps == 300 and int(rec.starts.sum()) == 3 and rec.meta["episodes"] == 3
    assert (rec.command[rec.starts] == 0.0).all()  # the fed-back command restarts at rest
    path = rec.save(recording_path(tmp_path / "toy.onnx"))
    assert path.name == "toy.selftest.npz"
    back = SelftestRecording.load(path)
    for name in ("ranges", "odom", "goal", "episode", "seq", "command", "obs", "actions"):
        np.testing.assert_array_equal(getattr(back, name), getattr(rec, name))
    assert back.scan == rec.scan and back.meta["model_sha256"] == rec.meta["model_sha256"]
    with OnnxBackend(model) as backend:
        result = run_selftest(backend, back)
    assert result["passed"] and result["preprocessor_max_abs_error"] == 0.0 and result["parity_max_abs_error"] == 0.0
    assert result["steps"] == 300 and result["episodes"] == 3
    assert result["timing_tick_p99_us"] <= result["timing_budget_us"] == pytest.approx(50_000.0)
    assert format_result(result).startswith("PASS")


def test_each_check_fails_on_its_own_fault(model):
    rec = _recording(model, steps=120)
    with OnnxBackend(model) as backend:
        actions, rec.actions = rec.actions, rec.actions + np.float32(2e-4)  # a backend 2e-4 off
        r = run_selftest(backend, rec)
        assert not r["passed"] and not r["parity_passed"] and r["preprocessor_passed"] and r["timing_passed"]
        assert r["parity_max_abs_error"] == pytest.approx(2e-4, rel=1e-2)
        assert run_selftest(backend, rec, tolerance=3e-4)["parity_passed"]  # --tolerance widens it
        rec.actions = actions
        rec.obs = rec.obs.copy()
        rec.obs[50, 3] += 1e-3  # an observation the target's Preprocessor does not reproduce
        r = run_selftest(backend, rec)
        assert not r["preprocessor_passed"] and r["preprocessor_max_abs_error"] == pytest.approx(1e-3, rel=1e-3)
        rec.obs[50, 3] -= 1e-3
        r = run_selftest(backend, rec, budget=1e-6)  # a 0.1 us budget: no machine makes it
        assert r["preprocessor_passed"] and r["parity_passed"] and not r["timing_passed"] and not r["passed"]
        assert format_result(r).splitlines()[3].startswith("  FAIL  timing")


def test_a_recording_for_another_observation_layout_is_refused(model, tmp_path):
    rec = _recording(model, steps=20)
    rec.meta["observation_spec"] = {**rec.meta["observation_spec"], "size": 1}
    with OnnxBackend(model) as backend, pytest.raises(RecordingError, match="another observation layout"):
        run_selftest(backend, rec)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(RecordingError, match=r"junk.npz: not a readable selftest recording"):
        SelftestRecording.load(tmp_path / "junk.npz")
