"""Scan preprocessing: beam tables, REP 117 classes, min-pooling; the Numba kernel held to the NumPy reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robonav.sensors import reference as ref
from robonav.sensors.frame import ScanSpec, ScanSpecError
from robonav.sensors.scan import (
    INVALID,
    NO_RETURN,
    RANGE,
    TOO_CLOSE,
    BeamTableCache,
    build_beam_table,
    classify,
    scan_bins,
)

NAN, INF = float("nan"), float("inf")


def numba_scan(ranges, table, range_min, range_max, below, above, max_range, margin, num_bins):
    """Run the kernel with fresh outputs; returns (values, valid, ray_free, ray_beam)."""
    values, valid = np.zeros(num_bins, np.float32), np.zeros(num_bins, np.float32)
    ray_free, ray_beam = np.zeros(table.num_rays), np.zeros(table.num_rays, np.int64)
    scan_bins(ranges, table.indices, range_min, range_max, below, above, max_range, margin, table.num_rays,
              np.zeros(num_bins), ray_free, ray_beam, values, valid)
    return values, valid, ray_free, ray_beam


def assert_scan_parity(ranges, spec, below=INVALID, above=INVALID, max_range=3.5, margin=0.125, num_bins=32,
                       clear_rays=64):
    table = build_beam_table(spec, num_bins, clear_rays)
    got = numba_scan(ranges, table, spec.range_min, spec.range_max, below, above, max_range, margin, num_bins)
    want = ref.scan_bins(ranges, table.indices, table.num_rays, spec.range_min, spec.range_max, below, above,
                         max_range, margin, num_bins)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[2], want[2])
    informs = np.isfinite(want[2])
    np.testing.assert_array_equal(got[3][informs], want[3][informs])
    return got


def test_bins_are_centred_on_the_robot_x_axis():
    table = build_beam_table(ScanSpec.evenly_spaced(8), 8, 64)
    # beams at -180, -135, ..., 135 degrees; bin k is centred on 45 k degrees
    assert table.indices[0].tolist() == [4, 5, 6, 7, 0, 1, 2, 3]
    assert table.num_rays == 8 and table.indices[1].tolist() == list(range(8))
    # just either side of the 22.5 degree boundary between bins 0 and 1
    angles = (math.radians(22.4), math.radians(22.6), math.radians(-22.4), math.radians(-22.6))
    table = build_beam_table(ScanSpec(4, angles=angles), 8, 64)
    assert table.indices[0].tolist() == [0, 1, 0, 7]


def test_beams_are_grouped_into_clearing_sectors_when_denser_than_clear_rays():
    table = build_beam_table(ScanSpec.evenly_spaced(1080), 32, 64)
    assert table.num_rays == 64
    per_sector = np.bincount(table.indices[1])  # 5.625 degree sectors of 1/3 degree beams: 16 or 17 each
    assert per_sector.sum() == 1080 and per_sector.min() == 16 and per_sector.max() == 17
    fov270 = build_beam_table(ScanSpec.evenly_spaced(1080, fov=1.5 * math.pi), 32, 64)
    assert fov270.num_rays == 49  # sectors -135..135 degrees: 48 spans of 5.625 degrees + 1


def test_non_finite_beam_angles_are_refused():
    with pytest.raises(ScanSpecError, match=r"ScanSpec \(spec_id 3\) has non-finite beam angles at \[1\]"):
        build_beam_table(ScanSpec(2, angles=(0.0, NAN), spec_id=3), 32, 64)


def test_table_cache_reuses_and_evicts():
    cache = BeamTableCache(32, 64, capacity=2)
    a, b, c = (ScanSpec.evenly_spaced(n) for n in (360, 720, 1080))
    assert cache.get(a) is cache.get(ScanSpec.evenly_spaced(360))
    table_b = cache.get(b)
    cache.get(c)
    assert cache.get(b) is table_b and len(cache._tables) == 2


@pytest.mark.parametrize(
    ("r", "below", "above", "expected"),
    [
        (NAN, INVALID, INVALID, INVALID), (INF, INVALID, INVALID, NO_RETURN), (-INF, INVALID, INVALID, TOO_CLOSE),
        (1.0, INVALID, INVALID, RANGE), (0.05, INVALID, INVALID, RANGE), (3.5, INVALID, INVALID, RANGE),
        (0.0, INVALID, INVALID, INVALID), (0.0, TOO_CLOSE, INVALID, TOO_CLOSE), (-2.0, TOO_CLOSE, INVALID, TOO_CLOSE),
        (3.6, INVALID, INVALID, INVALID), (3.6, INVALID, NO_RETURN, NO_RETURN), (1e30, INVALID, NO_RETURN, NO_RETURN),
    ],
)
def test_classify_pinned(r, below, above, expected):
    assert classify(r, 0.05, 3.5, below, above) == expected
    assert ref.classify(np.array([r]), 0.05, 3.5, below, above).tolist() == [expected]


def test_scan_bins_pinned_by_hand():
    spec = ScanSpec.evenly_spaced(8, range_min=0.05, range_max=3.5)  # beam k in bin (k + 4) % 8
    ranges = np.array([1.0, NAN, INF, -INF, 0.0, 5.0, 0.02, 2.0], np.float32)
    values, valid, free, _ = assert_scan_parity(ranges, spec, max_range=2.5, num_bins=8)
    # bin:   0 (0.0)  1 (5.0)  2 (0.02)  3 (2.0)   4 (1.0)   5 (nan)  6 (+inf)        7 (-inf)
    assert valid.tolist() == [0, 0, 0, 1, 1, 0, 1, 1]
    np.testing.assert_allclose(values, [1, 1, 1, 2 / 2.5, 1 / 2.5, 1, 1, 0], rtol=1e-7)
    # free distance per ray (one per beam): r - 0.125, nothing for invalid beams, range_max for +inf, 0 for -inf
    assert free.tolist() == [0.875, INF, 3.5, 0.0, INF, INF, INF, 1.875]
    values, valid, free, _ = assert_scan_parity(ranges, spec, below=TOO_CLOSE, above=NO_RETURN, max_range=2.5,
                                                num_bins=8)
    assert valid.tolist() == [1, 1, 1, 1, 1, 0, 1, 1]
    np.testing.assert_allclose(values[:3], [0, 1, 0])
    assert free.tolist()[4:7] == [0.0, 3.5, 0.0]


def test_the_nearest_beam_of_a_sector_carries_its_clearing_ray():
    spec = ScanSpec.evenly_spaced(1080)
    table = build_beam_table(spec, 32, 64)
    ranges = np.full(1080, 3.0, np.float32)
    sector = np.flatnonzero(table.indices[1] == 10)
    ranges[sector[3]] = 1.0
    ranges[sector[5]] = 1.0  # a tie: the first beam wins
    ranges[sector[0]] = NAN
    _, _, free, beam = assert_scan_parity(ranges, spec)
    assert free[10] == 1.0 - 0.125 and beam[10] == sector[3]


@pytest.mark.parametrize(
    "ranges",
    [np.full(360, NAN), np.full(360, INF), np.zeros(360), np.full(360, -INF), np.full(360, 1e30),
     np.full(360, -1e30), np.full(360, 1e-30)],
    ids=["all-nan", "all-inf", "all-zero", "all-minus-inf", "huge", "huge-negative", "tiny"],
)
@pytest.mark.parametrize("modes", [(INVALID, INVALID), (TOO_CLOSE, NO_RETURN)])
def test_uniform_adversarial_scans(ranges, modes):
    assert_scan_parity(ranges.astype(np.float32), ScanSpec.evenly_spaced(360), *modes)
    assert_scan_parity(ranges.astype(np.float32), ScanSpec.evenly_spaced(360, fov=1.5 * math.pi), *modes)


def test_all_nan_scan_informs_nothing_and_clears_nothing():
    values, valid, free, _ = assert_scan_parity(np.full(360, NAN, np.float32), ScanSpec.evenly_spaced(360))
    assert values.tolist() == [1.0] * 32 and valid.tolist() == [0.0] * 32 and np.all(free == INF)


def test_270_degree_scanner_leaves_the_rear_bins_unflagged():
    _, valid, _, _ = assert_scan_parity(np.full(810, 1.0, np.float32), ScanSpec.evenly_spaced(810, fov=1.5 * math.pi))
    rear = [12, 13, 14, 15, 16, 17, 18, 19, 20]  # 135 to 225 degrees (bin edges at +-5.6 degrees)
    assert [k for k in range(32) if valid[k] == 0] == rear[1:-1]


special = st.sampled_from([NAN, INF, -INF, 0.0, -0.0, 1e30, -1e30, 1e-30, 0.05, 3.5, 2.5, -1.0])
beam_value = st.one_of(st.floats(-1.0, 12.0, width=32), special)


@st.composite
def scan_specs(draw):
    n = draw(st.one_of(st.sampled_from([1, 2, 360, 720, 1080]), st.integers(1, 1100)))
    range_min = draw(st.sampled_from([0.0, 0.05, 0.2]))
    range_max = draw(st.sampled_from([2.0, 3.5, 12.0]))
    if draw(st.booleans()):
        angles = tuple(draw(st.lists(st.floats(-10.0, 10.0), min_size=n, max_size=n)))
        return ScanSpec(n, range_min=range_min, range_max=range_max, angles=angles)
    fov = draw(st.one_of(st.sampled_from([2 * math.pi, 1.5 * math.pi]), st.floats(0.01, 2 * math.pi)))
    return ScanSpec.evenly_spaced(n, fov=fov, range_min=range_min, range_max=range_max)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), spec=scan_specs(), below=st.sampled_from([INVALID, TOO_CLOSE]),
       above=st.sampled_from([INVALID, NO_RETURN]), num_bins=st.sampled_from([1, 7, 32, 64]),
       clear_rays=st.sampled_from([1, 16, 64, 2000]), max_range=st.sampled_from([1.0, 3.5, 30.0]))
def test_scan_bins_parity_random(data, spec, below, above, num_bins, clear_rays, max_range):
    ranges = np.array(data.draw(st.lists(beam_value, min_size=spec.num_beams, max_size=spec.num_beams)), np.float32)
    values, valid, _, _ = assert_scan_parity(ranges, spec, below, above, max_range, 0.125, num_bins, clear_rays)
    assert np.all((values >= 0) & (values <= 1)) and set(np.unique(valid)) <= {0.0, 1.0}
