"""Value rescaling h and its inverse: pinned values, the paper's literal forms, and a tight round trip."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robonav.train.r2d2.rescale import EPS, h, h_inv, h_inv_paper, h_paper


def test_pinned_values():
    x = torch.tensor([0.0, 3.0, -3.0, 8.0, 99.0], dtype=torch.float64)
    # h(3) = sqrt(4) - 1 + 0.003 = 1.003;  h(8) = 3 - 1 + 0.008 = 2.008;  h(99) = 10 - 1 + 0.099 = 9.099
    torch.testing.assert_close(h(x), torch.tensor([0.0, 1.003, -1.003, 2.008, 9.099], dtype=torch.float64))
    torch.testing.assert_close(h_inv(h(x)), x)


def test_round_trip_over_twelve_decades_both_signs():
    mag = torch.logspace(-6, 6, 2001, dtype=torch.float64)
    x = torch.cat([mag, -mag, torch.zeros(1, dtype=torch.float64)])
    torch.testing.assert_close(h_inv(h(x)), x, rtol=1e-13, atol=0)
    torch.testing.assert_close(h(h_inv(x)), x, rtol=1e-13, atol=0)
    x32 = x.float()
    torch.testing.assert_close(h_inv(h(x32)), x32, rtol=2e-6, atol=0)


def test_equals_the_papers_literal_formulas():
    for x in [-1e5, -37.5, -1.0, -0.25, 0.0, 0.5, 2.0, 10.0, 1234.5, 1e6]:
        assert math.isclose(float(h(torch.tensor(x, dtype=torch.float64))), h_paper(x), rel_tol=1e-12, abs_tol=1e-15)
        y = h_paper(x)
        assert math.isclose(float(h_inv(torch.tensor(y, dtype=torch.float64))), h_inv_paper(y), rel_tol=1e-9,
                            abs_tol=1e-9)


def test_the_literal_inverse_is_what_loses_digits_near_zero():
    """Why the module uses the rearranged form: the paper's literal h^-1 cancels catastrophically at 1e-6."""
    y = h(torch.tensor(1e-6, dtype=torch.float64))
    assert abs(h_inv_paper(float(y)) - 1e-6) / 1e-6 > 1e-9
    assert abs(float(h_inv(y)) - 1e-6) / 1e-6 < 1e-13


@settings(max_examples=200, deadline=None)
@given(st.floats(-1e6, 1e6, allow_nan=False))
def test_h_is_odd_increasing_and_inverted(x):
    t = torch.tensor([x, x + max(1e-3, abs(x) * 1e-6)], dtype=torch.float64)
    y = h(t)
    assert y[1] > y[0]
    assert float(h(-t[:1])) == -float(y[0])
    assert math.isclose(float(h_inv(y[:1])), x, rel_tol=1e-12, abs_tol=1e-300)
    assert EPS == 1e-3
