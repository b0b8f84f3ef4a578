"""Laser odometry (scan-to-map matching): scan points and normals, map updates and Gauss-Newton vs their NumPy
twins, recovery of known poses in synthetic rooms, the Preprocessor option, and the odometry drift it removes on a
real simulated episode."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robonav.sensors.scanmatch import (
    C_COUNT,
    ScanMatchConfig,
    ScanMatcher,
    _insert,
    _match,
    _solve3,
    insert_reference,
    match_reference,
    scan_points,
    scan_points_kernel,
    walls_reference,
)

FULL = np.linspace(-np.pi, np.pi, 360, endpoint=False)  # a 360-beam full circle


def box_scan(pose: tuple[float, float, float], box: tuple[float, float, float, float],
             angles: np.ndarray = FULL, range_max: float = 3.5) -> np.ndarray:
    """REP 117 ranges from ``pose`` inside the axis-aligned box (x0, x1, y0, y1): +inf beyond range_max."""
    x, y, th = pose
    x0, x1, y0, y1 = box
    a = th + angles
    dx, dy = np.cos(a), np.sin(a)
    with np.errstate(divide="ignore"):
        tx = np.where(dx > 0, (x1 - x) / dx, np.where(dx < 0, (x0 - x) / dx, np.inf))
        ty = np.where(dy > 0, (y1 - y) / dy, np.where(dy < 0, (y0 - y) / dy, np.inf))
    r = np.minimum(tx, ty)
    return np.where(r <= range_max, r, np.inf).astype(np.float32)


# ------------------------------------------------------------------------------------------ scan points
def test_scan_points_of_a_straight_wall_and_a_corner() -> None:
    # The box's east wall at x = 2 seen from the origin; the north wall at y = 2 meets it at (2, 2).
    ranges = box_scan((0.0, 0.0, 0.0), (-50.0, 2.0, -50.0, 2.0))
    px, py, nx, ny, link = scan_points(ranges, FULL, 0.05, 3.5, 0.35)
    assert len(px) == int(np.isfinite(ranges).sum())
    east = np.abs(px - 2.0) < 1e-4
    north = np.abs(py - 2.0) < 1e-4
    # Every interior east-wall point has the normal (+-1, 0); along the north wall (0, +-1).
    inner_east = east & (np.abs(py) < 1.0)
    assert np.allclose(np.abs(nx[inner_east]), 1.0) and np.allclose(ny[inner_east], 0.0, atol=1e-5)
    inner_north = north & (np.abs(px) < 1.0)
    assert np.allclose(np.abs(ny[inner_north]), 1.0)
    # The corner point (45 degrees) bends by 90 degrees between its neighbours: no normal there.
    corner = np.argmin(np.hypot(px - 2.0, py - 2.0))
    assert nx[corner] == 0.0 and ny[corner] == 0.0
    # Neighbouring points on a wall are linked; the two ends of the seen stretch (next to +inf beams) are not
    # linked onward and have no normal.
    assert link[inner_east].all()
    ends = [k for k in range(len(px)) if not link[k]]
    assert len(ends) == 1  # only the last point of the stretch; the first links to its successor
    assert nx[ends[0]] == 0.0 and ny[ends[0]] == 0.0


def test_scan_points_skip_rep117_codes_and_close_the_circle() -> None:
    angles = np.array([-np.pi, -np.pi / 2, 0.0, np.pi / 2])
    ranges = np.array([1.0, np.nan, -np.inf, 0.2], dtype=np.float32)
    px, py, _, _, link = scan_points(ranges, angles, 0.1, 3.5, 5.0)
    np.testing.assert_allclose(px, [-1.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(py, [0.0, 0.2], atol=1e-7)
    # Beam 3 neighbours beam 0 in a full circle: the last point links to the first.
    assert link.tolist() == [False, True]


def kernel_points(ranges: np.ndarray, angles: np.ndarray, range_min: float, range_max: float,
                  max_gap: float) -> tuple[np.ndarray, ...]:
    """`scan_points_kernel` on fresh buffers, cut to its count, in `scan_points`' order."""
    n = len(ranges)
    full = bool(n > 2 and abs(abs(angles[1] - angles[0]) * n - 2 * math.pi) < 1e-6)
    beams, link = np.zeros(n, np.int64), np.zeros(n, np.bool_)
    px, py, nx, ny = (np.full(n, 9.0) for _ in range(4))  # junk: the kernel must overwrite what it returns
    count = scan_points_kernel(np.asarray(ranges, np.float32), np.cos(angles), np.sin(angles), range_min,
                               range_max, max_gap, full, beams, px, py, nx, ny, link)
    return px[:count], py[:count], nx[:count], ny[:count], link[:count]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(0, 2**32 - 1), st.booleans())
