"""The simulator driver: the control loop drives a simulated robot exactly as evaluation does, and episodes
follow one another with new ids."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

from robonav.control.clock import ManualClock
from robonav.eval.episodes import make_episodes
from robonav.eval.runner import eval_config
from robonav.runtime.backends.onnx_backend import OnnxBackend
from robonav.runtime.driver import Driver
from robonav.runtime.loop import ControlLoop, LoopConfig
from robonav.sim.config import SimConfig
from robonav.sim.core import MazeSim
from robonav.sim.driver import SimDriver

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
import loop_toys as toys

CONFIG = eval_config(SimConfig(period=0.1, observation="preprocessor", preprocessor=toys.SPEC.config))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return toys.write_toy(tmp_path_factory.mktemp("toy"))


def test_the_loop_drives_the_simulated_robot_exactly_as_evaluation_does(model):
    """Evaluation steps MazeSim with its own safety layer and Preprocessor; the loop runs both itself and the
    driver's MazeSim passes commands through: the same episode gives the very same poses."""
    episode = make_episodes("val-3x3", 1, 0)[0]
    ticks = 30
    sim = MazeSim(1, CONFIG, seed=0)
    poses = []
    with OnnxBackend(model) as backend:
        sim.reset_env(0, episode)
        for _ in range(ticks):
            sim.step(backend.step(sim.obs[0])[None])
            poses.append(sim.pose[0].copy())
    sim.close()
    driver = SimDriver(CONFIG, [episode], seed=0)
    with OnnxBackend(model) as backend:
        loop = ControlLoop.for_backend(backend, driver, ManualClock(), LoopConfig(period=0.1, ticks=ticks,
                                                                                handle_signals=False))
        summary = loop.run()
    assert driver.results == [] and summary.frames == ticks  # still the first episode
    assert np.abs(np.array(poses)[-1] - poses[0]).max() > 0.05  # the robot really moved
    np.testing.assert_array_equal(driver.sim.pose[0], poses[-1])
    assert driver.published == ticks and driver.stops == 1 and driver.last_answered == ticks - 1
    driver.close()
    driver.close()


def test_episodes_follow_one_another_with_new_ids(model):
    short = dataclasses.replace(CONFIG, time_limit_factor=0.0, time_limit_extra=0.45)  # 5 ticks per episode
    driver = SimDriver(short, make_episodes("val-3x3", 2, 0), seed=0)
    assert isinstance(driver, Driver)
    ids = set()

    class Watch:
        def latest_frame(self):
            frame = driver.latest_frame()
            ids.add(frame.episode_id)
            return frame

        def publish(self, v, omega, seq):
            driver.publish(v, omega, seq)

        def stop(self):
            driver.stop()

        def close(self):
            driver.close()

    with OnnxBackend(model) as backend:
        summary = ControlLoop.for_backend(backend, Watch(), ManualClock(),
                                          LoopConfig(period=0.1, ticks=12, handle_signals=False)).run()
    assert len(driver.results) == 2 and summary.episodes == 3 == len(ids)
    report = driver.summary()
    assert report["sim_episodes"] == 2 and report["sim_commands"] == 12 and report["sim_stops"] == 1
    driver.close()
