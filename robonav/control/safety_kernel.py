"""The safety layer's rules compiled (robonav.control.safety.SafetyLayer.filter calls it): one call for every
env, no NumPy temporaries, so the control loop's tick pays microseconds, not the hundreds a chain of small NumPy
operations costs on a cold core. Imported on first use, so `import robonav.control` stays free of numba.
`robonav.control.safety.safety_reference` is its plain-Python twin, held to it by tests/control/test_safety.py."""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["filter_kernel"]


@njit(cache=True, nogil=True)
def filter_kernel(commands, ranges, counts, sin, abs_cos, ahead, behind, cover_ahead, cover_behind, inflated,
                   previous, stop, stop_distance, span, min_valid_fraction, v_max, omega_max, dv, domega,
                   safe, factor, blind):
    """`SafetyLayer.filter`'s rules for every env in one compiled call (no NumPy temporaries: the loop's tick).

    Per env i, over its first counts[i] beams (beam geometry rows [1, B] shared or [N, B] per env): the forward
    and backward clearance of the swept corridor of half-width inflated[i] (NaN and +inf readings say nothing,
    -inf and negative ones mean touching), the blind-direction rule, then clipping, the obstacle factor, the
    acceleration limits against previous[i], braking, and the e-stop. Writes safe [N, 2], factor [N] and
    blind [N, 2]."""
    n = ranges.shape[0]
    for i in range(n):
        g = i if sin.shape[0] > 1 else 0
        reach = inflated[i] * inflated[i]
        forward = np.inf
        backward = np.inf
        covering_ahead = 0
        covering_behind = 0
        seen_ahead = 0
        seen_behind = 0
        for k in range(counts[i]):
            r = np.float64(ranges[i, k])
            valid = not np.isnan(r)
            if cover_ahead[g, k]:
                covering_ahead += 1
                seen_ahead += valid
            if cover_behind[g, k]:
                covering_behind += 1
                seen_behind += valid
            if not valid:
                continue
            r = max(r, 0.0)
            y = r * sin[g, k]
            room = reach - y * y
            if not room > 0.0:  # outside the corridor (or inf * 0: a beam with no return straight along x)
                continue
            travel = r * abs_cos[g, k] - np.sqrt(room)
            if ahead[g, k]:
                forward = min(forward, travel)
            if behind[g, k]:
                backward = min(backward, travel)
        f_forward = min(max((forward - stop_distance) / span, 0.0), 1.0)
        f_backward = min(max((backward - stop_distance) / span, 0.0), 1.0)
        blind_ahead = min_valid_fraction > 0.0 and (
            covering_ahead == 0 or seen_ahead < min_valid_fraction * covering_ahead)
        blind_behind = min_valid_fraction > 0.0 and (
            covering_behind == 0 or seen_behind < min_valid_fraction * covering_behind)
        if blind_ahead:
            f_forward = 0.0
        if blind_behind:
            f_backward = 0.0
        v = commands[i, 0] if np.isfinite(commands[i, 0]) else 0.0
        omega = commands[i, 1] if np.isfinite(commands[i, 1]) else 0.0
        v = min(max(v, -v_max), v_max)
        omega = min(max(omega, -omega_max), omega_max)
        f = f_forward if v > 0.0 else (f_backward if v < 0.0 else 1.0)
        v = v * f  # obstacle target
        v = min(max(v, previous[i, 0] - dv), previous[i, 0] + dv)
        omega = min(max(omega, previous[i, 1] - domega), previous[i, 1] + domega)
        v = min(v, f_forward * v_max)  # braking beats comfort: never faster toward an obstacle than allowed
        v = max(v, -f_backward * v_max)
        if stop[i]:
            v = 0.0
            omega = 0.0
        safe[i, 0] = v
        safe[i, 1] = omega
        factor[i] = f
        blind[i, 0] = blind_ahead
        blind[i, 1] = blind_behind
