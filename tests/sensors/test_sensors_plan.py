"""The guidance block inside the step kernel (robonav.sensors.plan) held bit for bit to `Guide`, the Python
guide the shipped policies were trained with, and with a budget of expansions per step to `BudgetedGuide`: on
random and adversarial grid sequences (walls appearing and vanishing between plans, blocked and walled-in goals
and starts, poses off the grid, recentres and resets, also while a budgeted plan is pending), over a noisy maze
drive with the shipped configuration (its allocation test is test_sensors_preprocessor's)."""

from __future__ import annotations

import dataclasses
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_sensors_preprocessor import maze_frames, noisy

from robonav.data import resource
from robonav.sensors import Preprocessor, PreprocessorConfig, ScanSpec, SensorFrame
from robonav.sensors.guidance import BudgetedGuide, Guide
from robonav.sensors.plan import P_K, P_SEARCH, _pairwise_sum, make_plan_buffers, plan_step, reset_plan_buffers
from robonav.sensors.spec import ObservationSpec


def shipped_spec() -> ObservationSpec:
    """The default policy's ObservationSpec, from its sidecar."""
    return ObservationSpec.from_dict(json.loads(resource("policies", "default.json").read_text())["observation_spec"])


class KernelGuide:
    """plan_step on its own buffers, fed the same grid, pose and goal as a `Guide`."""

    def __init__(self, cfg: PreprocessorConfig) -> None:
        self.cfg = cfg
        self.plan_f, self.plan_i, self.plan_u8 = make_plan_buffers(cfg, 0)
        n0 = cfg.grid_cells
        self.words = np.zeros(1, np.uint64)
        self.obs = np.full(6, np.nan, np.float32)
        self.n0 = n0

    def __call__(self, occ: np.ndarray, origin, pose, goal, recentres: int, words: bool) -> np.ndarray:
        flat = occ.reshape(-1)
        plan_step(flat, flat.view(np.uint64) if words else self.words, self.plan_f, self.plan_i, self.plan_u8,
                  self.n0, self.cfg.grid_resolution, float(pose[0]), float(pose[1]), float(pose[2]),
                  float(origin[0]), float(origin[1]), float(goal[0]), float(goal[1]), recentres, self.obs)
        return self.obs


