"""benchmarks/conditions.py: which measured cells a resumed table keeps."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from robonav.sim.dynamic import MOVER_MODEL


def _table():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "conditions.py"
    spec = importlib.util.spec_from_file_location("conditions_table", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_cell_among_movers_of_an_older_mover_model_runs_again():
    table = _table()
    assert MOVER_MODEL == 2
    assert table.mover_model("nominal") is None and table.mover_model("fov120") is None
    assert table.mover_model("dynamic") == 2 and table.mover_model("dynamic,fov120") == 2
    old = {"episodes": 200}  # written before models were recorded: model 1
    assert table.reusable(old, 200, "nominal") and table.reusable(old, 200, "noisy")
    assert not table.reusable(old, 200, "dynamic")
    assert table.reusable({"episodes": 200, "mover_model": 2}, 200, "dynamic")
    assert not table.reusable({"episodes": 200, "mover_model": 2}, 500, "dynamic")  # another episode count
    assert not table.reusable(None, 200, "nominal")


def test_a_learned_policys_cell_runs_again_when_its_weights_change(tmp_path):
    table = _table()
    assert table.weights_id("classical") is None and table.weights_id("expert") is None
    shipped = table.weights_id("default")
    assert shipped is not None and len(shipped) == 16 and shipped != table.weights_id("default-q")
    ck = tmp_path / "best.pt"
    ck.write_bytes(b"one")
    first = table.weights_id(str(ck))
    cell = {"episodes": 200, "weights": first}
    assert table.reusable(cell, 200, "nominal", first)
    ck.write_bytes(b"two")  # the run wrote a better best.pt since
    assert not table.reusable(cell, 200, "nominal", table.weights_id(str(ck)))
    assert not table.reusable({"episodes": 200}, 200, "nominal", shipped)  # unknown weights: measure again
    assert table.reusable({"episodes": 200}, 200, "nominal", None)  # a baseline reads no weights


def test_a_column_label_names_a_candidate_checkpoint():
    table = _table()
    assert table.column("broad-s0=runs/broad-s0/best.pt") == ("broad-s0", "runs/broad-s0/best.pt")
    assert table.column("classical") == ("classical", "classical")
