"""Every packaged launch file loads as is into the settings of the verbs that read it (docs/design.md: each file
complete and runnable as is), and names no key the dataclasses do not have."""

from __future__ import annotations

from pathlib import Path

import pytest

from robonav.settings import load_settings

LAUNCH = Path(__file__).resolve().parents[1] / "launch"


def _sections():
    from robonav.hil.runner import HilSettings
    from robonav.hil.simrobot import SimRobotSettings
    from robonav.runtime.run import RunSettings
    from robonav.sim.config import SimConfig
    from robonav.train.config import TrainConfig

    return {"sim": SimConfig, "train": TrainConfig, "run": RunSettings, "robot": SimRobotSettings,
            "hil": HilSettings}


FILES = [("sim", ["sim"]), ("train", ["train"]), ("train_broad", ["train"]), ("train_q", ["train"]),
         ("train_q_broad", ["train"]), ("robot", ["run"]), ("hil", ["hil", "run", "robot"])]


def test_every_launch_file_is_checked():
    assert sorted(p.stem for p in LAUNCH.glob("*.yaml")) == sorted(name for name, _ in FILES)


@pytest.mark.parametrize("name, sections", FILES)
def test_launch_file_loads_as_is(name, sections):
    import yaml

    path = LAUNCH / f"{name}.yaml"
    assert sorted(yaml.safe_load(path.read_text())) == sorted(sections)  # nothing else in the file
    classes = _sections()
    for section in sections:
        load_settings(classes[section], name, section=section)  # by packaged name, as the verbs resolve it


def test_hil_file_injects_no_faults_and_agrees_on_the_clock():
    from robonav.hil.runner import HilSettings
    from robonav.hil.simrobot import SimRobotSettings
    from robonav.runtime.run import RunSettings

    hil = load_settings(HilSettings, "hil", section="hil")
    run = load_settings(RunSettings, "hil", section="run")
    robot = load_settings(SimRobotSettings, "hil", section="robot")
    assert not hil.faults.any and hil.faults.kill_runtime_after == 0.0
    assert run.driver == "udp" and run.udp.robot == robot.bind and robot.runtime == run.udp.bind
    assert hil.clock_factor == run.clock_factor == robot.clock_factor
