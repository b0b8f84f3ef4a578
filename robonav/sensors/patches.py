"""Egocentric patches: both memories sampled around the robot, rotated into the robot frame.

A patch of P x P pixels reads one pyramid level whose cells are exactly one pixel wide (level 1 for the fine
patch, level 2 for the coarse one). Pixel (r, c) is centred at ((r - (P-1)/2), (c - (P-1)/2)) pixels forward
and left of the robot; its value is the max over the 2 x 2 level cells whose centres surround that point, read
through the channel's lookup table. Why 2 x 2: every level cell whose centre lies in the patch is within half a
pixel diagonal (0.71 px) of some pixel centre, so within one cell along each axis, so among that pixel's four:
at any heading no cell is missed, and since a level cell is the max of the grid cells under it, neither is a
wall one grid cell thin. The price is a blur of up to one pixel. Cells outside the grid read as unknown (0).
"""

from __future__ import annotations

import math

import numpy as np

from robonav.sensors.jit import kernel
from robonav.sensors.layout import LUT_OCC, LUT_OFFSET, LUT_VIS
from robonav.sensors.memory import read_cell

__all__ = ["sample_patches"]


@kernel
def sample_patches(occ: np.ndarray, occ_ticks: np.ndarray, vis: np.ndarray, vis_ticks: np.ndarray, base: int,
                   n: int, u0: float, v0: float, c: float, s: float, pixels: int, occ_now: int, vis_now: int,
                   occ_decay: bool, vis_decay: bool, luts: np.ndarray, obs: np.ndarray, off_occ: int,
                   off_vis: int) -> None:
    """Write the obstacle and trajectory patches (offsets ``off_occ``/``off_vis`` in ``obs``, -1: skip) read
    from the level at ``base`` (side ``n``), the robot at (u0, v0) level cells with heading cos c, sin s."""
    half = (pixels - 1) * 0.5
    inside = u0 > -2.0 * pixels and u0 < n + 2.0 * pixels and v0 > -2.0 * pixels and v0 < n + 2.0 * pixels
    for r in range(pixels):
        a = r - half
        for q in range(pixels):
            b = q - half
            best_occ = -(1 << 30)
            best_vis = 0
            if inside:
                i0 = int(math.floor(u0 + (c * a - s * b) - 0.5))
                j0 = int(math.floor(v0 + (s * a + c * b) - 0.5))
                for i in range(i0, i0 + 2):
                    for j in range(j0, j0 + 2):
                        if i < 0 or i >= n or j < 0 or j >= n:
                            best_occ = max(best_occ, 0)
                            continue
                        idx = base + i * n + j
                        if off_occ >= 0:
                            best_occ = max(best_occ, read_cell(occ, occ_ticks, idx, occ_now, occ_decay))
                        if off_vis >= 0:
                            best_vis = max(best_vis, read_cell(vis, vis_ticks, idx, vis_now, vis_decay))
            else:
                best_occ = 0
            if off_occ >= 0:
                obs[off_occ + r * pixels + q] = luts[LUT_OCC, best_occ + LUT_OFFSET]
            if off_vis >= 0:
                obs[off_vis + r * pixels + q] = luts[LUT_VIS, best_vis]
