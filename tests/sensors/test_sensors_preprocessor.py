"""The whole Preprocessor: exact parity with the NumPy reference, episodes, buffers, errors, and the memory tests."""

from __future__ import annotations

import dataclasses
import json
import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sensor_scene import DEAD_END, Maze, drive, frames

from robonav.data import resource
from robonav.sensors import Preprocessor, PreprocessorConfig, ScanSpec, ScanSpecError, SensorFrame, SensorFrameError
from robonav.sensors.plan import P_PLAN_ID
from robonav.sensors.preprocessor import step_kernel
from robonav.sensors.reference import ReferencePreprocessor
from robonav.sensors.spec import ObservationSpec

SMALL = dict(grid_cells=96, fine_pixels=6, coarse_pixels=4)  # recentres every few metres


def assert_parity(frame_list, cfg=None, command=(0.3, -0.7), check_every=1):
    """Feed the same frames to both; observations and every memory level must match exactly."""
    pre, ref = Preprocessor(cfg), ReferencePreprocessor(cfg)
    for k, frame in enumerate(frame_list):
        got, want = pre(frame, command), ref(frame, command)
        if not np.array_equal(got, want):
            bad = np.flatnonzero(got != want)
            names = {b.name for b in pre.spec.blocks for i in bad if b.offset <= i < b.offset + b.size}
            raise AssertionError(f"step {k}: {bad.size} elements differ in blocks {sorted(names)}, max abs error "
                                 f"{np.abs(got - want)[bad].max()}")
        if k % check_every == 0 or k == len(frame_list) - 1:
            for level in (0, 1, 2):
                for got_m, want_m in zip(pre.memory(level), ref.memory(level)):
                    np.testing.assert_array_equal(got_m, want_m, err_msg=f"step {k}, level {level}")
            assert np.array_equal(pre.pose, ref.pose) and pre.grid_origin == ref.grid_origin
            assert (pre.recentre_count, pre.dropped_deltas, pre.step_count) == (ref.recentres, ref.dropped, ref.step)
    return pre


def maze_frames(beams=360, fov=2 * math.pi, loops=1):
    maze = Maze(DEAD_END, (1, 1))
    loop = [maze.centre(9, 1), maze.centre(9, 7), maze.centre(5, 7), maze.centre(5, 5), maze.centre(7, 5),
            maze.centre(7, 3), maze.centre(3, 3), maze.centre(3, 5), maze.centre(1, 5), maze.centre(1, 1)]
    poses = list(drive(loop * loops))
    return maze, frames(maze, poses, ScanSpec.evenly_spaced(beams, fov=fov), goal=maze.centre(9, 7)), len(poses)


def noisy(frame_list, seed, dropout=0.1, sigma=0.01, odom_sigma=0.002):
    """Range noise, NaN dropouts and odometry noise (the maze then drifts in the odometry frame)."""
    rng = np.random.default_rng(seed)
    out = []
    for f in frame_list:
        r = (f.ranges + rng.normal(0.0, sigma, f.ranges.shape)).astype(np.float32)
        r[rng.random(r.shape) < dropout] = np.nan
        out.append(SensorFrame(r, f.scan, f.odom_delta + rng.normal(0.0, odom_sigma, 3), f.goal, f.episode_id))
    return out


def random_frames(rng, count, scan, speed=0.5):
    out = []
    for _ in range(count):
        r = rng.uniform(0.02, 5.0, scan.num_beams).astype(np.float32)
        r[rng.random(scan.num_beams) < 0.1] = np.nan
        r[rng.random(scan.num_beams) < 0.1] = np.inf
        r[rng.random(scan.num_beams) < 0.02] = -np.inf
        delta = np.array([rng.uniform(0.0, speed), rng.uniform(-0.1, 0.1), rng.uniform(-0.5, 0.5)])
        out.append(SensorFrame(r, scan, delta, np.array([3.0, -4.0])))
    return out


def test_parity_in_a_maze_with_noise_and_dropouts():
    _, maze_list, _ = maze_frames()
    assert_parity(noisy(maze_list[:400], seed=1), check_every=50)


