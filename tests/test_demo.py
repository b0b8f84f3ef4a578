"""The README's first command, small: export, INT8, HIL over UDP for both precisions, eval, table and picture."""

from __future__ import annotations

from robonav.demo import format_table, run_demo


def test_demo_runs_the_whole_path_small(tmp_path):
    seen: dict[str, tuple[int, int]] = {}  # stage -> its last (done, total): what `robonav demo` draws as bars
    result = run_demo(tmp_path / "demo", episodes=1, suite="val-3x3", seed=1, clock_factor=8.0, parity_steps=100,
                      progress=lambda stage, done, total: seen.__setitem__(stage, (done, total)))
    assert seen == {"1/4 export: parity recording steps": (100, 100), "2/4 quantize: calibration episodes": (8, 8),
                    "3/4 HIL fp32 episodes": (1, 1), "4/4 eval fp32 episodes": (1, 1),
                    "3/4 HIL int8 episodes": (1, 1), "4/4 eval int8 episodes": (1, 1)}
    assert result["parity_passed"]
    rows = {r["precision"]: r for r in result["rows"]}
    assert rows["fp32"]["backend"] == "numba" and rows["int8"]["backend"] == "ort"
    assert rows["int8"]["bytes"] < 0.5 * rows["fp32"]["bytes"]
    for r in rows.values():
        assert r["verdict"] and r["episodes"] == 1 and r["ticks"] > 0
        assert r["hil_success"] == r["eval_success"]  # one 3x3 episode: the wire changes nothing that matters
    assert (tmp_path / "demo" / "trajectories.png").stat().st_size > 10_000
    table = format_table(result)
    assert table.splitlines()[2].startswith("fp32") and "int8" in table
