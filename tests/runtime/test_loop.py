"""The fixed-step loop: parity with stepping by hand, resets on an episode change, deadline accounting, the
watchdog, the safety layer, signals, telemetry, no allocation or garbage collection, and its import floor.

Frames come from loop_toys (synthetic, numpy only) through a ReplayDriver; the ManualClock makes every schedule
exact, so counts are pinned by hand.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loop_toys as toys

from robonav.control.clock import ManualClock, RealClock, ScaledClock
from robonav.control.safety import SafetyConfig, SafetyLayer, safety_reference
from robonav.runtime.backends.onnx_backend import OnnxBackend
from robonav.runtime.driver import Driver, ReplayDriver
from robonav.runtime.loop import (
    STAGES,
    ControlLoop,
    LoopConfig,
    LoopConfigError,
    LoopSetupError,
    PeriodError,
)
from robonav.sensors.preprocessor import Preprocessor
from robonav.sensors.spec import ObservationSpec, PreprocessorConfig

P = 0.1  # the toy's control period (s)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return toys.write_toy(tmp_path_factory.mktemp("toy"))


def run(backend, frames, clock=None, driver=None, **config):
    """Run a loop over ``frames`` (default: as many ticks as frames); returns (summary, driver, loop)."""
    driver = driver or ReplayDriver(frames)
    config = {"ticks": len(frames), "handle_signals": False, **config}
    loop = ControlLoop.for_backend(backend, driver, clock or ManualClock(), LoopConfig.for_model(backend.sidecar,
                                                                                                **config))
    return loop.run(), driver, loop


def by_hand(backend, frames):
    """What the loop should publish, computed step by step: (safe commands [T, 2], raw actions [T, 2])."""
    pre, safety = Preprocessor(toys.SPEC), SafetyLayer(SafetyConfig(), 1)
    last, episode = np.zeros(2), None
    safe, raw = [], []
    for f in frames:
        if f.episode_id != episode:
            episode = f.episode_id
            backend.reset()
            safety.reset()
            last = np.zeros(2)
        action = backend.step(pre(f, last))
        last = safety.filter(action[None].astype(np.float64), f.ranges[None], f.scan.beam_angles(), P)[0]
        safe.append(last)
        raw.append(action.copy())
    return np.array(safe), np.array(raw)


def test_loop_publishes_what_stepping_the_backend_by_hand_gives(model):
    frames = toys.frames(40) + toys.frames(30, episode_id=2, seed=1)
    with OnnxBackend(model) as a, OnnxBackend(model) as b:
        summary, driver, _ = run(a, frames)
        want, raw = by_hand(b, frames)
    np.testing.assert_array_equal(driver.commands, want)
    log = driver.log
    assert log[:-1, 2].tolist() == [f.seq for f in frames]  # each command answers its frame
    assert log[-1].tolist() == [0.0, 0.0, -1.0, 1.0]  # and the run ends with a stop
    assert (summary.frames, summary.episodes, summary.deadline_misses, summary.stops) == (70, 2, 0, 1)
    assert not np.allclose(raw, want)  # the safety layer changed something: it is really in the path
    # First tick: v = obs @ W[:, 0] (> 0.1 here) is cut to accel_max * period = 0.1 m/s from rest.
    assert raw[0, 0] > 0.1 and want[0, 0] == pytest.approx(0.1)


def test_episode_change_resets_hidden_state_memories_and_odometry_together(model):
    first, second = toys.frames(25, episode_id=7), toys.frames(25, episode_id=8, seed=3)
    with OnnxBackend(model) as backend:
        _, both, _ = run(backend, first + second)
        _, alone, _ = run(backend, second)
        # The same frames without the id change: state, memories, pose and command carry over.
        relabelled = [type(f)(f.ranges, f.scan, f.odom_delta, f.goal, episode_id=7, seq=25 + f.seq) for f in second]
        _, carried, _ = run(backend, first + relabelled)
    np.testing.assert_array_equal(both.commands[25:], alone.commands)  # nothing of episode 7 survives
    assert np.abs(carried.commands[25:] - alone.commands).max() > 1e-3  # ...which a missed reset would show


class SlowToy(toys.NumpyToy):
    """The numpy toy whose step on given ticks moves the manual clock on: an injected slow step."""

    def __init__(self, clock: ManualClock, delays: dict[int, float]) -> None:
        super().__init__()
        self.clock, self.delays, self.steps = clock, delays, -1  # -1: the loop's warm-up step

    def _step(self, obs):
        out = super()._step(obs)
        self.clock.advance(self.delays.get(self.steps, 0.0))
        self.steps += 1
        return out


def test_deadline_misses_and_skipped_slots_are_counted_under_injected_slow_steps():
    clock = ManualClock()
    # Tick 5 takes half a period (on time), tick 10 1.5 periods (a miss; tick 11 starts 0.5 late, no skip),
    # tick 20 2.5 periods (a miss, slot 21 skipped), tick 30 3.2 periods (a miss, slots 31 and 32 skipped).
    backend = SlowToy(clock, {5: 0.5 * P, 10: 1.5 * P, 20: 2.5 * P, 30: 3.2 * P}).open()
    summary, driver, _ = run(backend, toys.frames(60), clock, ticks=40)
    assert (summary.ticks, summary.deadline_misses, summary.skipped_ticks) == (40, 3, 3)
    assert summary.frames == driver.published == 40
    assert summary.latency["wake"]["max_us"] == pytest.approx(0.5 * P * 1e6)  # tick 11 and 21 woke 0.5 P late


def test_deadline_accounting_on_a_scaled_clock_with_a_real_slow_step():
    factor = 20.0  # 0.1 s clock periods last 5 ms

    class Sleepy(toys.NumpyToy):
        steps = -1

        def _step(self, obs):
            self.steps += 1
            if self.steps == 10:
                time.sleep(3.5 * P / factor)  # 3.5 periods
            return super()._step(obs)

    summary, _, _ = run(Sleepy().open(), toys.frames(30), ScaledClock(factor), ticks=25)
    assert summary.ticks == 25
    assert summary.deadline_misses >= 1 and summary.skipped_ticks >= 2  # a loaded machine may add more


def test_watchdog_sends_stops_when_frames_go_stale_and_the_robot_restarts_from_rest(model, tmp_path):
    f = toys.frames(10)
    feed = f[:5] + [None] * 6 + f[5:]  # ticks 5..10 see no new frame
    with OnnxBackend(model) as backend:
        summary, driver, _ = run(backend, feed, watchdog=0.25, telemetry=str(tmp_path / "t.jsonl"))
    # t = 0.5, 0.6: 0.1 and 0.2 s since the frame of tick 4: held; t = 0.7 .. 1.0: stale, a stop each tick.
    kinds = driver.log[:, 3].tolist()
    assert kinds == [0] * 5 + [1] * 4 + [0] * 5 + [1]
    assert (summary.held_ticks, summary.stale_ticks, summary.stops, summary.frames) == (2, 4, 5, 10)
    before, after = driver.log[4, 0], driver.log[9, 0]
    assert before > 0.2 and after == pytest.approx(0.1)  # after the stop it ramps up from rest again
    events = [json.loads(line)["event"] for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert events.count("watchdog") == 1 and events.count("frames_back") == 1


def test_no_frame_at_all_means_stops_after_the_watchdog_and_nothing_else(model):
    with OnnxBackend(model) as backend:
        summary, driver, _ = run(backend, [None], ticks=10, watchdog=0.35)
    assert driver.published == 0
    assert (summary.held_ticks, summary.stale_ticks, summary.stops) == (4, 6, 7)  # t <= 0.35 s held


def test_safety_layer_limits_every_command(model):
    wall = toys.frames(30, wall_ahead=0.2)  # clearance ahead 0.2 - 0.21 < 0: no forward motion at all

    class Loud(toys.NumpyToy):
        def _step(self, obs):
            return 40.0 * super()._step(obs)  # far beyond every limit

    backend = Loud().open()
    _, free, _ = run(backend, toys.frames(30))
    cmds = free.commands
    cfg = SafetyConfig()
    assert np.abs(cmds[:, 0]).max() <= cfg.v_max and np.abs(cmds[:, 1]).max() <= cfg.omega_max
    steps = np.diff(np.vstack([[0.0, 0.0], cmds]), axis=0)
    assert np.abs(steps[:, 0]).max() <= cfg.accel_max * P + 1e-12
    assert np.abs(steps[:, 1]).max() <= cfg.alpha_max * P + 1e-12
    assert cmds[:, 0].max() == pytest.approx(cfg.v_max)  # and it reaches them
    # The reference of robonav.control, fed the loop's raw actions, gives the very commands published.
    _, blocked, _ = run(backend, wall)
    ref = np.zeros(2)
    pre = Preprocessor(toys.SPEC)
    backend.reset()
    for k, f in enumerate(wall):
        action = backend.step(pre(f, ref)).astype(np.float64)
        ref = safety_reference(cfg, ref[None], action[None], f.ranges[None], f.scan.beam_angles(), P)[0]
        np.testing.assert_allclose(blocked.commands[k], ref, atol=1e-12)
    assert blocked.commands[:, 0].max() <= 0.0  # never toward the wall...
    assert np.abs(blocked.commands[:, 1]).max() > 0.5  # ...while turning is never limited by it


def test_a_bad_frame_is_answered_with_a_stop_at_once(model):
    f = toys.frames(6)
    f[3].goal = np.array([np.nan, 1.0])
    with OnnxBackend(model) as backend:
        summary, driver, _ = run(backend, f)
    assert summary.bad_frames == 1 and summary.frames == 5
    assert driver.log[:, 3].tolist() == [0, 0, 0, 1, 0, 0, 1]  # the stop at tick 3, the last at shutdown
    assert 3 not in driver.log[:, 2].tolist()
    assert driver.log[4, 0] == pytest.approx(0.1)  # after the stop it ramps up from rest (accel 1 m/s^2 * 0.1 s)


@pytest.mark.parametrize("ranges", [np.zeros(0, np.float32), np.full(63, np.inf, np.float32)])
def test_a_scan_with_no_beams_or_not_fitting_its_description_stops_the_robot(model, ranges):
    f = toys.frames(4)
    f[2].ranges = ranges
    with OnnxBackend(model) as backend:
        summary, driver, _ = run(backend, f)
    assert summary.bad_frames == 1 and driver.log[:, 3].tolist() == [0, 0, 1, 0, 1]


def test_an_all_nan_scan_stops_forward_motion_in_the_loop(model):
    f = toys.frames(8)
    for frame in f[4:]:
        frame.ranges = np.full_like(frame.ranges, np.nan)  # the lidar goes blind but keeps publishing
    with OnnxBackend(model) as backend:
        summary, driver, _ = run(backend, f)
    cmds = driver.commands
    assert summary.frames == 8 and (cmds[:4, 0] > 0.0).all()
    assert (cmds[4:, 0] == 0.0).all() and (cmds[4:, 1] != 0.0).all()  # stopped at once; turning still allowed


def test_a_period_other_than_the_models_is_refused_outside_stress_mode(model):
    with OnnxBackend(model) as backend:
        with pytest.raises(PeriodError, match=r"period 0.05 s differs from the model's control period 0.1 s .*"
                                              r"use the stress mode \(--stress HZ\)"):
            ControlLoop.for_backend(backend, ReplayDriver(toys.frames(1)), ManualClock(), LoopConfig(period=0.05))
        summary, _, _ = run(backend, toys.frames(20), stress_hz=50.0)
    assert summary.stress and summary.period == pytest.approx(0.02) and summary.frames == 20


@pytest.mark.parametrize("kw, message", [
    ({"period": 0.1, "watchdog": 0.1}, r"watchdog must be finite and longer than the period \(0.1 s\), actual: 0.1"),
    ({"period": 0.0}, r"period must be finite and > 0 s, actual: 0.0"),
    ({"period": 0.1, "telemetry_every": 0}, r"telemetry_every must be >= 1 tick, actual: 0"),
    ({"period": 0.1, "spin": 0.1}, r"spin must be in \[0, period\) seconds \(0.1\), actual: 0.1"),
    ({"period": 0.1, "prewarm": True}, r"prewarm needs spin > 0"),
])
def test_loop_config_refuses_values_it_cannot_run_with(kw, message):
    with pytest.raises(LoopConfigError, match=message):
        LoopConfig(**kw)


class Prewarmed(toys.NumpyToy):
    """The numpy toy with a prewarm that runs the step into scratch, counting its calls."""

    def __init__(self, period: float = 0.1) -> None:
        super().__init__(period)
        self.prewarms = 0
        self._warm = np.zeros((1, 2), np.float32)

    def prewarm(self) -> None:
        self.prewarms += 1
        np.dot(np.ones((1, toys.D), np.float32), toys.W, out=self._warm)


def test_spinning_and_prewarming_before_each_tick_change_no_command_and_keep_the_ticks_on_time():
    # Real clock at 100 Hz: the loop polls the last 4 ms before each tick and warms the backend and the safety
    # layer there; what it publishes is what the plain loop publishes, one prewarm per tick.
    frames = toys.frames(30) + toys.frames(20, episode_id=2, seed=1)
    _, want, _ = run(toys.NumpyToy(0.01).open(), frames)
    warm = Prewarmed(0.01).open()
    start = time.monotonic()
    summary, got, _ = run(warm, frames, clock=RealClock(), spin=0.004, prewarm=True)
    assert time.monotonic() - start >= 49 * 0.01
    np.testing.assert_array_equal(got.commands, want.commands)
    assert summary.frames == 50 and warm.prewarms == 51  # one in warm-up, one before each tick
    assert summary.deadline_misses <= 5  # a busy test machine may miss a few; a loop that never woke misses all


def test_parts_that_do_not_fit_are_refused(model):
    driver, config = ReplayDriver(toys.frames(1)), LoopConfig(period=P)
    other = Preprocessor(ObservationSpec(PreprocessorConfig(num_bins=16, fine_pixels=4, coarse_pixels=4)))
    with OnnxBackend(model) as backend:
        with pytest.raises(LoopSetupError, match=r"ObservationSpec \(D=101\) differs from the model's"):
            ControlLoop(backend, other, SafetyLayer(SafetyConfig()), driver, ManualClock(), config)
        with pytest.raises(LoopSetupError, match="built for 2 envs; the loop drives one robot"):
            ControlLoop(backend, Preprocessor(toys.SPEC), SafetyLayer(SafetyConfig(), 2), driver, ManualClock(),
                        config)
    with pytest.raises(LoopSetupError, match=r"is not open; open it"):
        ControlLoop.for_backend(backend, driver, ManualClock(), config)


def test_telemetry_is_json_lines_in_blocks(model, tmp_path):
    path = tmp_path / "run.jsonl"
    frames = toys.frames(120) + toys.frames(130, episode_id=2)
    with OnnxBackend(model) as backend:
        summary, _, _ = run(backend, frames, telemetry=str(path), telemetry_every=100)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["event"] for r in records] == ["start", "episode", "block", "episode", "block", "block", "end"]
    assert [r["ticks"] for r in records if r["event"] == "block"] == [100, 100, 50]
    end = records[-1]
    assert end["ticks"] == 250 and end["exit_reason"] == "ticks" and set(end["latency"]) == set(STAGES)
    assert end["latency"]["policy"]["count"] == 250
    assert end == {"event": "end", **json.loads(json.dumps(summary.to_dict()))}


class Probe(ReplayDriver):
    """A ReplayDriver that calls ``at[k]()`` just before the k-th latest_frame (inside the running loop)."""

    def __init__(self, frames, at, **kw):
        super().__init__(frames, **kw)
        self.at = at

    def latest_frame(self):
        hook = self.at.get(self.calls)
        if hook is not None:
            hook()
        return super().latest_frame()


def test_no_allocation_survives_a_tick_and_no_collection_runs_over_10000_ticks():
    """tracemalloc: the traced memory at tick 10,000 equals that at tick 2,100 (same place in the episode and
    telemetry cycles) within a few hundred bytes of numpy's and Python's own caches; gc: with the collector left
    enabled (the loop's freeze off), no collection starts and the youngest generation's count does not grow, so
    nothing the tick allocates outlives it or forms a cycle. The numpy toy backend stands in for an engine: ONNX
    Runtime's binding keeps about 0.4 bytes per run (measured: +10 KB over 25,000 steps), which is not the loop's."""
    frames = toys.frames(25) + toys.frames(25, episode_id=2, seed=1)  # an episode reset every 25 ticks
    seen: dict[str, list] = {"mem": [], "count": []}
    collections = []

    def measure():
        seen["mem"].append(tracemalloc.get_traced_memory()[0])
        seen["count"].append(gc.get_count()[0])

    def on_gc(phase, info):
        if phase == "start":
            collections.append(info["generation"])

    driver = Probe(frames, {1000: collections.clear, 2000: tracemalloc.start, 2100: measure, 10000: measure},
                   cycle=True)
    gc.collect()
    gc.callbacks.append(on_gc)
    try:
        summary, _, _ = run(toys.NumpyToy().open(), frames, driver=driver, ticks=10001, gc_freeze=False,
                            telemetry_every=100)
    finally:
        gc.callbacks.remove(on_gc)
        tracemalloc.stop()
    assert summary.frames == 10001 and summary.episodes == 401
    assert collections == []
    # Over 7,900 ticks (79 telemetry blocks, 316 episode resets): a leak per tick, block or episode would keep
    # at least 79 objects and kilobytes; a one-off cache filled somewhere in numpy or Python is allowed.
    assert seen["count"][1] - seen["count"][0] <= 8, seen
    assert seen["mem"][1] - seen["mem"][0] <= 1024, seen


def test_the_collector_is_frozen_and_disabled_while_running_and_restored_after(model):
    states = []
    driver = Probe(toys.frames(5), {3: lambda: states.append((gc.isenabled(), gc.get_freeze_count() > 0))})
    assert gc.isenabled()
    with OnnxBackend(model) as backend:
        run(backend, [], driver=driver, ticks=5)
    assert states == [(False, True)]
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_sigint_ends_the_loop_with_a_stop_and_restores_the_handler(model):
    driver = Probe(toys.frames(50), {20: lambda: os.kill(os.getpid(), signal.SIGINT)})
    before = signal.getsignal(signal.SIGINT)
    with OnnxBackend(model) as backend:
        summary, _, _ = run(backend, [], driver=driver, ticks=50, handle_signals=True)
    assert summary.exit_reason == "SIGINT" and summary.ticks == 21
    assert driver.log[-1, 3] == 1.0 and driver.stops == 1
    assert signal.getsignal(signal.SIGINT) is before


def test_request_stop_ends_the_loop_from_another_place(model):
    loop_box = []
    driver = Probe(toys.frames(50), {7: lambda: loop_box[0].request_stop("operator")})
    with OnnxBackend(model) as backend:
        loop = ControlLoop.for_backend(backend, driver, ManualClock(), LoopConfig(period=P, handle_signals=False))
        loop_box.append(loop)
        summary = loop.run()
    assert summary.exit_reason == "operator" and summary.ticks == 8 and driver.stops == 1
    with pytest.raises(LoopSetupError, match="build a new loop for a new run"):
        loop.run()


def test_replay_driver_is_a_driver_and_cycles_through_new_episodes():
    driver = ReplayDriver(toys.frames(3, episode_id=5), cycle=True)
    assert isinstance(driver, Driver)
    seen = [driver.latest_frame() for _ in range(9)]
    assert [(f.episode_id, f.seq) for f in seen] == [(5, 0), (5, 1), (5, 2), (6, 0), (6, 1), (6, 2), (5, 0), (5, 1),
                                                      (5, 2)]
    assert seen[3].ranges is seen[0].ranges  # the copies share the arrays
    once = ReplayDriver([None, *toys.frames(2)])
    assert [once.latest_frame() for _ in range(4)][::3] == [None, once.frames[2]]


def test_the_loop_modules_import_nothing_heavy():
    modules = ("robonav.runtime.loop", "robonav.runtime.driver", "robonav.runtime.telemetry",
               "robonav.runtime.backends.registry", "robonav.runtime.run", "robonav.runtime.selftest")
    heavy = ("torch", "pybullet", "gymnasium", "onnx", "onnxruntime", "matplotlib", "tensorrt")
    code = (f"import sys\nfor m in {modules!r}: __import__(m)\n"
            f"print(','.join(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
