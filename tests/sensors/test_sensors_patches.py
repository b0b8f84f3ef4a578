"""Egocentric patches: parity with the reference, orientation, and no thin wall missed at any heading."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from robonav.sensors import reference as ref
from robonav.sensors.frame import ScanSpec, SensorFrame
from robonav.sensors.layout import make_luts
from robonav.sensors.patches import sample_patches
from robonav.sensors.preprocessor import Preprocessor
from robonav.sensors.spec import ObservationSpec

LUTS = make_luts(ObservationSpec())


def numba_patches(occ_level, vis_level, u0, v0, heading, pixels, occ_now=0, vis_now=0, occ_ticks=None,
                  vis_ticks=None):
    """Sample one level (stored as the only level of a flat buffer at offset 5) with the kernel."""
    n = occ_level.shape[0]

    def flat(a, dtype):
        return np.concatenate([np.zeros(5, dtype), a.reshape(-1).astype(dtype)])

    occ_t = flat(occ_ticks if occ_ticks is not None else np.zeros((n, n)), np.uint32)
    vis_t = flat(vis_ticks if vis_ticks is not None else np.zeros((n, n)), np.uint32)
    obs = np.full(3 + 2 * pixels * pixels, -7.0, np.float32)
    sample_patches(flat(occ_level, np.int8), occ_t, flat(vis_level, np.uint8), vis_t, 5, n, u0, v0,
                   math.cos(heading), math.sin(heading), pixels, occ_now, vis_now, occ_ticks is not None,
                   vis_ticks is not None, LUTS, obs, 3, 3 + pixels * pixels)
    assert obs[:3].tolist() == [-7.0] * 3
    return obs[3:3 + pixels * pixels].reshape(pixels, pixels), obs[3 + pixels * pixels:].reshape(pixels, pixels)


@settings(max_examples=150, deadline=None)
@given(n=st.sampled_from([4, 24, 48]), pixels=st.sampled_from([1, 5, 12]), seed=st.integers(0, 999),
       u0=st.floats(-40.0, 90.0), v0=st.floats(-40.0, 90.0), heading=st.floats(-math.pi, math.pi),
       decay=st.booleans())
def test_patch_parity(n, pixels, seed, u0, v0, heading, decay):
    rng = np.random.default_rng(seed)
    occ = rng.integers(-40, 71, (n, n))
    vis = rng.integers(0, 256, (n, n))
    ticks = rng.integers(0, 20, (n, n)) if decay else None
    got_occ, got_vis = numba_patches(occ, vis, u0, v0, heading, pixels, 20, 20, ticks, ticks)
    if decay:
        occ, vis = ref.decayed(occ, ticks, 20), ref.decayed(vis, ticks, 20)
    c, s = math.cos(heading), math.sin(heading)
    want_occ, want_vis = ref.sample_patches(occ, vis, (0, 0), n, u0, v0, c, s, pixels, LUTS)
    np.testing.assert_array_equal(got_occ, want_occ)
    np.testing.assert_array_equal(got_vis, want_vis)


@settings(max_examples=200, deadline=None)
@given(heading=st.floats(-math.pi, math.pi), du=st.floats(0.0, 1.0), dv=st.floats(0.0, 1.0),
       wi=st.integers(-5, 5), wj=st.integers(-5, 5))
def test_a_single_wall_cell_in_the_patch_is_never_missed(heading, du, dv, wi, wj):
    n, pixels = 40, 12
    u0, v0 = 20.0 + du, 20.0 + dv
    wall = (int(u0) + wi, int(v0) + wj)
    centre = np.array([wall[0] + 0.5 - u0, wall[1] + 0.5 - v0])  # the cell centre relative to the robot
    forward, left = centre @ [math.cos(heading), math.sin(heading)], centre @ [-math.sin(heading), math.cos(heading)]
    inside = max(abs(forward), abs(left)) < pixels / 2
    occ = np.zeros((n, n), np.int64)
    occ[wall] = 70
    patch, _ = numba_patches(occ, np.zeros((n, n), np.int64), u0, v0, heading, pixels)
    if inside:  # a cell whose centre lies in the patch square shows, whatever the heading and sub-cell position
        assert patch.max() > 0.9


def test_rows_run_forward_and_columns_left():
    pre = Preprocessor()
    spec = pre.spec
    scan = ScanSpec.evenly_spaced(360)  # beam 180 looks straight ahead
    ranges = np.full(360, np.inf, np.float32)
    ranges[180] = 1.0  # a post 1 m straight ahead, nothing else within range
    # turn left by 90 degrees first: the wall is then 1 m along odometry +y, and still ahead of the robot
    obs = pre(SensorFrame(ranges, scan, np.array([0.0, 0.0, math.pi / 2]), np.zeros(2)), (0.0, 0.0))
    fine = obs[spec.block("obstacle_fine").slice].reshape(12, 12)
    rows, cols = np.nonzero(fine > 0.6)
    # 1 m ahead = 4 pixels of 0.25 m beyond the centre (5.5): rows 9 and 10 (2x2 footprint); columns 5 and 6
    assert set(rows.tolist()) <= {9, 10} and set(cols.tolist()) <= {5, 6} and fine.max() > 0.6
    assert (fine[6:9, 5:7] < 0.5).all() and (fine[3:5, 2:10] < 0.5).all()  # cleared free space, ahead and behind
    trail = obs[spec.block("trajectory_fine").slice].reshape(12, 12)
    assert trail[5:7, 5:7].min() > 0.2 and trail[0].max() == 0.0
