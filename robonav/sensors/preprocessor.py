"""The one entry point: ``pre = Preprocessor(spec)``, then ``obs = pre(frame, last_command)`` every control step.

One call does, in one Numba kernel and without allocating: integrate the odometry delta, recentre the memory
grids if the robot nears an edge, min-pool the scan into bins, update the obstacle memory (hits, then free space)
and the trajectory memory, sample the fine and coarse patches of both, write the goal and command blocks, and
the guidance block (A* on the obstacle memory, robonav.sensors.plan) where the spec has one.
The layout of the returned vector is ``pre.spec`` (an ObservationSpec).
With ``laser_odometry`` on, the odometry delta is first corrected by scan matching
(robonav.sensors.scanmatch; one more kernel call, no allocation either).

The returned array is the Preprocessor's own buffer, overwritten by the next call: copy it to keep it.
A frame whose ``episode_id`` differs from the previous frame's resets the Preprocessor first (pose to the
origin, both memories empty), as does ``reset()``. ``warmup()`` compiles the kernel (or loads it from numba's
on-disk cache) before a control loop starts; see robonav.sensors.jit for read-only installs and NUMBA_CACHE_DIR.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from robonav.errors import UserError
from robonav.sensors import layout as L
from robonav.sensors.frame import ScanSpec, ScanSpecError, SensorFrame
from robonav.sensors.jit import kernel
from robonav.sensors.layout import Buffers, level_sizes, make_buffers, reset_buffers
from robonav.sensors.memory import clear_free, flush_queues, mark_hits, mark_visit, recentre
from robonav.sensors.odometry import command_block, goal_block, integrate_pose
from robonav.sensors.patches import sample_patches
from robonav.sensors.plan import P_OFF, plan_step
from robonav.sensors.scan import BeamTable, BeamTableCache, scan_bins
from robonav.sensors.scanmatch import ScanMatcher
from robonav.sensors.spec import ObservationSpec, PreprocessorConfig

__all__ = ["Preprocessor", "SensorFrameError", "step_kernel"]

OK, BAD_GOAL = 0, 1


class SensorFrameError(UserError, ValueError):
    """A SensorFrame the Preprocessor cannot use (a non-finite goal)."""


@kernel
def step_kernel(ranges: np.ndarray, dx: float, dy: float, dth: float, gx: float, gy: float, v: float,
                omega: float, directions: np.ndarray, indices: np.ndarray, cfg_f: np.ndarray, cfg_i: np.ndarray,
                luts: np.ndarray, work_f: np.ndarray, state_i: np.ndarray, occ: np.ndarray, occ_ticks: np.ndarray,
                vis: np.ndarray, vis_ticks: np.ndarray, marks: np.ndarray, obs: np.ndarray, plan_f: np.ndarray,
                plan_i: np.ndarray, plan_u8: np.ndarray, occ_words: np.ndarray) -> int:
    """One control step (see the module docstring); returns OK, or BAD_GOAL with nothing changed."""
    if not (math.isfinite(gx) and math.isfinite(gy)):
        return BAD_GOAL
    step = state_i[L.S_STEP] + 1
    state_i[L.S_STEP] = step
    occ_period = cfg_i[L.I_OCC_DECAY]
    vis_period = cfg_i[L.I_VIS_DECAY]
    occ_decay = occ_period > 0
    vis_decay = vis_period > 0
    occ_now = step // occ_period if occ_decay else 0
    vis_now = step // vis_period if vis_decay else 0

    pose = work_f[L.W_X:L.W_TH + 1]
    if not integrate_pose(pose, dx, dy, dth):
        state_i[L.S_ODOM_DROPPED] += 1
    n0 = cfg_i[L.I_CELLS]
    f1 = cfg_i[L.I_MID_FACTOR]
    f2 = cfg_i[L.I_COARSE_FACTOR]
    res = cfg_f[L.F_RES]
    recentre(work_f, state_i, occ, occ_ticks, vis, vis_ticks, n0, f1, f2, cfg_i[L.I_MARGIN], res)
    x = work_f[L.W_X]
    y = work_f[L.W_Y]
    c = math.cos(work_f[L.W_TH])
    s = math.sin(work_f[L.W_TH])
    ox = work_f[L.W_OX]
    oy = work_f[L.W_OY]

    num_bins = cfg_i[L.I_BINS]
    num_rays = cfg_i[L.I_N_RAYS]
    below = cfg_i[L.I_BELOW]
    above = cfg_i[L.I_ABOVE]
    range_min = cfg_f[L.F_RANGE_MIN]
    range_max = cfg_f[L.F_RANGE_MAX]
    ray_free = work_f[L.W_SCRATCH + num_bins:L.W_SCRATCH + num_bins + num_rays]
    ray_beam = state_i[L.S_SCRATCH:L.S_SCRATCH + num_rays]
    off = cfg_i[L.I_OFF_SCAN]
    off_valid = cfg_i[L.I_OFF_VALID]
    scan_bins(ranges, indices, range_min, range_max, below, above, cfg_f[L.F_MAX_RANGE], cfg_f[L.F_CLEAR_MARGIN],
              num_rays, work_f[L.W_SCRATCH:L.W_SCRATCH + num_bins], ray_free, ray_beam, obs[off:off + num_bins],
              obs[off_valid:off_valid + num_bins])

    if cfg_i[L.I_OCC_ON]:
        map_range = cfg_f[L.F_MAP_RANGE]
        lo = cfg_i[L.I_LO]
        hi = cfg_i[L.I_HI]
        mark_hits(ranges, directions, range_min, range_max, below, above, map_range, x, y, c, s, ox, oy, res, occ,
                  occ_ticks, marks, n0, f1, f2, cfg_i[L.I_HIT], lo, hi, step, occ_now, occ_decay)
        queued = clear_free(directions, num_rays, ray_free, ray_beam, map_range, x, y, c, s, ox, oy, res, occ,
                            occ_ticks, marks, n0, f1, f2, cfg_i[L.I_MISS], lo, hi, step, occ_now, occ_decay, 0)
        flush_queues(occ, occ_ticks, marks, n0, f1, f2, step, occ_now, occ_decay, queued)
    if cfg_i[L.I_VIS_ON]:
        u = (x - ox) / res
        w = (y - oy) / res
        if u >= 0.0 and u < n0 and w >= 0.0 and w < n0:
            ci = int(math.floor(u))
            cj = int(math.floor(w))
            if ci != state_i[L.S_MARK_I] or cj != state_i[L.S_MARK_J]:
                mark_visit(vis, vis_ticks, n0, f1, f2, ci, cj, cfg_i[L.I_TRAIL_CELLS], cfg_f[L.F_TRAIL_R2], vis_now,
                           vis_decay)
                state_i[L.S_MARK_I] = ci
                state_i[L.S_MARK_J] = cj

    n1 = n0 // f1
    off_occ = cfg_i[L.I_OFF_OCC_FINE]
    off_vis = cfg_i[L.I_OFF_VIS_FINE]
    if off_occ >= 0 or off_vis >= 0:
        cell = res * f1
        sample_patches(occ, occ_ticks, vis, vis_ticks, n0 * n0, n1, (x - ox) / cell, (y - oy) / cell, c, s,
                       cfg_i[L.I_FINE_PX], occ_now, vis_now, occ_decay, vis_decay, luts, obs, off_occ, off_vis)
    off_occ = cfg_i[L.I_OFF_OCC_COARSE]
    off_vis = cfg_i[L.I_OFF_VIS_COARSE]
    if off_occ >= 0 or off_vis >= 0:
        cell = res * (f1 * f2)
        sample_patches(occ, occ_ticks, vis, vis_ticks, n0 * n0 + n1 * n1, n1 // f2, (x - ox) / cell,
                       (y - oy) / cell, c, s, cfg_i[L.I_COARSE_PX], occ_now, vis_now, occ_decay, vis_decay, luts, obs,
                       off_occ, off_vis)
    off = cfg_i[L.I_OFF_GOAL]
    goal_block(pose, gx, gy, cfg_f[L.F_GOAL_CLIP], obs[off:off + 3])
    off = cfg_i[L.I_OFF_CMD]
    command_block(v, omega, cfg_f[L.F_V_MAX], cfg_f[L.F_OMEGA_MAX], obs[off:off + 2])
    if plan_i[P_OFF] >= 0:  # plans on the stored (undecayed) level-0 obstacle units
        plan_step(occ[:n0 * n0], occ_words, plan_f, plan_i, plan_u8, n0, res, x, y, work_f[L.W_TH], ox, oy, gx, gy,
                  state_i[L.S_RECENTRES], obs)
    return OK


_WARM_BUFFERS = ("cfg_f", "cfg_i", "luts", "work_f", "state_i", "occ", "vis", "marks", "obs", "plan_u8",
                 "occ_words")


def _cache_lines(b: Buffers) -> list[np.ndarray]:
    """Byte views of the buffers `Preprocessor.prewarm` reads (each contiguous, so a view, not a copy)."""
    return [np.ascontiguousarray(getattr(b, name)).reshape(-1).view(np.uint8) for name in _WARM_BUFFERS]


@kernel
def _touch(view: np.ndarray) -> int:
    """Sum of one byte per 64-byte cache line of ``view``."""
    total = 0
    for i in range(0, view.shape[0], 64):
        total += view[i]
    return total


class Preprocessor:
    """Raw SensorFrame + last command -> float32 observation (layout ``spec``), with preallocated state.

    >>> pre = Preprocessor()
    >>> scan = ScanSpec.evenly_spaced(360)
    >>> frame = SensorFrame(np.full(360, np.inf, np.float32), scan, np.zeros(3), np.array([2.0, 0.0]))
    >>> obs = pre(frame, (0.0, 0.0))
    >>> obs.shape, round(float(obs[pre.spec.block("goal").offset]), 6)  # goal 2 m ahead: 2 / 10 m
    ((645,), 0.2)
    """

    def __init__(self, spec: ObservationSpec | PreprocessorConfig | None = None) -> None:
        if spec is None:
            spec = ObservationSpec()
        elif isinstance(spec, PreprocessorConfig):
            spec = ObservationSpec(spec)
        self.spec: ObservationSpec = spec
        """Layout of the observation and the settings the Preprocessor runs with."""
        self.dim: int = spec.size
        """Length D of the observation."""
        self.low, self.high = spec.bounds()
        self._b: Buffers = make_buffers(spec)
        self._tables = BeamTableCache(spec.config.num_bins, spec.config.clear_rays)
        self._scan: ScanSpec | None = None
        self._table: BeamTable | None = None
        self._episode: int | None = None
        self._stage = np.empty(0, np.float32)
        self._matcher = ScanMatcher() if spec.config.laser_odometry else None
        self._lines: list[np.ndarray] | None = None  # prewarm's byte views of the buffers, made on its first call

    def prewarm(self) -> int:
        """Read one byte of every cache line of the buffers each step reads (settings, tables, pose, memories,
        update marks, observation, the guidance cost map; not the A* scratch or the decay stamps), changing
        nothing: the control loop calls it just before a tick (LoopConfig.prewarm) so the step does not wait on
        memory. Returns a checksum of the bytes read (so the reads cannot be optimised away)."""
        if self._lines is None:
            self._lines = _cache_lines(self._b)
        total = 0
        for view in self._lines:
            total += _touch(view)
        return total

    def reset(self) -> None:
        """Pose to the odometry origin, both memories empty; the next frame starts an episode."""
        reset_buffers(self._b, self.spec)
        self._episode = None
        if self._matcher is not None:
            self._matcher.reset()

    def _use_scan(self, scan: ScanSpec) -> BeamTable:
        """Switch the beam tables (and the kernel's range limits) to ``scan``."""
        table = self._tables.get(scan)
        self._b.cfg_f[L.F_RANGE_MIN], self._b.cfg_f[L.F_RANGE_MAX] = scan.range_min, scan.range_max
        self._b.cfg_i[L.I_N_RAYS] = table.num_rays
        self._scan, self._table = scan, table
        return table

    def __call__(self, frame: SensorFrame, last_command: Sequence[float] | np.ndarray) -> np.ndarray:
        """Process one frame; ``last_command`` = (v, omega) as sent after the safety layer. Returns the
        Preprocessor's own observation buffer (float32 [D]): copy it to keep it past the next call."""
        if frame.episode_id != self._episode:
            self.reset()
            self._episode = frame.episode_id
        table = self._table if frame.scan is self._scan else self._use_scan(frame.scan)
        assert table is not None
        ranges = frame.ranges
        flags = ranges.flags
        if ranges.dtype != np.float32 or not (flags.c_contiguous and flags.writeable):
            ranges = self._staged(ranges)
        if ranges.shape != (table.directions.shape[1],):
            raise ScanSpecError(
                f"SensorFrame.ranges has shape {ranges.shape}, expected ({table.directions.shape[1]},) from its "
                f"ScanSpec (spec_id {frame.scan.spec_id}): send the description that matches the scan"
            )
        dx, dy, dth = frame.odom_delta.tolist()
        gx, gy = frame.goal.tolist()
        b = self._b
        if self._matcher is not None:  # laser odometry: the delta the scan match says, from the current pose
            dx, dy, dth = self._matcher.correct(b.work_f[L.W_X:L.W_TH + 1], (dx, dy, dth), ranges, frame.scan)
        status = step_kernel(ranges, dx, dy, dth, gx, gy, float(last_command[0]), float(last_command[1]),
                             table.directions, table.indices, b.cfg_f, b.cfg_i, b.luts, b.work_f, b.state_i, b.occ,
                             b.occ_ticks, b.vis, b.vis_ticks, b.marks, b.obs, b.plan_f, b.plan_i, b.plan_u8,
                             b.occ_words)
        if status == BAD_GOAL:
            raise SensorFrameError(
                f"SensorFrame.goal must be finite (odometry-frame metres), got {frame.goal!r} (episode "
                f"{frame.episode_id}, seq {frame.seq}): the frame was not processed"
            )
        return b.obs

    @property
    def buffers(self) -> Buffers:
        """The arrays ``step_kernel`` reads and writes (robonav.sensors.batch steps many of them in one call)."""
        return self._b

    def share_buffers(self, buffers: Buffers) -> None:
        """Work in ``buffers`` from now on (same shapes and contents as ``buffers``; robonav.sensors.batch hands
        each Preprocessor its rows of one stacked set)."""
        for name in Buffers.__dataclass_fields__:
            old, new = getattr(self._b, name), getattr(buffers, name)
            if old.shape != new.shape or old.dtype != new.dtype:
                raise ValueError(f"Preprocessor.share_buffers: {name} is {new.dtype}{list(new.shape)}, expected "
                                 f"{old.dtype}{list(old.shape)}")
        self._b = buffers
        self._lines = None

    @property
    def beam_table(self) -> BeamTable | None:
        """Bins, clearing rays and directions of the current scan's beams (None before the first frame)."""
        return self._table

    def _staged(self, ranges: np.ndarray) -> np.ndarray:
        """``ranges`` copied into the Preprocessor's own float32 buffer: a read-only scan (decoded from a wire
        buffer), another dtype or a strided view reaches the kernel as the one array type it is compiled for."""
        if ranges.ndim != 1:
            raise ScanSpecError(f"SensorFrame.ranges must be one-dimensional, got shape {ranges.shape}")
        if self._stage.shape[0] < ranges.shape[0]:
            self._stage = np.empty(ranges.shape[0], np.float32)  # grows with the beam count, then never again
        staged = self._stage[:ranges.shape[0]]
        np.copyto(staged, ranges, casting="unsafe")
        return staged

    def warmup(self) -> None:
        """Compile (or load from numba's cache) the kernel before a control loop starts, then reset. Every
        frame reaches it with the same argument types (see ``_staged``), so one signature is all there is."""
        scan = ScanSpec.evenly_spaced(8)
        self(SensorFrame(np.full(8, 1.0, np.float32), scan, np.zeros(3), np.zeros(2), episode_id=-1), (0.0, 0.0))
        self.reset()

    @property
    def pose(self) -> np.ndarray:
        """(x, y, theta) in the odometry frame (a copy)."""
        return self._b.work_f[L.W_X:L.W_TH + 1].copy()

    @property
    def grid_origin(self) -> tuple[float, float]:
        """Odometry-frame position (m) of the grid's corner cell (0, 0)."""
        return float(self._b.work_f[L.W_OX]), float(self._b.work_f[L.W_OY])

    @property
    def step_count(self) -> int:
        """Frames processed in this episode."""
        return int(self._b.state_i[L.S_STEP])

    @property
    def recentre_count(self) -> int:
        """Times the grids recentred in this episode."""
        return int(self._b.state_i[L.S_RECENTRES])

    @property
    def dropped_deltas(self) -> int:
        """Odometry deltas dropped in this episode (non-finite, or carrying the pose out of the floats)."""
        return int(self._b.state_i[L.S_ODOM_DROPPED])

    def memory(self, level: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(obstacle log-odds units, visit counts) of pyramid ``level`` (0: grid, 1: fine, 2: coarse) as int64
        [n, n] arrays indexed [x cell, y cell], decayed to the current step (copies, for tests and display)."""
        n = level_sizes(self.spec)
        base = sum(k * k for k in n[:level])
        size = n[level]
        step = self.step_count
        c = self.spec.config
        out = []
        for vals, ticks, period in ((self._b.occ, self._b.occ_ticks, c.obstacle_decay_steps),
                                    (self._b.vis, self._b.vis_ticks, c.visit_decay_steps)):
            v = vals[base:base + size * size].astype(np.int64).reshape(size, size)  # [x cell, y cell]
            if period > 0:
                k = step // period - ticks[base:base + size * size].astype(np.int64).reshape(size, size)
                v = np.where(v > 0, np.maximum(v - k, 0), np.minimum(v + k, 0))
            out.append(v)
        return out[0], out[1]
