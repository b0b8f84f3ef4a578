"""PreprocessorConfig validation and the ObservationSpec layout, its ablations and its JSON round trip."""

from __future__ import annotations

import json

import pytest

from robonav.sensors.spec import (
    ObservationSpec,
    ObservationSpecError,
    PreprocessorConfig,
    PreprocessorConfigError,
)


def test_default_layout_is_pinned():
    spec = ObservationSpec()
    layout = [(b.name, b.offset, b.shape) for b in spec.blocks]
    # 32 bins + 32 flags + 3 goal + 2 command = 69, then four 12x12 patches of 144: 69 + 576 = 645
    assert layout == [
        ("scan", 0, (32,)), ("scan_valid", 32, (32,)), ("goal", 64, (3,)), ("command", 67, (2,)),
        ("obstacle_fine", 69, (12, 12)), ("trajectory_fine", 213, (12, 12)),
        ("obstacle_coarse", 357, (12, 12)), ("trajectory_coarse", 501, (12, 12)),
    ]
    assert spec.size == 645
    low, high = spec.bounds()
    assert low[spec.block("goal").slice].tolist() == [-1.0, -1.0, -1.0]
    assert low[spec.block("scan").slice].min() == 0.0 and high.max() == 1.0


@pytest.mark.parametrize("off", ["obstacle_fine", "obstacle_coarse", "trajectory_fine", "trajectory_coarse"])
def test_each_memory_channel_switches_off_and_d_shrinks(off):
    spec = ObservationSpec(PreprocessorConfig(**{off: False}))
    assert spec.size == 645 - 144
    assert not spec.has(off)
    assert sum(b.size for b in spec.blocks) == spec.size
    ends = [b.offset + b.size for b in spec.blocks]
    assert [b.offset for b in spec.blocks[1:]] == ends[:-1]  # contiguous, no gap where the block was


def test_all_memory_off_leaves_scan_goal_command():
    cfg = PreprocessorConfig(obstacle_fine=False, obstacle_coarse=False, trajectory_fine=False,
                             trajectory_coarse=False)
    assert ObservationSpec(cfg).size == 69


def test_json_round_trip():
    spec = ObservationSpec(PreprocessorConfig(num_bins=24, clear_rays=128, trajectory_coarse=False,
                                              obstacle_decay_steps=7, below_range_min="too_close"))
    text = json.dumps(spec.to_dict())
    back = ObservationSpec.from_dict(json.loads(text))
    assert back == spec
    assert back.size == 24 * 2 + 5 + 3 * 144


def test_unknown_config_key_is_refused_with_the_key_named():
    with pytest.raises(PreprocessorConfigError, match=r"has no field\(s\) \['bins'\]; known fields: \["):
        PreprocessorConfig.from_dict({"bins": 32})


def test_unknown_spec_key_is_refused():
    data = ObservationSpec().to_dict() | {"extra": 1}
    with pytest.raises(ObservationSpecError, match=r"unknown key\(s\) \['extra'\]"):
        ObservationSpec.from_dict(data)


def test_saved_layout_that_differs_is_refused():
    data = ObservationSpec().to_dict()
    data["blocks"] = data["blocks"][:-1]
    with pytest.raises(ObservationSpecError, match="the model was trained on another layout; re-export it"):
        ObservationSpec.from_dict(data)
    data = ObservationSpec().to_dict() | {"size": 650}
    with pytest.raises(ObservationSpecError, match="saved ObservationSpec size 650 differs from the derived size 645"):
        ObservationSpec.from_dict(data)
    with pytest.raises(ObservationSpecError, match=r"format must be 'robonav\.observation/1'"):
        ObservationSpec.from_dict(ObservationSpec().to_dict() | {"format": "other/9"})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_bins": 0}, "PreprocessorConfig.num_bins must be an integer >= 1, got 0"),
        ({"num_bins": True}, "PreprocessorConfig.num_bins must be of type int, got bool: True"),
        ({"max_range": float("nan")}, "PreprocessorConfig.max_range must be a finite number > 0, got nan"),
        ({"below_range_min": "zero"},
         "PreprocessorConfig.below_range_min must be 'invalid' or 'too_close', got 'zero'"),
        ({"fine_pixel_size": 0.3}, "PreprocessorConfig.fine_pixel_size must be an integer multiple of "
                                   "grid_resolution=0.125, got 0.3"),
        ({"grid_cells": 380}, "PreprocessorConfig.grid_cells must be a multiple of coarse_pixel_size / "
                              "grid_resolution = 8, got 380"),
        ({"hit_log_odds": 10.0}, "PreprocessorConfig.hit_log_odds must be between 1 and 127 units of "
                                 "log_odds_quantum=0.05 in magnitude, got 10.0"),
        ({"miss_log_odds": 0.4}, "PreprocessorConfig.miss_log_odds must be a number < 0, got 0.4"),
        ({"obstacle_decay_steps": -1}, "PreprocessorConfig.obstacle_decay_steps must be an integer >= 0 "
                                       "(0: no decay), got -1"),
    ],
)
def test_bad_values_are_refused_with_what_and_expected(kwargs, message):
    with pytest.raises(PreprocessorConfigError) as info:
        PreprocessorConfig(**kwargs)
    assert str(info.value) == message


def test_grid_too_small_for_the_recentring_margin_says_why():
    with pytest.raises(PreprocessorConfigError, match=r"the recentring margin is 84 cells on each side .* leaves "
                                                      r"-40 cells; at least 16 are needed, got 128"):
        PreprocessorConfig(grid_cells=128)


def test_derived_factors():
    c = PreprocessorConfig()
    assert (c.mid_factor, c.coarse_factor) == (2, 8)
    # coarse patch half-diagonal 12 * 1.0 / sqrt(2) + 1 px = 9.49 m -> 76 cells, + one coarse cell (8)
    assert c.recentre_margin_cells == 84
    assert [c.log_odds_units(n) for n in ("hit_log_odds", "miss_log_odds", "log_odds_min", "log_odds_max")] == [
        17, -8, -40, 70]


def test_fields_added_later_are_written_only_when_on():
    """A config without laser odometry or a guidance budget writes the dict the shipped policies were exported with
    (their ONNX metadata and hashes stay as they are); with them on, the fields are written and read back."""
    from robonav.sensors.spec import PreprocessorConfig

    off = PreprocessorConfig(guidance=True)
    assert "laser_odometry" not in off.to_dict() and "guidance_budget" not in off.to_dict()
    assert PreprocessorConfig.from_dict(off.to_dict()) == off
    on = PreprocessorConfig(guidance=True, laser_odometry=True, guidance_budget=600)
    assert on.to_dict()["laser_odometry"] is True and on.to_dict()["guidance_budget"] == 600
    assert PreprocessorConfig.from_dict(on.to_dict()) == on


def test_a_negative_guidance_budget_is_refused_with_what_is_accepted():
    from robonav.sensors.spec import PreprocessorConfig

    expected = r"guidance_budget must be an integer >= 0 \(0: each plan in one step\), got -1"
    with pytest.raises(ValueError, match=expected):
        PreprocessorConfig(guidance=True, guidance_budget=-1)
