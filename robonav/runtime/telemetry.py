"""What the control loop reports about itself: per-stage latency histograms and a JSON-lines log.

The loop's hot path only writes a few timestamps into a preallocated row per tick (robonav.runtime.loop); every
``telemetry_every`` ticks, after the tick's command has gone out, it hands the block of rows to `StageHistograms`
(vectorised binning) and writes one summary line through `TelemetryWriter`. Nothing here runs inside a tick's
critical path, and the histograms never grow: fixed log-spaced bins, allocated once.

Bins: ``PER_DECADE`` per decade from ``LOW`` to ``HIGH`` seconds, plus an underflow and an overflow bin. A
percentile is reported as the upper edge of the bin that holds it (at most 12 % above the true value with 20 bins
per decade): conservative for a latency budget.

    hist = StageHistograms(("policy", "tick"))
    hist.add("policy", np.array([21e-6, 23e-6, 40e-6]))
    hist.summary()["policy"]["p50_us"]        # ~22.4 (upper edge of the bin holding 23 us)
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["HIGH", "KEEP", "LOW", "MAX_BYTES", "PERCENTILES", "PER_DECADE", "StageHistograms", "TelemetryWriter",
           "rotate"]

LOW = 1e-7
"""Lower edge (s) of the first regular bin; shorter samples land in the underflow bin."""
HIGH = 10.0
"""Upper edge (s) of the last regular bin; longer samples land in the overflow bin."""
PER_DECADE = 20
"""Bins per factor of ten (each bin is 10**(1/20) = 1.122 times as wide as the last)."""
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
"""Percentiles `StageHistograms.summary` reports."""
MAX_BYTES = 64 << 20
"""Default size (bytes) at which a telemetry file rotates (a block line every 100 ticks is about 1.5 kB: months)."""
KEEP = 3
"""Default rotated telemetry files kept beside the current one."""


class StageHistograms:
    """Fixed-bin latency histograms, one per named stage, plus count, sum and max of each (seconds)."""

    def __init__(self, stages: tuple[str, ...]) -> None:
        self.stages = tuple(stages)
        decades = round(math.log10(HIGH / LOW))
        self.edges = LOW * 10.0 ** (np.arange(decades * PER_DECADE + 1) / PER_DECADE)  # [bins + 1] seconds
        self.counts = np.zeros((len(self.stages), len(self.edges) + 1), dtype=np.int64)  # [stages, under+bins+over]
        self.total = np.zeros(len(self.stages))
        self.max = np.zeros(len(self.stages))
        self._index = {s: i for i, s in enumerate(self.stages)}

    def add(self, stage: str, seconds: np.ndarray) -> None:
        """Count the samples ``seconds`` (any shape, NaN ignored) into ``stage``'s histogram."""
        i = self._index[stage]
        x = np.asarray(seconds, dtype=np.float64).reshape(-1)
        x = x[~np.isnan(x)]
        if x.size == 0:
            return
        # side="right": a sample equal to an edge belongs to the bin that edge opens; index 0 is the underflow bin.
        self.counts[i] += np.bincount(np.searchsorted(self.edges, x, side="right"), minlength=self.counts.shape[1])
        self.total[i] += float(x.sum())
        self.max[i] = max(self.max[i], float(x.max()))

    def count(self, stage: str) -> int:
        """Samples counted into ``stage``."""
        return int(self.counts[self._index[stage]].sum())

    def percentile(self, stage: str, q: float) -> float:
        """Upper bin edge (s) at or below which ``q`` percent of ``stage``'s samples lie (NaN if none)."""
        row = self.counts[self._index[stage]]
        n = int(row.sum())
        if n == 0:
            return math.nan
        rank = max(1, math.ceil(q / 100.0 * n))
        b = int(np.searchsorted(np.cumsum(row), rank))
        if b == 0:
            return LOW
        if b > len(self.edges) - 1:  # overflow: the largest sample is the honest bound
            return float(self.max[self._index[stage]])
        return min(float(self.edges[b]), float(self.max[self._index[stage]]))

    def summary(self) -> dict[str, dict[str, float]]:
        """Per stage: count, mean, percentiles and max in microseconds (rounded to 0.1 us)."""
        out: dict[str, dict[str, float]] = {}
        for i, stage in enumerate(self.stages):
            n = int(self.counts[i].sum())
            row: dict[str, float] = {"count": n}
            if n:
                row["mean_us"] = round(1e6 * float(self.total[i]) / n, 1)
                for q in PERCENTILES:
                    row[f"p{q:g}_us".replace(".", "")] = round(1e6 * self.percentile(stage, q), 1)
                row["max_us"] = round(1e6 * float(self.max[i]), 1)
            out[stage] = row
        return out


class TelemetryWriter:
    """JSON-lines log: one object per line, written in blocks (never per tick) and flushed after each block.

    ``path`` None makes a writer that only counts, so the loop's code is the same with telemetry off. The file
    is appended to, so a service restarted by systemd keeps one log; each run starts with a ``start`` record.
    At a flush past ``max_bytes`` the file rotates (``path.1`` ... ``path.<keep>``, the oldest deleted), so a
    robot that runs for months keeps at most ``(keep + 1) * max_bytes`` of telemetry.
    """

    def __init__(self, path: str | os.PathLike[str] | None, max_bytes: int = MAX_BYTES, keep: int = KEEP) -> None:
        self.path = None if path is None else Path(path)
        self.max_bytes, self.keep = max_bytes, keep
        self.records = 0
        self.rotations = 0
        self._file: IO[str] | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", buffering=1 << 16)

    def write(self, record: dict[str, Any]) -> None:
        """Append one record (JSON types; NaN is written as null)."""
        self.records += 1
        if self._file is not None:
            self._file.write(json.dumps(_finite(record), separators=(",", ":")) + "\n")

    def flush(self) -> None:
        """Push buffered records to the OS (after every block, so a killed process loses at most one); rotate
        when the file has passed max_bytes."""
        if self._file is not None:
            self._file.flush()
            if self._file.tell() >= self.max_bytes and self.path is not None:
                self._file.close()
                rotate(self.path, self.keep)
                self.rotations += 1
                self._file = open(self.path, "a", buffering=1 << 16)

    def close(self) -> None:
        """Flush and close; idempotent."""
        if self._file is not None:
            self._file.close()
            self._file = None


def rotate(path: Path, keep: int) -> None:
    """``path`` -> ``path.1`` -> ... -> ``path.<keep>``; the oldest beyond ``keep`` deleted."""
    Path(f"{path}.{keep}").unlink(missing_ok=True)
    for i in range(keep - 1, 0, -1):
        older = Path(f"{path}.{i}")
        if older.exists():
            os.replace(older, f"{path}.{i + 1}")
    if keep >= 1 and path.exists():
        os.replace(path, f"{path}.1")
    elif path.exists():
        path.unlink()


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