def test_scan_points_kernel_matches_the_reference(n: int, seed: int, full: bool) -> None:
    rng = np.random.default_rng(seed)
    angles = (np.linspace(-np.pi, np.pi, n, endpoint=False) if full
              else np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1))
    ranges = rng.uniform(0.0, 4.0, n).astype(np.float32)  # some below range_min, some beyond range_max
    codes = rng.random(n)
    ranges[codes < 0.1] = np.nan
    ranges[(codes >= 0.1) & (codes < 0.2)] = np.inf
    ranges[(codes >= 0.2) & (codes < 0.25)] = -np.inf
    want = scan_points(ranges, angles, 0.1, 3.5, 0.8)
    got = kernel_points(ranges, angles, 0.1, 3.5, 0.8)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-12)


def test_scan_points_kernel_on_a_room_by_hand() -> None:
    # Three beams at -0.1, 0, 0.1 rad hitting the wall x = 2: points (2, 2 tan a), linked along the wall; the middle
    # one has the wall's normal (-1, 0) (left of the direction of travel +y), the ends none.
    angles = np.array([-0.1, 0.0, 0.1])
    ranges = (2.0 / np.cos(angles)).astype(np.float32)
    px, py, nx, ny, link = kernel_points(ranges, angles, 0.1, 3.5, 0.35)
    np.testing.assert_allclose(px, [2.0, 2.0, 2.0], atol=1e-6)
    np.testing.assert_allclose(py, 2.0 * np.tan(angles), atol=1e-6)
    assert link.tolist() == [True, True, False]
    np.testing.assert_allclose([nx[1], ny[1]], [-1.0, 0.0], atol=1e-6)
    assert nx[0] == ny[0] == nx[2] == ny[2] == 0.0


# ------------------------------------------------------------------------------------------- map update
@settings(max_examples=30, deadline=None)
@given(st.integers(1, 12), st.integers(0, 2**32 - 1))
def test_insert_matches_the_reference(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    xs, ys = rng.uniform(-1.3, 1.3, n), rng.uniform(-1.3, 1.3, n)  # some points fall off the 2.4 m grid
    angle = rng.uniform(-np.pi, np.pi, n)
    keep = rng.random(n) < 0.8
    nxs, nys = np.where(keep, np.cos(angle), 0.0), np.where(keep, np.sin(angle), 0.0)
    link = rng.random(n) < 0.6
    grid = np.zeros((24, 24, 5), dtype=np.float32)
    for _ in range(2):  # twice: the second pass folds into existing means (and flips opposed normals)
        _insert(grid, 0.1, -1.2, -1.2, xs, ys, nxs, nys, link)
    ref = np.zeros_like(grid)
    for _ in range(2):
        insert_reference(ref, 0.1, (-1.2, -1.2), xs, ys, nxs, nys, link)
    np.testing.assert_allclose(grid, ref, rtol=0, atol=1e-5)


def test_insert_keeps_running_means_by_hand() -> None:
    grid = np.zeros((4, 4, 5), dtype=np.float32)
    none = np.array([False])
    _insert(grid, 1.0, 0.0, 0.0, np.array([1.2]), np.array([2.4]), np.array([1.0]), np.array([0.0]), none)
    _insert(grid, 1.0, 0.0, 0.0, np.array([1.6]), np.array([2.8]), np.array([-1.0]), np.array([0.0]), none)
    # Cell (1, 2): mean of (1.2, 2.4) and (1.6, 2.8); the opposed normal is flipped before it is averaged.
    np.testing.assert_allclose(grid[1, 2], [1.4, 2.6, 1.0, 0.0, 2.0], atol=1e-6)
    assert grid[..., C_COUNT].sum() == 2.0


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.05, 0.4), st.floats(-2.0, 2.0), st.floats(-2.0, 2.0))
def test_walls_match_the_reference(seed: int, wres: float, wx: float, wy: float) -> None:
    m = room_matcher((-2.0, 2.0, -1.5, 1.5), tuple(np.random.default_rng(seed).uniform(-0.5, 0.5, 3)))
    shape = (int(3.0 / wres), int(2.0 / wres) + 1)
    got = m.walls((wx, wy), wres, shape)
    assert np.array_equal(got, walls_reference(m.grid, m.res, m.origin, (wx, wy), wres, shape))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_the_3x3_solver_matches_numpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(3, 3))
    spd = a @ a.T + np.diag(rng.uniform(0.1, 100.0, 3))
    b = rng.normal(size=3)
    np.testing.assert_allclose(_solve3(spd, b), np.linalg.solve(spd, b), rtol=1e-8, atol=1e-10)


