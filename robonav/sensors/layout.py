"""The flat, preallocated buffers the Numba step kernel works in, and the index of every slot.

A numba call costs about 60 ns per argument, so the kernel takes a few typed buffers rather than dozens of
scalars: ``cfg_f``/``cfg_i`` (settings, fixed for a Preprocessor except the F_RANGE_*/I_N_RAYS slots, which are
refreshed when the ScanSpec changes), ``work_f``/``state_i`` (pose, grid origin, counters, scratch), the memory
pyramids and the observation. The slot constants below are module globals, so numba freezes them.

Memory pyramid buffers hold three levels back to back, each a row-major square: level 0 the grid
(``grid_cells``), level 1 one cell per fine patch pixel, level 2 one cell per coarse patch pixel; each cell of
levels 1 and 2 is the max of the cells below it (memory.py). ``marks`` holds, in order: the step that last
updated each level-0 obstacle cell, the step that last queued each level-1 and level-2 cell for a recompute, and
the two recompute queues.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from robonav.sensors.plan import make_plan_buffers, reset_plan_buffers
from robonav.sensors.scan import ABOVE_MODES, BELOW_MODES
from robonav.sensors.spec import ObservationSpec

# cfg_f: float settings
F_MAX_RANGE, F_MAP_RANGE, F_CLEAR_MARGIN, F_RES, F_GOAL_CLIP, F_V_MAX, F_OMEGA_MAX = 0, 1, 2, 3, 4, 5, 6
F_RANGE_MIN, F_RANGE_MAX = 7, 8  # of the current ScanSpec
F_TRAIL_R2 = 9  # (trail_radius / grid_resolution) ** 2, in cells squared
N_CFG_F = 10

# cfg_i: integer settings and observation offsets (-1: block switched off)
I_BINS, I_BELOW, I_ABOVE, I_CELLS, I_MID_FACTOR, I_COARSE_FACTOR, I_MARGIN = 0, 1, 2, 3, 4, 5, 6
I_HIT, I_MISS, I_LO, I_HI, I_OCC_DECAY, I_VIS_DECAY = 7, 8, 9, 10, 11, 12
I_FINE_PX, I_COARSE_PX, I_N_RAYS, I_OCC_ON, I_VIS_ON, I_TRAIL_CELLS = 13, 14, 15, 16, 17, 18
I_OFF_SCAN, I_OFF_VALID, I_OFF_GOAL, I_OFF_CMD = 19, 20, 21, 22
I_OFF_OCC_FINE, I_OFF_VIS_FINE, I_OFF_OCC_COARSE, I_OFF_VIS_COARSE = 23, 24, 25, 26
N_CFG_I = 27

# work_f: pose and grid origin in the odometry frame, then scratch (bin minima, clearing range per ray)
W_X, W_Y, W_TH, W_OX, W_OY, W_SCRATCH = 0, 1, 2, 3, 4, 5
# state_i: counters, then scratch (the beam each clearing ray runs along)
S_STEP, S_MARK_I, S_MARK_J, S_RECENTRES, S_ODOM_DROPPED, S_SCRATCH = 0, 1, 2, 3, 4, 5
NO_MARK = -(1 << 40)  # S_MARK_I/J before the first visit of an episode

LUT_OCC, LUT_VIS = 0, 1  # rows of `luts`: obstacle value per (log-odds units + 128), trajectory value per visits
LUT_OFFSET = 128


@dataclass(frozen=True)
class Buffers:
    """Every array the step kernel reads or writes (one Preprocessor owns one set)."""

    cfg_f: np.ndarray
    """float64 [N_CFG_F] settings."""
    cfg_i: np.ndarray
    """int64 [N_CFG_I] settings and observation offsets."""
    luts: np.ndarray
    """float32 [2, 256] channel value per stored memory value."""
    work_f: np.ndarray
    """float64 pose (x, y, theta), grid origin (x, y), then scratch."""
    state_i: np.ndarray
    """int64 step counter, last visit cell, recentre and dropped-delta counts, then scratch."""
    occ: np.ndarray
    """int8 obstacle log-odds units, three pyramid levels back to back."""
    occ_ticks: np.ndarray
    """uint32 decay tick of the last write of each obstacle cell (same layout as ``occ``)."""
    vis: np.ndarray
    """uint8 visit counts, three pyramid levels back to back."""
    vis_ticks: np.ndarray
    """uint32 decay tick of the last write of each visit cell."""
    marks: np.ndarray
    """uint32 per-step update marks and recompute queues (see the module docstring)."""
    obs: np.ndarray
    """float32 [D] observation the Preprocessor returns."""
    plan_f: np.ndarray
    """float64 guidance: cost table and lookahead, then A* g values, heap keys and the path's points (plan.py)."""
    plan_i: np.ndarray
    """int32 guidance: settings and state, then A* parents, plan stamps and the heap's items and positions."""
    plan_u8: np.ndarray
    """uint8 guidance: blocked flag and squared distance to the nearest blocked cell, per level-0 cell."""
    occ_words: np.ndarray
    """uint64 view of the level-0 obstacle cells (8 to a word) where the grid side is a multiple of 8, else a
    placeholder: the guidance scans it for the known box."""


