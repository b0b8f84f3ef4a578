"""The guidance block: A* on the Preprocessor's own obstacle memory, numbers pinned on hand-made grids, the
Numba planner held to its pure-Python reference inside both Preprocessors, and a controller that reads nothing
but the block reaching goals in the PyBullet simulator."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from test_sensors_preprocessor import assert_parity, maze_frames, noisy

from robonav.sensors import Preprocessor, PreprocessorConfig
from robonav.sensors.guidance import PATH_CLIP, Guide, GuideReference
from robonav.sensors.spec import ObservationSpec

RES = 0.125
N = 80  # grid cells per side: 10 m, the origin (0, 0) m at the corner


def guide_block(occ, pose, goal, reference=False):
    cls = GuideReference if reference else Guide
    g = cls(PreprocessorConfig(guidance=True, guidance_lookahead=0.5))
    out = np.full(6, np.nan)
    g(occ, (0.0, 0.0), np.asarray(pose, float), np.asarray(goal, float), out)
    return out


def cells(x0, x1, y0, y1):
    """Index box of the cells covering [x0, x1) x [y0, y1) metres."""
    return slice(round(x0 / RES), round(x1 / RES)), slice(round(y0 / RES), round(y1 / RES))


@pytest.mark.parametrize("reference", [False, True])
def test_open_grid_points_at_the_goal_with_its_distance(reference):
    occ = np.zeros((N, N), np.int8)
    out = guide_block(occ, (2.0625, 5.0625, 0.0), (6.0625, 5.0625), reference)
    # sin, cos of the bearing to both lookahead points: straight ahead; 4 m of 40; a path was found
    np.testing.assert_allclose(out, [0.0, 1.0, 0.0, 1.0, 4.0 / PATH_CLIP, 1.0], atol=1e-9)
    # facing the other way, the goal is behind: cos -1
    out = guide_block(occ, (2.0625, 5.0625, math.pi), (6.0625, 5.0625), reference)
    np.testing.assert_allclose(out[:4], [0.0, -1.0, 0.0, -1.0], atol=1e-9)


@pytest.mark.parametrize("reference", [False, True])
def test_a_wall_sends_the_path_round_its_open_end(reference):
    occ = np.zeros((N, N), np.int8)
    occ[cells(4.0, 4.25, 0.0, 7.0)] = 20  # a wall across x = 4 m from y = 0 to 7 m: the way round is at y > 7
    out = guide_block(occ, (2.0625, 3.0625, 0.0), (6.0625, 3.0625), reference)
    near = math.atan2(out[0], out[1])
    assert 0.3 < near < 1.6, f"near bearing {near:.2f} rad should turn left (toward the open end at y > 7 m)"
    assert out[5] == 1.0
    # up past the wall's end (y = 7 m plus clearance) and back down: the two diagonals are at least
    # 2 * hypot(2 m, 4 m) = 8.9 m; the straight line would be 4 m
    assert 9.0 < out[4] * PATH_CLIP < 12.0


@pytest.mark.parametrize("reference", [False, True])
def test_a_goal_walled_in_gives_no_path_and_the_goal_bearing(reference):
    occ = np.zeros((N, N), np.int8)
    occ[cells(5.0, 7.0, 5.0, 7.0)] = 20
    occ[cells(5.5, 6.5, 5.5, 6.5)] = 0  # a closed box: goal inside, robot outside
    out = guide_block(occ, (2.0625, 6.0625, 0.0), (6.0625, 6.0625), reference)
    np.testing.assert_allclose(out, [0.0, 1.0, 0.0, 1.0, 4.0 / PATH_CLIP, 0.0], atol=1e-9)


def test_unknown_and_free_cells_are_both_passable_but_seen_walls_are_not():
    occ = np.zeros((N, N), np.int8)
    occ[cells(4.0, 4.25, 0.0, 10.0)] = 20  # wall across the whole grid...
    occ[cells(4.0, 4.25, 4.0, 5.0)] = -10  # ...with a 1 m doorway seen free
    out = guide_block(occ, (2.0625, 1.0625, 0.0), (6.0625, 1.0625), reference=False)
    assert out[5] == 1.0 and out[4] * PATH_CLIP > 2 * math.hypot(2.0, 3.0)  # via the door at y = 4..5 m, back
    occ[cells(4.0, 4.25, 4.0, 5.0)] = 1  # the doorway now seen as wall (any positive log-odds)
    out = guide_block(occ, (2.0625, 1.0625, 0.0), (6.0625, 1.0625), reference=False)
    assert out[5] == 0.0


@pytest.mark.parametrize("budget", [0, 20])
def test_preprocessor_guidance_equals_the_reference_over_a_noisy_drive(budget):
    """Also with a budget of 20 expansions a step (the ReferencePreprocessor then runs `BudgetedGuide`)."""
    cfg = PreprocessorConfig(guidance=True, guidance_every=3, grid_cells=96, grid_resolution=0.25, fine_pixels=6,
                             coarse_pixels=4, guidance_budget=budget)
    frames = noisy(maze_frames()[1][:240], seed=3)
    pre = assert_parity(frames, cfg=cfg, check_every=60)
    block = pre.spec.block("guidance")
    assert block.size == 6 and pre.dim == ObservationSpec(dataclasses.replace(cfg, guidance=False)).size + 6


def test_the_block_is_off_by_default_and_named_in_the_spec():
    assert not ObservationSpec().has("guidance")
    spec = ObservationSpec(PreprocessorConfig(guidance=True))
    assert spec.blocks[-1].name == "guidance" and "A* path" in spec.blocks[-1].normalisation
    with pytest.raises(ValueError, match="guidance_every"):
        PreprocessorConfig(guidance=True, guidance_every=0)


def test_a_controller_reading_only_the_block_reaches_goals_in_pybullet_mazes():
    """Turn toward the near point, drive when roughly facing it: solves most generated 5x5 mazes."""
    from robonav.eval.episodes import make_episodes
    from robonav.eval.metrics import summarize
    from robonav.eval.runner import eval_config, run_episodes
    from robonav.sim.config import SimConfig

    pc = PreprocessorConfig(guidance=True)
    sl = ObservationSpec(pc).block("guidance").slice

    class Follow:
        def __init__(self, n):
            pass

        def reset(self, ids):
            pass

        def act(self, obs, frames, sim):
            err = np.arctan2(obs[:, sl][:, 0], obs[:, sl][:, 1])
            v = np.where(np.abs(err) > 1.0, 0.0, 0.5 * np.cos(err) ** 2)
            return np.stack([v, np.clip(2.5 * err, -2.0, 2.0)], 1)

    episodes = make_episodes("val-5x5", 8, seed=4)
    results = run_episodes(Follow, episodes, eval_config(dataclasses.replace(SimConfig(), preprocessor=pc)),
                           num_envs=8)
    summary = summarize(results)
    assert summary["success_rate"] >= 0.75, summary


def test_a_bare_preprocessor_pays_nothing_for_it():
    assert Preprocessor()._b.plan_u8.size == 1  # placeholders: the kernel skips the guidance