def room_matcher(box=(-2.0, 2.0, -1.5, 1.5), pose=(0.3, 0.2, 0.1)) -> ScanMatcher:
    m = ScanMatcher(ScanMatchConfig(extent=12.0))
    m.update(np.array(pose), box_scan(pose, box), FULL, 0.05, 3.5)
    return m


def test_gauss_newton_matches_the_reference() -> None:
    m = room_matcher()
    truth = (0.45, 0.1, 0.05)
    px, py, nx, ny, _ = scan_points(box_scan(truth, (-2.0, 2.0, -1.5, 1.5)), FULL, 0.05, 3.5, 0.35)
    prior = np.array([0.49, 0.07, 0.07])
    pose = prior.copy()
    _match(m.grid, m.res, *m.origin, px, py, nx, ny, pose, m.point_w, m.huber, m.max_distance, m.prior_xy,
           m.prior_theta, 8, np.zeros((3, 3)), np.zeros(3))
    ref, _ = match_reference(m.grid, m.res, m.origin, px, py, nx, ny, prior, m.point_w, m.huber, m.max_distance,
                          m.prior_xy, m.prior_theta, 8)
    np.testing.assert_allclose(pose, ref, atol=1e-9)


def test_a_room_scan_recovers_the_pose() -> None:
    box = (-2.0, 2.0, -1.5, 1.5)
    m = room_matcher(box)
    truth = np.array([0.45, 0.1, 0.05])
    prior = truth + np.array([0.04, -0.03, 0.02])
    pose = m.update(prior, box_scan(tuple(truth), box), FULL, 0.05, 3.5)
    assert np.hypot(*(pose[:2] - truth[:2])) < 0.005
    assert abs(pose[2] - truth[2]) < 0.002
    assert m.matched_points > 200


def test_a_corridor_leaves_the_unobservable_direction_to_odometry() -> None:
    corridor = (-100.0, 100.0, -0.5, 0.5)  # walls far beyond range along x
    m = room_matcher(corridor, (0.0, 0.0, 0.0))
    truth = np.array([0.3, 0.05, 0.02])
    prior = truth + np.array([0.1, 0.03, -0.02])
    pose = m.update(prior, box_scan(tuple(truth), corridor), FULL, 0.05, 3.5)
    assert pose[0] == pytest.approx(prior[0], abs=0.005)   # along the corridor: the odometry's value
    assert pose[1] == pytest.approx(truth[1], abs=0.005)   # across it and the heading: the scan's
    assert pose[2] == pytest.approx(truth[2], abs=0.003)