def level_sizes(spec: ObservationSpec) -> tuple[int, int, int]:
    """Side of each pyramid level: grid, fine-pixel level, coarse-pixel level."""
    c = spec.config
    n0 = c.grid_cells
    return n0, n0 // c.mid_factor, n0 // c.coarse_factor


def make_luts(spec: ObservationSpec) -> np.ndarray:
    """Channel value per stored value: sigmoid of the log-odds, and 1 - exp(-visits / visit_scale)."""
    c = spec.config
    luts = np.empty((2, 256), np.float32)
    units = np.arange(256, dtype=np.float64) - LUT_OFFSET
    luts[LUT_OCC] = 1.0 / (1.0 + np.exp(-units * c.log_odds_quantum))
    luts[LUT_VIS] = 1.0 - np.exp(-np.arange(256, dtype=np.float64) / c.visit_scale)
    return luts


def make_buffers(spec: ObservationSpec) -> Buffers:
    """Allocate and fill every buffer for ``spec`` (memories empty, pose at the origin)."""
    c = spec.config
    n0, n1, n2 = level_sizes(spec)
    cfg_f = np.zeros(N_CFG_F, np.float64)
    cfg_f[F_MAX_RANGE], cfg_f[F_MAP_RANGE], cfg_f[F_CLEAR_MARGIN] = c.max_range, c.map_range, c.clear_margin
    cfg_f[F_RES], cfg_f[F_GOAL_CLIP] = c.grid_resolution, c.goal_clip
    cfg_f[F_V_MAX], cfg_f[F_OMEGA_MAX] = c.v_max, c.omega_max
    cfg_f[F_TRAIL_R2] = (c.trail_radius / c.grid_resolution) ** 2
    cfg_i = np.zeros(N_CFG_I, np.int64)
    cfg_i[I_BINS] = c.num_bins
    cfg_i[I_BELOW], cfg_i[I_ABOVE] = BELOW_MODES[c.below_range_min], ABOVE_MODES[c.above_range_max]
    cfg_i[I_CELLS], cfg_i[I_MID_FACTOR], cfg_i[I_COARSE_FACTOR] = n0, c.mid_factor, c.coarse_factor // c.mid_factor
    cfg_i[I_MARGIN] = c.recentre_margin_cells
    cfg_i[I_HIT], cfg_i[I_MISS] = c.log_odds_units("hit_log_odds"), c.log_odds_units("miss_log_odds")
    cfg_i[I_LO], cfg_i[I_HI] = c.log_odds_units("log_odds_min"), c.log_odds_units("log_odds_max")
    cfg_i[I_OCC_DECAY], cfg_i[I_VIS_DECAY] = c.obstacle_decay_steps, c.visit_decay_steps
    cfg_i[I_FINE_PX], cfg_i[I_COARSE_PX] = c.fine_pixels, c.coarse_pixels
    cfg_i[I_OCC_ON] = int(c.obstacle_fine or c.obstacle_coarse)
    cfg_i[I_VIS_ON] = int(c.trajectory_fine or c.trajectory_coarse)
    cfg_i[I_TRAIL_CELLS] = math.floor(c.trail_radius / c.grid_resolution + 1e-9)
    for slot, name in ((I_OFF_SCAN, "scan"), (I_OFF_VALID, "scan_valid"), (I_OFF_GOAL, "goal"),
                       (I_OFF_CMD, "command"), (I_OFF_OCC_FINE, "obstacle_fine"),
                       (I_OFF_VIS_FINE, "trajectory_fine"), (I_OFF_OCC_COARSE, "obstacle_coarse"),
                       (I_OFF_VIS_COARSE, "trajectory_coarse")):
        cfg_i[slot] = spec.block(name).offset if spec.has(name) else -1
    cells = n0 * n0 + n1 * n1 + n2 * n2
    work_f = np.zeros(W_SCRATCH + c.num_bins + c.clear_rays, np.float64)
    state_i = np.zeros(S_SCRATCH + c.clear_rays, np.int64)
    marks = np.zeros(n0 * n0 + 2 * (n1 * n1 + n2 * n2), np.uint32)
    buffers = Buffers(cfg_f, cfg_i, make_luts(spec), work_f, state_i, np.zeros(cells, np.int8),
                      np.zeros(cells, np.uint32), np.zeros(cells, np.uint8), np.zeros(cells, np.uint32), marks,
                      np.zeros(spec.size, np.float32),
                      *make_plan_buffers(c, spec.block("guidance").offset if spec.has("guidance") else -1),
                      np.zeros(1, np.uint64))
    if n0 % 8 == 0:
        buffers = dataclasses.replace(buffers, occ_words=buffers.occ[:n0 * n0].view(np.uint64))
    reset_buffers(buffers, spec)
    return buffers


def reset_buffers(b: Buffers, spec: ObservationSpec) -> None:
    """Empty both memories and put the robot at the odometry origin, in the middle of the grid."""
    half = spec.config.grid_cells // 2 * spec.config.grid_resolution
    b.work_f[:] = 0.0
    b.work_f[W_OX] = b.work_f[W_OY] = -half
    b.state_i[:] = 0
    b.state_i[S_MARK_I] = b.state_i[S_MARK_J] = NO_MARK
    for a in (b.occ, b.occ_ticks, b.vis, b.vis_ticks, b.marks, b.obs):
        a.fill(0)
    reset_plan_buffers(b.plan_i, b.plan_u8)
