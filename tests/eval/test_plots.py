"""The learning-curve picture reads a run's progress.jsonl, torn last line included."""

from __future__ import annotations

import json

import pytest

from robonav.eval.plots import learning_curve, read_progress


def test_learning_curve_from_a_progress_file(tmp_path):
    rows = [{"global_step": 4096 * (i + 1), "stage": i // 10, "success_rate": i / 30, "spl": i / 40}
            for i in range(30)]
    for r in rows[:12]:
        r["imitation_loss"] = 0.1
    path = tmp_path / "run" / "progress.jsonl"
    path.parent.mkdir()
    path.write_text("\n".join(json.dumps(r) for r in rows) + '\n{"global_step": 9')  # a killed run's torn line
    assert len(read_progress(path)) == 30
    out = learning_curve(path, tmp_path / "curve.png")
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_empty_progress_is_refused(tmp_path):
    path = tmp_path / "progress.jsonl"
    path.write_text("")
    with pytest.raises(ValueError, match="no progress rows to plot"):
        learning_curve(path, tmp_path / "c.png")
