"""Fixed-bin latency histograms (percentiles pinned by hand) and the JSON-lines writer."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from robonav.runtime.telemetry import LOW, PER_DECADE, StageHistograms, TelemetryWriter


def test_percentiles_are_the_upper_edge_of_their_bin_capped_by_the_largest_sample():
    h = StageHistograms(("policy", "tick"))
    h.add("policy", np.array([1.5e-6] * 50 + [2e-3] * 49 + [np.nan, 2e-3]))  # NaN is not a sample
    assert h.count("policy") == 100 and h.count("tick") == 0
    # 1.5 us lies between edges 10**(-7 + 23/20) = 1.413 us and 10**(-7 + 24/20) = 1.585 us: p50 reads 1.585 us.
    assert h.percentile("policy", 50) == pytest.approx(10 ** (-7 + 24 / PER_DECADE))
    # 2 ms lies below the edge 10**(-7 + 87/20) = 2.239 ms, but no sample exceeds 2 ms: p99 reads 2 ms.
    assert h.percentile("policy", 99) == pytest.approx(2e-3)
    row = h.summary()["policy"]
    assert (row["count"], row["p50_us"], row["p99_us"], row["max_us"]) == (100, 1.6, 2000.0, 2000.0)
    assert row["mean_us"] == pytest.approx(1e6 * (50 * 1.5e-6 + 50 * 2e-3) / 100, abs=0.1)
    assert h.summary()["tick"] == {"count": 0} and math.isnan(h.percentile("tick", 50))


def test_samples_outside_the_bins_are_kept():
    h = StageHistograms(("wake",))
    h.add("wake", np.array([0.0, 1e-9, 25.0]))  # two below LOW, one above HIGH (10 s)
    assert h.percentile("wake", 50) == LOW
    assert h.percentile("wake", 100) == 25.0  # the overflow bin reports the largest sample
    assert h.counts[0, 0] == 2 and h.counts[0, -1] == 1


def test_the_writer_writes_one_json_object_per_line_and_null_for_nan(tmp_path):
    path = tmp_path / "sub" / "t.jsonl"
    w = TelemetryWriter(path)
    w.write({"event": "block", "x": math.nan, "y": [1.0, math.inf]})
    w.flush()
    w.write({"event": "end"})
    w.close()
    w.close()
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {"event": "block", "x": None, "y": [1.0, None]}, {"event": "end"}]
    quiet = TelemetryWriter(None)
    quiet.write({"event": "start"})
    quiet.close()
    assert quiet.records == 1


def test_the_writer_rotates_by_size_and_keeps_n_files(tmp_path):
    path = tmp_path / "t.jsonl"
    w = TelemetryWriter(path, max_bytes=1000, keep=2)
    for i in range(300):  # about 25 bytes a line: 7.5 kB through a 1 kB file, flushed every 10 lines
        w.write({"event": "block", "i": i})
        if i % 10 == 9:
            w.flush()
    w.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["t.jsonl", "t.jsonl.1", "t.jsonl.2"] and w.rotations >= 6  # the oldest deleted
    assert all(p.stat().st_size < 1000 + 400 for p in tmp_path.iterdir())  # a file passes max_bytes by one block
    last = [json.loads(line)["i"] for name in ("t.jsonl.2", "t.jsonl.1", "t.jsonl")
            for line in (tmp_path / name).read_text().splitlines()]
    assert last == list(range(last[0], 300))  # the newest records, in order, none lost between the kept files
