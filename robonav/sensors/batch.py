"""Many Preprocessors stepped by one Numba call: the simulator's tick without a Python call per env.

``PreprocessorBatch(preprocessors)`` holds each Preprocessor's kernel arrays (its buffers and the beam tables of
its current scan) in a numba typed list, and ``batch(ranges, counts, odom, goal, command, out)`` runs
``step_kernel`` on every env in turn, exactly as ``Preprocessor.__call__`` would (same arrays, same arguments),
then copies each observation into ``out``. The per-env checks of ``__call__`` are the caller's: each env's
first frame of an episode goes through its Preprocessor (that resets it and selects its beam tables), then
``refresh(i)`` hands the batch the new tables. Not for laser odometry (its scan matcher runs in Python).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba.typed import List

from robonav.sensors.jit import allocating_kernel
from robonav.sensors.preprocessor import BAD_GOAL, Preprocessor, SensorFrameError, step_kernel

__all__ = ["PreprocessorBatch"]


@allocating_kernel
def batch_step_kernel(entries: Any, ranges: np.ndarray, counts: np.ndarray, odom: np.ndarray, goal: np.ndarray,
                      command: np.ndarray, out: np.ndarray) -> int:
    """``step_kernel`` for env 0, 1, ... with its row of each input; returns the first env whose goal is not
    finite (nothing done from it on), else -1. Allocates nothing (NRT only for the typed list's references)."""
    for i in range(len(entries)):
        e = entries[i]
        status = step_kernel(ranges[i, :counts[i]], odom[i, 0], odom[i, 1], odom[i, 2], goal[i, 0], goal[i, 1],
                             command[i, 0], command[i, 1], e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7], e[8],
                             e[9], e[10], e[11], e[12], e[13], e[14], e[15], e[16])
        if status == BAD_GOAL:
            return i
        out[i, :] = e[12]
    return -1


class PreprocessorBatch:
    """One kernel call per tick for N Preprocessors (see the module docstring)."""

    def __init__(self, preprocessors: list[Preprocessor]) -> None:
        if any(p.spec.config.laser_odometry for p in preprocessors):
            raise ValueError("PreprocessorBatch does not run laser odometry: step those Preprocessors one by one")
        self.preprocessors = preprocessors
        self._entries: Any = None
        self._missing = set(range(len(preprocessors)))  # envs whose tables the batch has not taken yet

    def refresh(self, i: int) -> None:
        """Take env i's current beam tables (call after its Preprocessor processed an episode's first frame)."""
        entry = self.preprocessors[i].kernel_arrays()
        if self._entries is None:  # the typed list's item type comes from the first entry
            self._entries = List([entry] * len(self.preprocessors))
        else:
            self._entries[i] = entry
        self._missing.discard(i)

    def __call__(self, ranges: np.ndarray, counts: np.ndarray, odom: np.ndarray, goal: np.ndarray,
                 command: np.ndarray, out: np.ndarray) -> None:
        """Step every env: ``ranges`` float32 [N, B] (row i's first ``counts[i]`` beams are its scan), ``odom``
        [N, 3], ``goal`` [N, 2], ``command`` [N, 2] float64; observations into ``out`` float32 [N, D]."""
        if self._missing:
            raise RuntimeError(f"PreprocessorBatch: envs {sorted(self._missing)} have no episode yet (refresh them)")
        bad = batch_step_kernel(self._entries, ranges, counts, odom, goal, command, out)
        if bad >= 0:
            raise SensorFrameError(
                f"SensorFrame.goal must be finite (odometry-frame metres), got {goal[bad]!r} (env {bad}): the "
                "frame was not processed"
            )
