"""Scan preprocessing: REP 117 beam classes, min-pooling into angular bins, free-space range per clearing ray.

Every beam falls in one class, decided only by its value and its ScanSpec (range_min, range_max):

    NaN                                  INVALID    says nothing: no bin value, no clearing, no hit
    +inf                                 NO_RETURN  free up to range_max: bin distance min(range_max, max_range)
    -inf                                 TOO_CLOSE  something nearer than range_min: bin distance 0, no clearing
    range_min <= r <= range_max          RANGE      a return at r: bin distance min(r, max_range), a hit
    r < range_min (0, negative)          PreprocessorConfig.below_range_min: INVALID (LaserScan) or TOO_CLOSE
    r > range_max                        PreprocessorConfig.above_range_max: INVALID (LaserScan) or NO_RETURN

Bin ``k`` (of K) is centred on angle ``2*pi*k/K`` in the robot frame (bin 0 on +x); a beam at angle ``a`` falls
in bin ``floor(wrap(a) * K / (2*pi) + 0.5) mod K``. A bin's value is its least distance / max_range, or 1.0 with
validity flag 0 when no beam in it informs (all INVALID, or no beam at all: a field of view under 360 degrees).

Clearing rays: beams are grouped into ``clear_rays`` equal sectors (sector j centred on ``2*pi*j/clear_rays``);
each sector that holds a beam is one clearing ray: along its informative beam with the least free distance
(RANGE: r - clear_margin; NO_RETURN: range_max; TOO_CLOSE: 0; the first such beam on a tie), up to that
distance. So free space is cleared only along real beams, as per-beam clearing would, once per sector; a sector
whose beams are all INVALID clears nothing, and a NaN dropout never erases a wall. A scan with at most
``clear_rays`` beams gets one ray per beam.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from robonav.sensors.frame import ScanSpec, ScanSpecError
from robonav.sensors.jit import inline_kernel, kernel

__all__ = ["BeamTable", "BeamTableCache", "build_beam_table", "classify", "scan_bins"]

INVALID, RANGE, NO_RETURN, TOO_CLOSE = 0, 1, 2, 3
BELOW_MODES = {"invalid": INVALID, "too_close": TOO_CLOSE}
ABOVE_MODES = {"invalid": INVALID, "no_return": NO_RETURN}
TWO_PI = 2.0 * math.pi


@dataclass(frozen=True)
class BeamTable:
    """Constant per-ScanSpec tables, built once in NumPy and shared by the kernels and the reference."""

    spec: ScanSpec
    """The description the tables were built from."""
    directions: np.ndarray
    """float64 [2, num_beams]: cos and sin of each beam angle (robot frame)."""
    indices: np.ndarray
    """int32 [2, num_beams]: bin of each beam, clearing ray of each beam."""
    num_rays: int
    """Number of clearing rays."""


def build_beam_table(spec: ScanSpec, num_bins: int, clear_rays: int) -> BeamTable:
    """Bin and clearing ray of every beam of ``spec``, and the beam directions (see the module docstring)."""
    angles = spec.beam_angles()
    if not np.all(np.isfinite(angles)):
        raise ScanSpecError(
            f"ScanSpec (spec_id {spec.spec_id}) has non-finite beam angles at {np.flatnonzero(~np.isfinite(angles))}:"
            " every beam needs a finite angle; fix angle_min/angle_increment or angles"
        )
    n = angles.shape[0]
    wrapped = np.mod(angles, TWO_PI)
    bins = np.floor(wrapped * (num_bins / TWO_PI) + 0.5).astype(np.int64) % num_bins
    if n <= clear_rays:
        rays = np.arange(n)
    else:
        sector = np.floor(wrapped * (clear_rays / TWO_PI) + 0.5).astype(np.int64) % clear_rays
        rays = np.unique(sector, return_inverse=True)[1]
    indices = np.stack([bins, rays]).astype(np.int32)
    return BeamTable(spec, np.stack([np.cos(angles), np.sin(angles)]), indices, int(rays.max()) + 1)


class BeamTableCache:
    """BeamTables keyed by ScanSpec (the simulator changes the beam count per episode); the oldest is dropped
    beyond ``capacity``. One cache per Preprocessor: tables are read-only, but a cache is not thread-safe."""

    def __init__(self, num_bins: int, clear_rays: int, capacity: int = 16) -> None:
        self.num_bins, self.clear_rays, self.capacity = num_bins, clear_rays, capacity
        self._tables: OrderedDict[ScanSpec, BeamTable] = OrderedDict()

    def get(self, spec: ScanSpec) -> BeamTable:
        """The table for ``spec``, built on first use."""
        table = self._tables.get(spec)
        if table is None:
            table = self._tables[spec] = build_beam_table(spec, self.num_bins, self.clear_rays)
            if len(self._tables) > self.capacity:
                self._tables.popitem(last=False)
        return table


@inline_kernel
def classify(r: float, range_min: float, range_max: float, below: int, above: int) -> int:
    """REP 117 class of a range ``r`` (float64) under the scan limits; ``below``/``above`` are the classes of
    finite ranges under range_min / over range_max."""
    if r != r:
        return INVALID
    if r == math.inf:
        return NO_RETURN
    if r == -math.inf:
        return TOO_CLOSE
    if r < range_min:
        return below
    if r > range_max:
        return above
    return RANGE


@kernel
def scan_bins(
    ranges: np.ndarray, indices: np.ndarray, range_min: float, range_max: float, below: int, above: int,
    max_range: float, clear_margin: float, num_rays: int, bin_min: np.ndarray, ray_free: np.ndarray,
    ray_beam: np.ndarray, values: np.ndarray, valid: np.ndarray,
) -> None:
    """Min-pool ``ranges`` into ``values``/``valid`` (float32 [K]); the free distance of each clearing ray into
    ``ray_free`` (float64 [num_rays], +inf where no beam informs) and the beam it runs along into ``ray_beam``
    (int64 [num_rays]). ``bin_min`` is float64 [K] scratch."""
    num_bins = values.shape[0]
    for k in range(num_bins):
        bin_min[k] = math.inf
    for j in range(num_rays):
        ray_free[j] = math.inf
        ray_beam[j] = 0
    for b in range(ranges.shape[0]):
        r = np.float64(ranges[b])
        code = classify(r, range_min, range_max, below, above)
        if code == INVALID:
            continue
        if code == RANGE:
            dist = min(r, max_range)
            free = r - clear_margin
        elif code == NO_RETURN:
            dist = min(range_max, max_range)
            free = range_max
        else:
            dist = 0.0
            free = 0.0
        k = indices[0, b]
        if dist < bin_min[k]:
            bin_min[k] = dist
        j = indices[1, b]
        if free < ray_free[j]:
            ray_free[j] = free
            ray_beam[j] = b
    for k in range(num_bins):
        if bin_min[k] == math.inf:
            values[k] = 1.0
            valid[k] = 0.0
        else:
            values[k] = bin_min[k] / max_range
            valid[k] = 1.0
