"""Named conditions: parsing, the overrides each applies, --set for eval, and refusals that name what is accepted."""

from __future__ import annotations

import dataclasses

import pytest

from robonav.eval.conditions import (
    CONDITIONS,
    DYNAMIC_DENSITY,
    ConditionError,
    apply_conditions,
    apply_sim_settings,
    parse_conditions,
)
from robonav.eval.runner import eval_config
from robonav.sim.config import SimConfig


def test_the_conditions_and_their_order() -> None:
    assert list(CONDITIONS) == ["nominal", "dynamic", "fov120", "fov90", "odom-harsh", "noisy", "latency2",
                                "wide-robot"]
    assert parse_conditions(None) == parse_conditions("") == ("nominal",)
    assert parse_conditions("wide-robot, fov120") == ("fov120", "wide-robot")
    assert parse_conditions(["noisy", "latency2"]) == ("noisy", "latency2")


@pytest.mark.parametrize(("spec", "message"), [
    ("fov60", r"unknown condition 'fov60'; accepted: nominal, dynamic, fov120, fov90, odom-harsh, noisy, latency2, "
              r"wide-robot"),
    ("noisy,noisy", r"noisy,noisy names a condition twice"),
    ("nominal,noisy", r"'nominal' means no change and does not combine"),
    ("fov120,fov90", r"fov120 and fov90 both set sim.scanner.fov_deg; they do not combine"),
])
def test_bad_condition_lists_are_refused_by_name(spec: str, message: str) -> None:
    with pytest.raises(ConditionError, match=message):
        parse_conditions(spec)


def test_each_condition_sets_its_values() -> None:
    base = eval_config()
    got = {n: apply_conditions(base, n) for n in CONDITIONS if n != "dynamic"}
    assert got["nominal"] == base
    assert got["fov120"].scanner.fov_deg == 120.0 and got["fov90"].scanner.fov_deg == 90.0
    assert (got["odom-harsh"].odometry.scale_std, got["odom-harsh"].odometry.heading_drift_std) == (0.02, 0.01)
    assert (got["noisy"].scanner.noise_std, got["noisy"].scanner.dropout) == (0.03, 0.08)
    assert got["latency2"].latency_ticks == 2 and base.latency_ticks == 1
    assert got["wide-robot"].robot.radius == 0.21
    # Only the condition's own keys change: everything else stays the eval config.
    assert dataclasses.replace(got["wide-robot"], robot=base.robot) == base
    both = apply_conditions(base, "fov90,noisy")
    assert (both.scanner.fov_deg, both.scanner.noise_std, both.scanner.num_beams) == (90.0, 0.03, 128)
    assert not both.randomization.enabled


def test_dynamic_needs_moving_obstacles_in_the_build() -> None:
    assert DYNAMIC_DENSITY == pytest.approx(4 / 97)  # 4 movers in a 7x7 maze's 97 m^2 of free floor
    if "dynamic" in {f.name for f in dataclasses.fields(SimConfig)}:
        cfg = apply_conditions(eval_config(), "dynamic")
        dyn = cfg.dynamic  # type: ignore[attr-defined]
        assert (dyn.density, tuple(dyn.speed), dyn.oblivious_fraction) == (DYNAMIC_DENSITY, (0.3, 1.0), 0.5)
    else:
        with pytest.raises(ConditionError, match=r"--condition dynamic needs sim.dynamic, not in this build"):
            apply_conditions(eval_config(), "dynamic")


def test_set_changes_what_eval_uses_and_refuses_the_rest() -> None:
    cfg = apply_sim_settings(apply_conditions(eval_config(), "fov90"), ["sim.scanner.fov_deg=100",
                                                                          "sim.robot.radius=0.2"])
    assert (cfg.scanner.fov_deg, cfg.robot.radius) == (100.0, 0.2)  # --set comes last and wins
    # how the policy's preprocessor runs, not what it sees laid out: a guidance budget may be set
    guided = dataclasses.replace(eval_config(), preprocessor=dataclasses.replace(eval_config().preprocessor,
                                                                                 guidance=True))
    cfg = apply_sim_settings(guided, ["sim.preprocessor.guidance_budget=500"])
    assert cfg.preprocessor.guidance_budget == 500 and cfg.preprocessor.guidance
    for item, message in [
        ("sim.reward.time=1", r"--set sim.reward.time: eval does not use it .* eval accepts sim.\{robot., scanner."),
        ("sim.maze.width=[9, 9]", r"--set sim.maze.width: eval does not use it"),
        ("sim.preprocessor.guidance=true", r"--set sim.preprocessor.guidance: eval does not use it"),
        ("train.lr=0.1", r"--set train.lr: eval takes sim.\* settings only"),
        ("sim.robot.radiuss=0.2", r"--set sim.robot.radiuss: no such setting in sim"),
        ("sim.robot.radius", r"--set 'sim.robot.radius': expected sim.KEY=VALUE"),
        ("sim.robot.radius=wide", r"--set: .*robot.radius: expected a number, got 'wide'"),
    ]:
        with pytest.raises(ConditionError, match=message):
            apply_sim_settings(eval_config(), [item])