def run_sequence(seed: int, n0: int, steps: int, every: int, words: bool, budget: int = 0) -> tuple[int, int]:
    """Random walls drawn and erased between calls; returns the number of plans that found a path and of steps
    with a budgeted plan pending."""
    rng = np.random.default_rng(seed)
    # only the guidance settings matter here (a full PreprocessorConfig needs a grid wider than the scan's reach)
    cfg = SimpleNamespace(guidance=True, guidance_every=every, guidance_lookahead=0.6, grid_cells=n0,
                          grid_resolution=0.125, guidance_budget=budget)
    res = cfg.grid_resolution
    kernel = KernelGuide(cfg)
    guide = BudgetedGuide(cfg) if budget else Guide(cfg)
    pending, was_waiting = 0, False
    occ = np.zeros((n0, n0), np.int8)
    origin = np.array([-n0 * res / 2, -n0 * res / 2])
    pose = np.array([0.0, 0.0, 0.0])
    goal = rng.uniform(-n0 * res / 2, n0 * res / 2, 2)
    recentres, found = 0, 0
    for k in range(steps):
        for _ in range(rng.integers(0, 4)):  # walls (positive), seen-free cells (negative), erasures (zero)
            i, j = rng.integers(0, n0, 2)
            h, w = rng.integers(1, 4), rng.integers(1, 12)
            if rng.random() < 0.5:
                h, w = w, h
            occ[i:i + h, j:j + w] = rng.choice([20, 1, -3, 0], p=[0.5, 0.1, 0.2, 0.2])
        kind = rng.random()
        if kind < 0.05:  # a new goal anywhere, also off the grid or on a wall
            goal = rng.uniform(-n0 * res, n0 * res, 2)
        elif kind < 0.08:  # wall in the goal's cell
            gi = min(max(math.floor((goal[0] - origin[0]) / res), 0), n0 - 1)
            gj = min(max(math.floor((goal[1] - origin[1]) / res), 0), n0 - 1)
            occ[max(gi - 3, 0):gi + 4, max(gj - 3, 0):gj + 4] = 20
            if rng.random() < 0.5:
                occ[max(gi - 2, 0):gi + 3, max(gj - 2, 0):gj + 3] = 0  # a closed box around the goal
        elif kind < 0.12:  # a new episode: both forget the path, the cost map and a pending plan
            reset_plan_buffers(kernel.plan_i, kernel.plan_u8)
            guide.reset()
        elif kind < 0.15:  # a recentre: the memory shifts by whole cells and the origin with it
            si, sj = (int(v) for v in rng.integers(-n0 // 4, n0 // 4 + 1, 2))
            shifted = np.zeros_like(occ)  # new cell (i, j) = old cell (i + si, j + sj), 0 where outside
            shifted[max(-si, 0):n0 - max(si, 0), max(-sj, 0):n0 - max(sj, 0)] = \
                occ[max(si, 0):n0 - max(-si, 0), max(sj, 0):n0 - max(-sj, 0)]
            occ = shifted
            origin = origin + np.array([si, sj]) * res
            recentres += 1
        pose = pose + np.array([*rng.normal(0.0, 0.08, 2), rng.normal(0.0, 0.2)])
        if rng.random() < 0.02:
            pose[:2] = rng.uniform(-n0 * res, n0 * res, 2)  # a jump, possibly off the grid
        occ = np.ascontiguousarray(occ)
        got = kernel(occ, origin, pose, goal, recentres, words).copy()
        want = np.full(6, np.nan)
        guide(occ, (float(origin[0]), float(origin[1])), pose, goal, want)
        assert np.array_equal(got, want.astype(np.float32)), f"step {k}: kernel {got}, Guide {want}"
        assert (kernel.plan_i[P_K] > 0) == (guide.path is not None)
        waiting = getattr(guide, "steps_left", 0) > 0
        assert bool(kernel.plan_i[P_SEARCH]) == waiting, f"step {k}"
        found += guide.path is not None and (guide.since_plan == 0 or was_waiting) and not waiting
        pending += waiting
        was_waiting = waiting
    return found, pending


@pytest.mark.parametrize("words", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_the_kernel_equals_guide_on_random_grids_changing_between_plans(seed, words):
    found, _ = run_sequence(seed, n0=64, steps=150, every=3, words=words)
    assert found > 5  # the sequences exercise found paths, not only dead ends


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), n0=st.sampled_from([24, 40, 41, 64]), every=st.integers(1, 6))
def test_the_kernel_equals_guide_for_any_grid_size_and_period(seed, n0, every):
    run_sequence(seed, n0=n0, steps=40, every=every, words=n0 % 8 == 0)


@pytest.mark.parametrize("budget", [25, 150])
@pytest.mark.parametrize("seed", range(3))
def test_a_budgeted_kernel_equals_budgeted_guide_through_recentres_and_resets(seed, budget):
    found, pending = run_sequence(seed, n0=40, steps=200, every=3, words=True, budget=budget)
    assert found >= 2 and pending > 20  # plans end, and many steps follow the old path while one is searched


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), n0=st.sampled_from([24, 41, 64]), every=st.integers(1, 6),
       budget=st.integers(1, 400))
def test_a_budgeted_kernel_equals_budgeted_guide_for_any_budget(seed, n0, every, budget):
    run_sequence(seed, n0=n0, steps=40, every=every, words=n0 % 8 == 0, budget=budget)