def test_parity_over_a_long_episode_that_recentres_many_times_far_from_the_origin():
    rng = np.random.default_rng(7)
    scan = ScanSpec.evenly_spaced(90, fov=1.5 * math.pi)
    frame_list = random_frames(rng, 1500, scan)
    frame_list[700].odom_delta = np.array([1e6, -3e5, 0.2])  # a jump beyond the grid: both memories cleared
    cfg = PreprocessorConfig(**SMALL, obstacle_decay_steps=3, visit_decay_steps=2)
    pre = assert_parity(frame_list, cfg, check_every=100)
    assert pre.recentre_count > 100 and np.hypot(*pre.pose[:2]) > 1e6


episode_configs = st.builds(
    PreprocessorConfig,
    num_bins=st.sampled_from([1, 5, 32]), clear_rays=st.sampled_from([1, 8, 64, 400]),
    below_range_min=st.sampled_from(["invalid", "too_close"]),
    above_range_max=st.sampled_from(["invalid", "no_return"]),
    obstacle_decay_steps=st.sampled_from([0, 1, 4]), visit_decay_steps=st.sampled_from([0, 2]),
    trail_radius=st.sampled_from([0.0, 0.25, 0.5]), map_range=st.sampled_from([1.0, 3.5]),
    obstacle_fine=st.booleans(), obstacle_coarse=st.booleans(), trajectory_fine=st.booleans(),
    trajectory_coarse=st.booleans(), **{k: st.just(v) for k, v in SMALL.items()},
)
special = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -1.0, 1e30, 1e-30])


@settings(max_examples=25, deadline=None)
@given(cfg=episode_configs, data=st.data(), beams=st.sampled_from([1, 7, 360, 1080]),
       fov=st.sampled_from([2 * math.pi, 1.5 * math.pi, 0.3]), seed=st.integers(0, 10_000))
def test_parity_random_configs_and_adversarial_scans(cfg, data, beams, fov, seed):
    rng = np.random.default_rng(seed)
    frame_list = random_frames(rng, 30, ScanSpec.evenly_spaced(beams, fov=fov, range_max=4.0), speed=0.8)
    for f in frame_list[::3]:  # every third scan: uniform adversarial values
        f.ranges[:] = data.draw(special)
    pre = assert_parity(frame_list, cfg, command=(data.draw(st.floats(-2, 2)), np.nan), check_every=10)
    assert pre(frame_list[0], (0.0, 0.0)).shape == (pre.spec.size,)


def test_changing_scan_description_mid_episode():
    rng = np.random.default_rng(3)
    specs = [ScanSpec.evenly_spaced(n, range_max=m) for n, m in ((360, 3.5), (720, 6.0), (1080, 2.0))]
    frame_list = [f for k in range(60) for f in random_frames(rng, 1, specs[k % 3])]
    assert_parity(frame_list, PreprocessorConfig(**SMALL), check_every=20)


def test_a_new_episode_id_resets_everything():
    _, maze_list, _ = maze_frames()
    first, second = maze_list[:120], maze_list[120:200]
    for f in second:
        f.episode_id = 1
    second[0].odom_delta = np.zeros(3)
    pre = Preprocessor()
    for f in first:
        pre(f, (0.5, 0.0))
    assert pre.memory(0)[0].any() and pre.step_count == 120
    fresh = Preprocessor()
    for f in second:
        np.testing.assert_array_equal(pre(f, (0.5, 0.0)), fresh(f, (0.5, 0.0)))
    assert pre.step_count == 80 and np.array_equal(pre.pose, fresh.pose)
    pre.reset()
    assert pre.step_count == 0 and not pre.memory(0)[0].any() and not pre.pose.any()


def test_returns_its_own_buffer_every_call():
    pre = Preprocessor()
    scan = ScanSpec.evenly_spaced(360)
    a = pre(SensorFrame(np.full(360, 1.0, np.float32), scan, np.zeros(3), np.array([1.0, 0.0])), (0.0, 0.0))
    kept = a.copy()
    b = pre(SensorFrame(np.full(360, 2.0, np.float32), scan, np.zeros(3), np.array([1.0, 0.0])), (0.0, 0.0))
    assert a is b and not np.array_equal(kept, b) and a.dtype == np.float32 and a.shape == (pre.dim,)


def test_prewarm_reads_the_buffers_and_changes_nothing():
    # The same frames with and without a prewarm before every call give the same observations; the checksum
    # it returns is a sum over the memories it read, so it grows as walls are mapped (the reads are real).
    _, frame_list, _ = maze_frames()
    cfg = PreprocessorConfig(guidance=True)
    plain, warmed = Preprocessor(cfg), Preprocessor(cfg)
    sums = [warmed.prewarm()]
    for f in frame_list[:120]:
        sums.append(warmed.prewarm())
        np.testing.assert_array_equal(warmed(f, (0.3, -0.7)), plain(f, (0.3, -0.7)))
    assert sums[-1] != sums[0]


