"""The floors of docs/design.md, read from the code by tools/import_graph.py (ast only, nothing imported).

A room may import a room on its own floor or a lower one at import time, never a higher one; what runs on the
robot pulls no torch, pybullet, gymnasium or onnx at import time. The reader itself is held to Python: the
robonav modules it says an import pulls in are the ones Python loads.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _load_tool():
    spec = importlib.util.spec_from_file_location("import_graph", REPO / "tools" / "import_graph.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_graph"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


graph = _load_tool()


def test_no_room_imports_a_higher_floor_at_import_time():
    broken = graph.floor_violations(graph.read_imports())
    assert not broken, "import floors broken (docs/design.md, Floors):\n" + "\n".join(broken)


def test_on_robot_code_pulls_no_heavy_package_at_import_time():
    broken = graph.heavy_violations(graph.read_imports())
    assert not broken, "on-robot imports broken (docs/design.md, Floors):\n" + "\n".join(broken)


def test_every_room_has_a_floor():
    missing = [r for r in graph.rooms() if r not in graph.FLOORS and r not in graph.ANY_FLOOR]
    assert not missing, f"rooms without a floor: {missing}: add them to FLOORS in tools/import_graph.py"


def test_the_table_in_design_md_is_the_code_as_it_is():
    doc = (REPO / "docs" / "design.md").read_text()
    begin, end = doc.index(graph.TABLE_BEGIN) + len(graph.TABLE_BEGIN), doc.index(graph.TABLE_END)
    assert doc[begin:end].strip() == graph.table(graph.read_imports()).strip(), (
        "docs/design.md's import table is stale: run `python tools/import_graph.py --write` and commit "
        "docs/design.md and docs/architecture.svg")


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path


def test_the_floor_rule_bites_on_eager_imports_only(tmp_path):
    root = _tree(tmp_path, {
        "robonav/__init__.py": "",
        "robonav/sensors/__init__.py": "from ..train import loop\n",  # relative, eager: floor 1 -> 5
        "robonav/sensors/lazy.py": """
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from robonav.train import loop
            def f():
                import robonav.train.loop
            if __name__ == "__main__":
                import robonav.cli
        """,
        "robonav/sensors/klass.py": "class A:\n    import robonav.eval\n",  # a class body runs at import
        "robonav/train/__init__.py": "",
        "robonav/train/loop.py": "from robonav import sensors, data\n",  # down, and data from anywhere
        "robonav/eval/__init__.py": "",
        "robonav/cli/__init__.py": "",
        "robonav/data/__init__.py": "",
    })
    broken = graph.floor_violations(graph.read_imports(root))
    assert len(broken) == 2, broken
    assert broken[0].startswith("robonav.sensors:1: imports robonav.train.loop at import time: floor 1 (sensors)")
    assert broken[1].startswith("robonav.sensors.klass:2: imports robonav.eval at import time: floor 1 (sensors)")


def test_the_heavy_rule_follows_eager_chains_and_names_them(tmp_path):
    root = _tree(tmp_path, {
        "robonav/__init__.py": "",
        "robonav/control/__init__.py": "",
        "robonav/control/safety.py": "from robonav.policy.net import Net\n",
        "robonav/control/ok.py": "def f():\n    import torch\n",
        "robonav/policy/__init__.py": "",
        "robonav/policy/net.py": "import numpy\nimport torch.nn\n",
        "robonav/sim/__init__.py": "import pybullet\n",  # sim is not on the robot: allowed
    })
    broken = graph.heavy_violations(graph.read_imports(root), root)
    assert broken == ["robonav.control.safety: on-robot code imports torch at import time "
                      "(robonav.policy.net <- robonav.control.safety:2); import it inside the function that needs it"]


def _closure(imports, module: str) -> set[str]:
    eager: dict[str, set[str]] = {}
    known = set(graph.module_files())
    for imp in imports:
        if imp.eager and imp.target.startswith("robonav"):
            parts = imp.target.split(".")
            eager.setdefault(imp.importer, set()).update(
                m for m in (".".join(parts[: i + 1]) for i in range(len(parts))) if m in known)
    seen, todo = set(), [".".join(module.split(".")[: i + 1]) for i in range(len(module.split(".")))]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(eager.get(m, ()))
    return seen


@pytest.mark.parametrize("module", ["robonav.runtime.run", "robonav.hil.runner", "robonav.cli", "robonav.model"])
def test_the_reader_agrees_with_python_on_what_an_import_loads(module):
    code = f"import json, sys, {module}; print(json.dumps(sorted(m for m in sys.modules if m.startswith('robonav'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert loaded == _closure(graph.read_imports(), module)


def test_hil_uses_the_wire_only_by_its_package_names():
    """robonav.hil reaches the robot wire through ``robonav.runtime.wire`` (its public names), never its modules."""
    import ast

    root = Path(__file__).resolve().parents[1] / "robonav" / "hil"
    inside = []
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("robonav.runtime.wire."):
                inside.append(f"{path.name}:{node.lineno} {node.module}")
            if isinstance(node, ast.ImportFrom) and node.module == "robonav.runtime.wire":
                inside += [f"{path.name}:{node.lineno} {a.name}" for a in node.names if a.name.startswith("_")]
    assert inside == []