def test_an_empty_map_keeps_the_prediction_and_walls_are_reported() -> None:
    m = ScanMatcher(ScanMatchConfig(extent=12.0))
    prior = np.array([0.0, 0.0, 0.0])
    pose = m.update(prior, box_scan((0.0, 0.0, 0.0), (-5.0, 1.0, -5.0, 5.0)), FULL, 0.05, 3.5)
    assert np.array_equal(pose, prior) and m.matched_points == 0
    # The east wall x = 1 lies in the planning cells i = 8 of a 0.125 m grid from x = 0 (x in [1.0, 1.125)): mean
    # points sit on the wall, within float32 rounding of it (i = 7 at worst); nothing else is a wall.
    walls = m.walls((0.0, -1.0), 0.125, (12, 16))
    assert np.asarray(walls[7:9].any(axis=0))[1:15].all() and not walls[:7].any() and not walls[9:].any()
    m.reset()
    assert not m.grid.any()


def test_correct_returns_the_delta_to_the_matched_pose() -> None:
    from robonav.sensors.frame import ScanSpec

    box = (-2.0, 2.0, -1.5, 1.5)
    scan = ScanSpec.evenly_spaced(360, 2 * math.pi, 0.05, 3.5)
    angles = scan.beam_angles()
    m = ScanMatcher(ScanMatchConfig(extent=12.0))
    start = np.array([0.3, 0.2, 0.1])
    m.correct(start, (0.0, 0.0, 0.0), box_scan(tuple(start), box, angles), scan)  # the first scan makes the map
    truth = np.array([0.45, 0.1, 0.05])
    # Wheel odometry over-reports 4 cm forward and 0.02 rad of turn; the scan says where the robot is.
    c, s = math.cos(start[2]), math.sin(start[2])
    ex, ey = truth[:2] - start[:2]
    true_delta = np.array([c * ex + s * ey, c * ey - s * ex, truth[2] - start[2]])
    got = m.correct(start, tuple(true_delta + np.array([0.04, 0.0, 0.02])), box_scan(tuple(truth), box, angles), scan)
    np.testing.assert_allclose(got, true_delta, atol=0.005)


def test_the_preprocessor_option_integrates_the_corrected_delta() -> None:
    from robonav.sensors.frame import ScanSpec, SensorFrame
    from robonav.sensors.preprocessor import Preprocessor
    from robonav.sensors.spec import PreprocessorConfig

    box = (-2.0, 2.0, -1.5, 1.5)
    scan = ScanSpec.evenly_spaced(360, 2 * math.pi, 0.05, 3.5)
    angles = scan.beam_angles()
    plain = Preprocessor(PreprocessorConfig())
    laser = Preprocessor(PreprocessorConfig(laser_odometry=True))
    assert laser.dim == plain.dim  # the same layout
    # The robot drives 0.1 m forward per tick along +x from the origin; odometry says 0.11 m and 0.01 rad.
    for k in range(6):
        frame = SensorFrame(box_scan((0.1 * k, 0.0, 0.0), box, angles), scan,
                            np.array([0.11, 0.0, 0.01]) if k else np.zeros(3), np.array([1.0, 0.0]), episode_id=1)
        obs_plain = plain(frame, (0.0, 0.0)).copy()
        obs_laser = laser(frame, (0.0, 0.0)).copy()
    # Wheel odometry alone: x = 0.11 * (cos 0 + cos 0.01 + ... + cos 0.04) = 0.5498, y = 0.11 * (0 + 0.01 + ...
    # + 0.04) = 0.011 (small angles), heading 5 * 0.01.
    np.testing.assert_allclose(plain.pose, [0.5498, 0.011, 0.05], atol=1e-3)
    np.testing.assert_allclose(laser.pose, [0.5, 0.0, 0.0], atol=0.01)  # the scan's truth
    goal = laser.spec.block("goal").slice  # the goal (1, 0) seen from the corrected pose: 0.5 m straight ahead
    np.testing.assert_allclose(obs_laser[goal], [0.05, 0.0, 1.0], atol=0.01)
    assert not np.allclose(obs_plain[goal], obs_laser[goal], atol=0.01)
    laser.reset()
    assert not laser._matcher.grid.any()