@pytest.mark.parametrize(("writable", "budget"), [(True, 0), (False, 0), (True, 3)])
def test_a_call_allocates_no_array(writable, budget):
    """On the shipped configuration (the default policy's spec, guidance on; also with a guidance budget so small
    that every plan spans steps): 200 calls plan 40 times."""
    spec = ObservationSpec.from_dict(json.loads(resource("policies", "default.json").read_text())["observation_spec"])
    assert spec.config.guidance
    spec = ObservationSpec(dataclasses.replace(spec.config, guidance_budget=budget))
    pre = Preprocessor(spec)
    scan = ScanSpec.evenly_spaced(360)
    ranges = np.full(360, 1.5, np.float32)
    ranges.flags.writeable = writable
    frame = SensorFrame(ranges, scan, np.array([0.05, 0.0, 0.01]), np.array([1.0, 0.0]))
    pre(frame, (0.1, 0.0))
    tracemalloc.start()
    try:
        for _ in range(5):
            pre(frame, (0.1, 0.0))
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        plans = int(pre._b.plan_i[P_PLAN_ID])
        for _ in range(200):
            pre(frame, (0.1, 0.0))
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    planned = int(pre._b.plan_i[P_PLAN_ID]) - plans
    # it planned, often; with 3 expansions a step, plans of the 10 to 80 cells to the goal span 4 to 27 steps
    assert planned >= (10 if budget else 200 // spec.config.guidance_every)
    # a copy of the scan would be 1,440 bytes, of the observation 2,580: only Python scalars come and go
    assert peak - before < 1000 and after - before < 200


def test_warmup_compiles_the_one_signature_every_frame_uses():
    pre = Preprocessor()
    pre.warmup()
    assert pre.step_count == 0 and len(step_kernel.signatures) == 1
    scan = ScanSpec.evenly_spaced(360)
    read_only = np.full(360, 1.0, np.float32)
    read_only.flags.writeable = False  # as decoded from a wire buffer
    for ranges in (read_only, np.full(720, 1.0)[::2], np.full(360, 2.0, np.float32), np.full(360, 3, np.int32)):
        obs = pre(SensorFrame(ranges, scan, np.zeros(3), np.zeros(2)), np.array([0.1, 0.2], np.float32))
        assert obs[0] == np.float32(float(ranges[0]) / 3.5)  # bin 0: the range of the beams ahead / 3.5 m
    assert len(step_kernel.signatures) == 1


def test_bad_frames_are_refused_with_the_reason():
    pre = Preprocessor()
    scan = ScanSpec.evenly_spaced(360, spec_id=4)
    ok = SensorFrame(np.ones(360, np.float32), scan, np.zeros(3), np.zeros(2), episode_id=2, seq=9)
    pre(ok, (0.0, 0.0))
    bad_goal = SensorFrame(np.ones(360, np.float32), scan, np.ones(3), np.array([np.nan, 1.0]), episode_id=2, seq=10)
    with pytest.raises(SensorFrameError, match=r"goal must be finite .* got array\(\[nan,  1\.\]\) \(episode 2, seq "
                                               r"10\): the frame was not processed"):
        pre(bad_goal, (0.0, 0.0))
    assert pre.step_count == 1 and not pre.pose.any()
    with pytest.raises(ScanSpecError, match=r"ranges has shape \(359,\), expected \(360,\) from its ScanSpec "
                                            r"\(spec_id 4\)"):
        pre(SensorFrame(np.ones(359, np.float32), scan, np.zeros(3), np.zeros(2), episode_id=2), (0.0, 0.0))


def test_float64_ranges_and_non_finite_deltas_are_handled():
    pre, ref = Preprocessor(), ReferencePreprocessor()
    scan = ScanSpec.evenly_spaced(90)
    for delta in (np.array([0.1, 0.0, 0.1]), np.array([np.nan, 0.0, 0.0]), np.array([0.1, np.inf, 0.0])):
        frame = SensorFrame(np.linspace(0.2, 3.0, 90), scan, delta, np.array([2.0, 2.0]))
        np.testing.assert_array_equal(pre(frame, (0.1, 0.0)), ref(frame, (0.1, 0.0)))
    assert pre.dropped_deltas == 2 and np.allclose(pre.pose, [0.1, 0.0, 0.1])


def test_it_is_a_simulator_observer():
    pre = Preprocessor()
    assert pre.dim == 645 and pre.low.shape == pre.high.shape == (645,) and pre.low.dtype == np.float32


# A long corridor (row 1) with a dead end going down from column 3; the robot starts at column 10.
T_MAZE = [
    "#############",
    "#...........#",
    "###.#########",
    "###.#########",
    "###.#########",
    "#############",
]


def coarse_pixel_at(pre, point):
    """Coarse patch (row, col) that holds an odometry-frame point (rows forward, columns left, 1 m pixels)."""
    x, y, th = pre.pose
    ex, ey = point[0] - x, point[1] - y
    forward, left = math.cos(th) * ex + math.sin(th) * ey, math.cos(th) * ey - math.sin(th) * ex
    return math.floor(forward + 6.0), math.floor(left + 6.0)


def test_memory_keeps_a_dead_end_while_the_robot_is_away():
    maze = Maze(T_MAZE, (10, 1))
    scan = ScanSpec.evenly_spaced(360, fov=1.5 * math.pi)  # a 270 degree scanner
    # into the dead end, back out and 5 m along the corridor, then back toward it (not into it)
    route = [maze.centre(3, 1), maze.centre(3, 4), maze.centre(3, 1), maze.centre(8, 1), maze.centre(5, 1)]
    poses = list(drive(route))
    inside = next(k for k, p in enumerate(poses) if np.allclose(p[:2], maze.centre(3, 4)))
    far = next(k for k, p in enumerate(poses) if k > inside and np.allclose(p[:2], maze.centre(8, 1)))
    frame_list = frames(maze, poses, scan)
    end_wall = (maze.centre(3, 4)[0], maze.centre(3, 4)[1] + 0.6)  # just inside the dead end's closing wall
    pre = Preprocessor()
    block = pre.spec.block("obstacle_coarse").slice
    for k, frame in enumerate(frame_list):
        obs = pre(frame, (0.5, 0.0))
        if k == far or k == len(frame_list) - 1:
            assert math.dist(pre.pose[:2], end_wall) > scan.range_max  # beyond the scan, and out of sight anyway
            r, c = coarse_pixel_at(pre, end_wall)
            assert 0 <= r < 12 and 0 <= c < 12
            assert obs[block].reshape(12, 12)[r, c] > 0.9, f"step {k}: the dead end's wall is forgotten"
            scan_only = Preprocessor()(frame, (0.5, 0.0))  # the same scan without memory: unknown there
            assert scan_only[block].reshape(12, 12)[r, c] == 0.5
    assert pre.recentre_count == 0


def mapped_wall_cells(pre, maze):
    """Grid cells the memory holds as occupied that lie in a true wall."""
    occ, _ = pre.memory(0)
    i, j = np.nonzero(occ > 0)
    res, (ox, oy) = pre.spec.config.grid_resolution, pre.grid_origin
    truth = maze.is_wall(ox + (i + 0.5) * res, oy + (j + 0.5) * res)
    return i[truth], j[truth]


def test_nan_dropouts_over_1000_steps_leave_mapped_walls_in_place():
    maze, maze_list, _ = maze_frames(loops=3)
    first_loop = len(list(drive([maze.centre(9, 1), maze.centre(9, 7), maze.centre(5, 7), maze.centre(5, 5),
                                 maze.centre(7, 5), maze.centre(7, 3), maze.centre(3, 3), maze.centre(3, 5),
                                 maze.centre(1, 5), maze.centre(1, 1)])))
    pre = Preprocessor()
    for f in maze_list[:first_loop]:
        pre(f, (0.5, 0.0))
    walls = mapped_wall_cells(pre, maze)
    assert walls[0].size > 400
    rng = np.random.default_rng(11)
    for f in maze_list[first_loop:first_loop + 1000]:
        r = f.ranges.copy()
        r[rng.random(r.size) < 0.3] = np.nan  # 30 % of the beams drop out
        if rng.random() < 0.05:
            r[:] = np.nan  # and one scan in twenty is lost whole
        pre(SensorFrame(r, f.scan, f.odom_delta, f.goal), (0.5, 0.0))
    occ, _ = pre.memory(0)
    assert (occ[walls] > 0).all(), f"{(occ[walls] <= 0).sum()} of {walls[0].size} mapped wall cells were erased"
