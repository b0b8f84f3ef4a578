"""Many Preprocessors stepped by one Numba call: the simulator's tick without a Python call per env.

``PreprocessorBatch(preprocessors)`` moves the Preprocessors' buffers into stacked arrays (row i is env i's, and
its Preprocessor keeps working on views of that row) and keeps each env's current beam tables in padded rows;
``batch(ranges, odom, goal, command, out)`` runs ``step_kernel`` on every env in turn with the very arrays and
scalars ``Preprocessor.__call__`` would pass (of the same types too, so numba compiles ``step_kernel`` once),
then copies each observation into ``out``. The per-env checks of ``__call__`` are the caller's: each env's
first frame of an episode goes through its Preprocessor (that resets it and selects its beam tables), then
``refresh(i)`` copies the tables in. Not for laser odometry (its scan matcher runs in Python).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from robonav.sensors.jit import kernel
from robonav.sensors.preprocessor import BAD_GOAL, Preprocessor, SensorFrameError, step_kernel

__all__ = ["PreprocessorBatch"]

STACKED = ("cfg_f", "cfg_i", "luts", "work_f", "state_i", "occ", "occ_ticks", "vis", "vis_ticks", "marks", "obs",
           "plan_f", "plan_i", "plan_u8")


@kernel
def batch_step_kernel(ranges: np.ndarray, beams: np.ndarray, odom: np.ndarray, goal: np.ndarray,
                      command: np.ndarray, directions: np.ndarray, indices: np.ndarray, cfg_f: np.ndarray,
                      cfg_i: np.ndarray, luts: np.ndarray, work_f: np.ndarray, state_i: np.ndarray, occ: np.ndarray,
                      occ_ticks: np.ndarray, vis: np.ndarray, vis_ticks: np.ndarray, marks: np.ndarray,
                      obs: np.ndarray, plan_f: np.ndarray, plan_i: np.ndarray, plan_u8: np.ndarray,
                      occ_words: np.ndarray, out: np.ndarray) -> int:
    """``step_kernel`` for env 0, 1, ... on its rows; returns the first env whose goal is not finite (nothing
    done from it on), else -1."""
    for i in range(ranges.shape[0]):
        nb = beams[i]
        status = step_kernel(ranges[i, :nb], odom[i, 0], odom[i, 1], odom[i, 2], goal[i, 0], goal[i, 1],
                             command[i, 0], command[i, 1], directions[i, :2 * nb].reshape((2, nb)),
                             indices[i, :2 * nb].reshape((2, nb)), cfg_f[i],
                             cfg_i[i], luts[i], work_f[i], state_i[i], occ[i], occ_ticks[i], vis[i], vis_ticks[i],
                             marks[i], obs[i], plan_f[i], plan_i[i], plan_u8[i], occ_words[i])
        if status == BAD_GOAL:
            return i
        for k in range(obs.shape[1]):  # an element loop: a slice assignment would need NRT
            out[i, k] = obs[i, k]
    return -1


class PreprocessorBatch:
    """One kernel call per tick for N Preprocessors of one spec (see the module docstring)."""

    def __init__(self, preprocessors: list[Preprocessor]) -> None:
        spec = preprocessors[0].spec
        if spec.config.laser_odometry:
            raise ValueError("PreprocessorBatch does not run laser odometry: step those Preprocessors one by one")
        if any(p.spec != spec for p in preprocessors):
            raise ValueError("PreprocessorBatch needs Preprocessors of one ObservationSpec")
        self.preprocessors = preprocessors
        n = len(preprocessors)
        self._stack: dict[str, np.ndarray] = {}
        for name in STACKED:
            first = getattr(preprocessors[0].buffers, name)
            width = first.shape[0]
            if name == "occ":  # rows start on 8-byte boundaries, so each row's level 0 has a uint64 view
                width = -(-width // 8) * 8
            stack = self._stack[name] = np.zeros((n, width, *first.shape[1:]), first.dtype)
            for i, p in enumerate(preprocessors):
                stack[i, :first.shape[0]] = getattr(p.buffers, name)
        occ, n0 = self._stack["occ"], spec.config.grid_cells
        words = n0 % 8 == 0
        self._words = occ.view(np.uint64) if words else np.zeros((n, 1), np.uint64)
        for i, p in enumerate(preprocessors):
            rows = {name: self._stack[name][i, :getattr(p.buffers, name).shape[0]] for name in STACKED}
            rows["occ_words"] = rows["occ"][:n0 * n0].view(np.uint64) if words else self._words[i]
            p.share_buffers(dataclasses.replace(p.buffers, **rows))
        self._beams = np.zeros(n, np.int64)  # beams of each env's current scan (0: no episode yet)
        self._directions = np.zeros((n, 2))  # row i: env i's [2, beams] table, flattened (C-contiguous slices)
        self._indices = np.zeros((n, 2), np.int32)

    def refresh(self, i: int) -> None:
        """Copy in env i's current beam tables (call after its Preprocessor processed an episode's first frame)."""
        table = self.preprocessors[i].beam_table
        if table is None:
            raise RuntimeError(f"PreprocessorBatch.refresh({i}): its Preprocessor has processed no frame yet")
        nb = table.directions.shape[1]
        if 2 * nb > self._directions.shape[1]:
            n, old = len(self.preprocessors), self._directions.shape[1]
            directions, indices = np.zeros((n, 2 * nb)), np.zeros((n, 2 * nb), np.int32)
            directions[:, :old], indices[:, :old] = self._directions, self._indices
            self._directions, self._indices = directions, indices
        self._directions[i, :2 * nb] = table.directions.ravel()
        self._indices[i, :2 * nb] = table.indices.ravel()
        self._beams[i] = nb

    def __call__(self, ranges: np.ndarray, odom: np.ndarray, goal: np.ndarray, command: np.ndarray,
                 out: np.ndarray) -> None:
        """Step every env: ``ranges`` float32 [N, B] (row i's first beams are its scan), ``odom`` [N, 3], ``goal``
        [N, 2], ``command`` [N, 2] float64; observations into ``out`` float32 [N, D]."""
        if not self._beams.all():
            missing = np.flatnonzero(self._beams == 0).tolist()
            raise RuntimeError(f"PreprocessorBatch: envs {missing} have no episode yet (refresh them)")
        s = self._stack
        bad = batch_step_kernel(ranges, self._beams, odom, goal, command, self._directions, self._indices,
                                s["cfg_f"], s["cfg_i"], s["luts"], s["work_f"], s["state_i"], s["occ"],
                                s["occ_ticks"], s["vis"], s["vis_ticks"], s["marks"], s["obs"], s["plan_f"],
                                s["plan_i"], s["plan_u8"], self._words, out)
        if bad >= 0:
            raise SensorFrameError(
                f"SensorFrame.goal must be finite (odometry-frame metres), got {goal[bad]!r} (env {bad}): the "
                "frame was not processed"
            )