def test_the_reference_preprocessor_matches_with_laser_odometry() -> None:
    from robonav.sensors.frame import ScanSpec, SensorFrame
    from robonav.sensors.preprocessor import Preprocessor
    from robonav.sensors.reference import ReferencePreprocessor
    from robonav.sensors.spec import PreprocessorConfig

    box = (-2.0, 2.5, -1.5, 1.7)
    scan = ScanSpec.evenly_spaced(180, 2 * math.pi, 0.05, 3.5)
    angles = scan.beam_angles()
    config = PreprocessorConfig(laser_odometry=True, grid_cells=192)
    pre, ref = Preprocessor(config), ReferencePreprocessor(config)
    rng = np.random.default_rng(3)
    truth = np.zeros(3)
    for k in range(12):  # an arc through the room, odometry off by a few percent and a drifting heading
        step = np.array([0.08, 0.0, 0.05]) if k else np.zeros(3)
        c, s = math.cos(truth[2]), math.sin(truth[2])
        truth = truth + np.array([c * step[0], s * step[0], step[2]])
        odom = step * np.array([1.04, 1.0, 1.1]) + np.array([0.0, 0.0, 0.004 * (k > 0)])
        ranges = box_scan(tuple(truth), box, angles) + rng.normal(0, 0.005, 180).astype(np.float32)
        frame = SensorFrame(ranges.astype(np.float32), scan, odom, np.array([1.0, 0.5]), episode_id=1)
        got, want = pre(frame, (0.1, 0.0)), ref(frame, (0.1, 0.0))
        np.testing.assert_allclose(got, want, atol=1e-5)
        np.testing.assert_allclose(pre.pose, ref.pose_tuple, atol=1e-9)
    assert abs(pre.pose[2] - truth[2]) < 0.01  # the match keeps the heading the odometry lets drift


@pytest.mark.slow
def test_matching_removes_the_odometry_drift_of_a_real_episode() -> None:
    from robonav.eval.classical import _compose
    from robonav.eval.episodes import make_episodes
    from robonav.eval.runner import eval_config
    from robonav.sim.config import OdometryConfig, SimConfig
    from robonav.sim.core import MazeSim
    from robonav.sim.expert import GeodesicExpert

    harsh = OdometryConfig(scale_std=0.02, trans_noise=0.02, rot_noise=0.02, heading_drift_std=0.01)
    sim = MazeSim(1, eval_config(SimConfig(odometry=harsh)), seed=0)
    sim.reset_env(0, make_episodes("test", 7)[6])
    x0, y0, t0 = sim.pose[0]
    m, expert = ScanMatcher(), GeodesicExpert()
    f = sim.frames[0]
    assert f is not None
    est = m.update(np.zeros(3), f.ranges, f.scan.beam_angles(), f.scan.range_min, f.scan.range_max)
    odom = np.zeros(3)
    worst = 0.0
    for _ in range(3000):
        _, _, terminated, truncated = sim.step(expert(sim))
        f = sim.frames[0]
        assert f is not None
        odom = _compose(odom, f.odom_delta)
        est = m.update(_compose(est, f.odom_delta), f.ranges, f.scan.beam_angles(), f.scan.range_min,
                       f.scan.range_max)
        dx, dy = sim.pose[0, 0] - x0, sim.pose[0, 1] - y0  # the true pose in the odometry frame
        truth = np.array([math.cos(t0) * dx + math.sin(t0) * dy, -math.sin(t0) * dx + math.cos(t0) * dy])
        worst = max(worst, float(np.hypot(*(est[:2] - truth))))
        if terminated[0] or truncated[0]:
            break
    odom_error = float(np.hypot(*(odom[:2] - truth)))
    sim.close()
    assert worst < 0.15, f"scan-matched pose strayed {worst:.3f} m from the truth"
    assert odom_error > 0.5, f"wheel odometry alone ended only {odom_error:.3f} m off: pick a harder episode"