def test_the_shipped_preprocessor_equals_main_s_python_guide_over_a_noisy_drive():
    """Kernel guidance against the bare Preprocessor plus `Guide` on its memory, every frame, all 651 floats."""
    spec = shipped_spec()
    assert spec.config.guidance and spec.size == 651
    bare = Preprocessor(ObservationSpec(dataclasses.replace(spec.config, guidance=False)))
    pre, guide = Preprocessor(spec), Guide(spec.config)
    n0 = spec.config.grid_cells
    frames = noisy(maze_frames(loops=2)[1], seed=5)
    plans = 0
    for k, frame in enumerate(frames):
        got = pre(frame, (0.4, 0.1))
        want = bare(frame, (0.4, 0.1))
        out = np.zeros(6)
        guide(bare._b.occ[:n0 * n0].reshape(n0, n0), bare.grid_origin, bare.pose, frame.goal, out)
        assert np.array_equal(got[:bare.dim], want), f"frame {k}"
        assert np.array_equal(got[bare.dim:], out.astype(np.float32)), f"frame {k}: {got[bare.dim:]} vs {out}"
        plans += guide.since_plan == 0
    assert plans >= len(frames) // spec.config.guidance_every and guide.path is not None


def test_a_budgeted_shipped_preprocessor_equals_budgeted_guide_over_a_noisy_drive():
    """The shipped spec with a budget of 150 expansions per step against the bare Preprocessor plus
    `BudgetedGuide`, every frame; the plans of this drive need up to a few thousand expansions."""
    spec = ObservationSpec(dataclasses.replace(shipped_spec().config, guidance_budget=150))
    bare = Preprocessor(ObservationSpec(dataclasses.replace(spec.config, guidance=False)))
    pre, guide = Preprocessor(spec), BudgetedGuide(spec.config)
    n0 = spec.config.grid_cells
    frames = noisy(maze_frames(loops=2)[1], seed=5)
    pending = 0
    for k, frame in enumerate(frames):
        got = pre(frame, (0.4, 0.1))
        bare(frame, (0.4, 0.1))
        out = np.zeros(6)
        guide(bare._b.occ[:n0 * n0].reshape(n0, n0), bare.grid_origin, bare.pose, frame.goal, out)
        assert np.array_equal(got[bare.dim:], out.astype(np.float32)), f"frame {k}: {got[bare.dim:]} vs {out}"
        pending += guide.steps_left > 0
    assert pending > len(frames) // 10 and guide.path is not None


def test_a_bare_preprocessor_carries_placeholder_plan_buffers():
    b = Preprocessor()._b
    assert b.plan_u8.size == 1 and b.plan_i[1] == -1
    shipped = Preprocessor(shipped_spec())._b
    assert shipped.plan_u8.size == 2 * 384 * 384 and shipped.occ_words.size == 384 * 384 // 8


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 127, 128, 129, 135, 136, 255, 256, 1000, 1031, 4097, 20000])
def test_path_length_sums_pairwise_like_numpy(n):
    rng = np.random.default_rng(n)
    a = rng.random(n) * rng.choice([1e-4, 1.0, 1e4], n)
    assert _pairwise_sum(a, n, np.zeros(192, np.int32), np.zeros(64)) == a.sum()


def test_a_too_fine_grid_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="coarser grid"):
        make_plan_buffers(SimpleNamespace(guidance=True, grid_resolution=0.025, grid_cells=400, guidance_every=5,
                                          guidance_lookahead=0.6, guidance_budget=0), 0)


def test_warmup_then_a_frame_plans_and_writes_the_block():
    pre = Preprocessor(shipped_spec())
    pre.warmup()
    scan = ScanSpec.evenly_spaced(360)
    obs = pre(SensorFrame(np.full(360, np.inf, np.float32), scan, np.zeros(3), np.array([3.0, 0.0])), (0.0, 0.0))
    # open space: the path runs along the robot's cell row (centres at y = 0.0625 m) from x = 0.0625 to 3.0625 m,
    # then to the goal; near point 0.6 m along it at (0.6625, 0.0625), far point 1.8 m along at (1.8625, 0.0625);
    # length: hypot(0.0625, 0.0625) to the first centre + 24 cells of 0.125 m + hypot(0.0625, 0.0625) to the goal
    near, far, diag = math.hypot(0.6625, 0.0625), math.hypot(1.8625, 0.0625), math.hypot(0.0625, 0.0625)
    want = [0.0625 / near, 0.6625 / near, 0.0625 / far, 1.8625 / far, (3.0 + 2 * diag) / 40.0, 1.0]
    np.testing.assert_allclose(obs[645:], want, atol=1e-6)
