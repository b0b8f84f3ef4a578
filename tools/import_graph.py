"""robonav's architecture read from its code: which room imports which, by floor, and the rules it must keep.

Every module under ``robonav/`` is parsed with ``ast``; nothing is imported or executed. An import is *eager*
when it runs at import time (module level or a class body; not inside a function, not under ``if
TYPE_CHECKING:`` or ``if __name__ == "__main__":``), else *lazy*. A room is a subpackage or top-level module of
robonav (``sensors``, ``runtime``, ``demo``, ...). The rules (docs/design.md, "Floors"):

1. an eager import never reaches a room on a higher floor (``data`` is package data, allowed from any floor);
2. nothing that runs on the robot (errors, atomic, model, settings, sensors, control, runtime) pulls torch,
   pybullet, gymnasium or onnx at import time, directly or through the robonav modules it imports eagerly.

    python tools/import_graph.py            # print the room table and every broken rule (exit 1 if any)
    python tools/import_graph.py --write    # also redraw docs/architecture.svg and the table in docs/design.md

tests/test_architecture.py runs the same reading.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "robonav"

FLOORS: dict[str, int] = {
    PACKAGE: 0,  # the package's own __init__: `import robonav` stays light
    "errors": 0,
    "atomic": 1, "sensors": 1, "control": 1, "settings": 1,
    "model": 2, "policy": 2,
    "runtime": 3, "sim": 3,
    "eval": 4,
    "train": 5, "deploy": 5, "hil": 5,
    "cli": 6, "demo": 6,  # demo: the quick-start job, an entry point like the CLI verbs
}
ANY_FLOOR = {"data"}  # package data: mazes, policies, resource lookup
ON_ROBOT = ("errors", "atomic", "model", "settings", "sensors", "control", "runtime")
HEAVY = ("torch", "pybullet", "gymnasium", "onnx")  # onnxruntime is an engine: allowed on the robot

TABLE_BEGIN = "<!-- import-table: begin (python tools/import_graph.py --write) -->"
TABLE_END = "<!-- import-table: end -->"


@dataclass(frozen=True)
class Import:
    """One import statement's target, seen from the module that holds it."""

    importer: str
    """Dotted name of the importing module (``robonav.runtime.loop``)."""
    target: str
    """Dotted name imported: a robonav module, or an external top-level package (``torch``)."""
    line: int
    """Line number in the importer's file."""
    eager: bool
    """True when the import runs at import time of the importer."""


def module_files(root: Path = REPO) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out: dict[str, Path] = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def room(module: str) -> str | None:
    """The room of a robonav module (``robonav.runtime.wire.protocol`` -> ``runtime``), None if external."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    return parts[1] if len(parts) > 1 else PACKAGE


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _is_main_guard(test: ast.expr) -> bool:
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators))


class _Reader(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool, known: set[str]) -> None:
        self.module, self.known, self.lazy_depth = module, known, 0
        self.package = module if is_package else module.rpartition(".")[0]
        self.found: list[Import] = []

    def _add(self, target: str, node: ast.stmt) -> None:
        self.found.append(Import(self.module, target, node.lineno, self.lazy_depth == 0))

    def _lazy(self, node: ast.AST) -> None:
        self.lazy_depth += 1
        self.generic_visit(node)
        self.lazy_depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _lazy

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test) or _is_main_guard(node.test):
            self.lazy_depth += 1
            for stmt in node.body:
                self.visit(stmt)
            self.lazy_depth -= 1
            for stmt in node.orelse:
                self.visit(stmt)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")
            base = base[: len(base) - (node.level - 1)]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        for alias in node.names:
            sub = f"{source}.{alias.name}"
            self._add(sub if sub in self.known else source, node)


def read_imports(root: Path = REPO) -> list[Import]:
    """Every import statement of every robonav module (eager and lazy), in file order."""
    files = module_files(root)
    known = set(files)
    out: list[Import] = []
    for module, path in files.items():
        reader = _Reader(module, path.name == "__init__.py", known)
        reader.visit(ast.parse(path.read_text(), filename=str(path)))
        out.extend(reader.found)
    return out


def _parents(module: str) -> list[str]:
    """The packages whose __init__ runs when ``module`` is imported, outermost first, then the module."""
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def floor_violations(imports: Iterable[Import]) -> list[str]:
    """Rule 1: eager imports from a room into a room on a higher floor."""
    out = []
    for imp in imports:
        src, dst = room(imp.importer), room(imp.target)
        if not imp.eager or src is None or dst is None or dst in ANY_FLOOR or src in ANY_FLOOR:
            continue
        if src not in FLOORS or dst not in FLOORS:
            out.append(f"{imp.importer}:{imp.line}: room {src if src not in FLOORS else dst!r} has no floor: "
                       "add it to FLOORS in tools/import_graph.py and to docs/design.md")
        elif FLOORS[dst] > FLOORS[src]:
            out.append(f"{imp.importer}:{imp.line}: imports {imp.target} at import time: floor {FLOORS[src]} "
                       f"({src}) must not import floor {FLOORS[dst]} ({dst}); import it inside the function "
                       "that needs it")
    return out


def heavy_violations(imports: Iterable[Import], root: Path = REPO) -> list[str]:
    """Rule 2: on-robot modules that pull a heavy package at import time, with the chain that pulls it."""
    known = set(module_files(root))
    eager: dict[str, list[Import]] = {}
    for imp in imports:
        if imp.eager:
            eager.setdefault(imp.importer, []).append(imp)
    out = []
    for module in sorted(known):
        if room(module) not in ON_ROBOT:
            continue
        # breadth-first over eager imports; importing a.b.c runs a/__init__, a/b/__init__ and a/b/c
        chain: dict[str, str | None] = {m: None for m in _parents(module)}
        queue = list(chain)
        while queue:
            current = queue.pop(0)
            for imp in eager.get(current, []):
                top = imp.target.split(".")[0]
                if top in HEAVY:
                    path = [current]
                    while chain[path[-1]] is not None:
                        path.append(chain[path[-1]])  # type: ignore[arg-type]
                    via = " <- ".join(path)
                    out.append(f"{module}: on-robot code imports {top} at import time ({via}:{imp.line}); "
                               f"import it inside the function that needs it")
                    queue.clear()
                    break
                if top == PACKAGE:
                    for m in _parents(imp.target):
                        if m in known and m not in chain:
                            chain[m] = current
                            queue.append(m)
    return out


def room_edges(imports: Iterable[Import]) -> dict[tuple[str, str], dict[str, int]]:
    """(importing room, imported room) -> counts of eager and lazy import statements between them."""
    edges: dict[tuple[str, str], dict[str, int]] = {}
    for imp in imports:
        src, dst = room(imp.importer), room(imp.target)
        if src is None or dst is None or src == dst or dst == PACKAGE:
            continue
        counts = edges.setdefault((src, dst), {"eager": 0, "lazy": 0})
        counts["eager" if imp.eager else "lazy"] += 1
    return edges


def external_eager(imports: Iterable[Import]) -> dict[str, set[str]]:
    """Room -> third-party top-level packages it imports at import time (standard library left out)."""
    out: dict[str, set[str]] = {}
    for imp in imports:
        src, top = room(imp.importer), imp.target.split(".")[0]
        if src is None or not imp.eager or top == PACKAGE or top in sys.stdlib_module_names or top == "":
            continue
        out.setdefault(src, set()).add(top)
    return out


def rooms(root: Path = REPO) -> list[str]:
    """Every room, lowest floor first (data last)."""
    found = {r for r in (room(m) for m in module_files(root)) if r is not None}
    return sorted(found, key=lambda r: (FLOORS.get(r, 99), r))


def table(imports: list[Import], root: Path = REPO) -> str:
    """Markdown table: per room its floor, the rooms it imports at import time and lazily, its third-party imports."""
    edges, ext = room_edges(imports), external_eager(imports)
    lines = ["| floor | room | imports at import time | imports inside functions only | third-party at import time |",
             "|---:|---|---|---|---|"]
    for r in rooms(root):
        eager = sorted((d for (s, d), c in edges.items() if s == r and c["eager"]), key=lambda d: (FLOORS.get(d, 9), d))
        lazy = sorted((d for (s, d), c in edges.items() if s == r and not c["eager"]),
                      key=lambda d: (FLOORS.get(d, 9), d))
        name = "robonav (`__init__`)" if r == PACKAGE else f"`{r}`"
        floor = "any" if r in ANY_FLOOR else str(FLOORS.get(r, "?"))
        lines.append(f"| {floor} | {name} | {', '.join(eager) or '-'} | {', '.join(lazy) or '-'} | "
                     f"{', '.join(sorted(ext.get(r, ()))) or '-'} |")
    return "\n".join(lines)


def draw(imports: list[Import], out: Path, root: Path = REPO) -> None:
    """Rooms as boxes in rows by floor; solid arrows for import-time imports, dashed grey for lazy ones."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "robonav"  # stable ids: the file changes only when the graph does
    import matplotlib.pyplot as plt

    placed = [r for r in rooms(root) if r != PACKAGE]
    by_floor: dict[int, list[str]] = {}
    for r in placed:
        by_floor.setdefault(-1 if r in ANY_FLOOR else FLOORS.get(r, 7), []).append(r)
    pos: dict[str, tuple[float, float]] = {}
    for floor, members in by_floor.items():
        for i, r in enumerate(members):
            pos[r] = (6.4, 3.5) if floor == -1 else ((i - (len(members) - 1) / 2) * 2.6, float(floor))
    fig, ax = plt.subplots(figsize=(10, 7.5))
    bad = {(room(v.split(":")[0]) or "") for v in floor_violations(imports)}
    for (src, dst), counts in sorted(room_edges(imports).items()):
        if src not in pos or dst not in pos or (not counts["eager"] and FLOORS.get(src) == 6):
            continue  # the entry points load every stage lazily, per verb: the table lists those
        style = dict(color="0.25", lw=1.1, ls="-") if counts["eager"] else dict(color="0.65", lw=0.8, ls="--")
        if counts["eager"] and FLOORS.get(dst, -1) > FLOORS.get(src, 99) and dst not in ANY_FLOOR:
            style = dict(color="tab:red", lw=1.6, ls="-")
        ax.annotate("", xy=pos[dst], xytext=pos[src],
                    arrowprops=dict(arrowstyle="-|>", shrinkA=16, shrinkB=16, connectionstyle="arc3,rad=0.08",
                                    mutation_scale=10, **style))
    for r, (x, y) in pos.items():
        face = "#d8ecd8" if r in ON_ROBOT else ("#eeeeee" if r in ANY_FLOOR else "#dbe6f4")
        edge = "tab:red" if r in bad else "0.2"
        ax.text(x, y, r, ha="center", va="center", fontsize=10, zorder=3,
                bbox=dict(boxstyle="round,pad=0.45", fc=face, ec=edge, lw=1.0))
    for floor in range(7):
        ax.text(-7.2, floor, f"floor {floor}", ha="left", va="center", fontsize=9, color="0.35")
        ax.axhline(floor, color="0.92", lw=0.6, zorder=0)
    ax.text(6.4, 3.1, "package data:\nany floor", ha="center", va="top", fontsize=8, color="0.35")
    ax.set_xlim(-7.4, 7.4)
    ax.set_ylim(-0.7, 6.6)
    ax.axis("off")
    ax.set_title("robonav rooms by floor (tools/import_graph.py). Solid: imported at import time; dashed: only "
                 "inside functions\n(cli's and demo's lazy imports, one per verb, left out). Green: runs on the "
                 "robot. A solid arrow never points up.", fontsize=9)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)


def write_table(text: str, design: Path) -> bool:
    """Replace the table between the markers in docs/design.md; True if the file changed."""
    doc = design.read_text()
    head, sep, rest = doc.partition(TABLE_BEGIN)
    _, sep2, tail = rest.partition(TABLE_END)
    if not sep or not sep2:
        raise SystemExit(f"{design}: markers {TABLE_BEGIN!r} ... {TABLE_END!r} not found; put them back")
    new = f"{head}{TABLE_BEGIN}\n{text}\n{TABLE_END}{tail}"
    if new != doc:
        design.write_text(new)
    return new != doc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--write", action="store_true", help="redraw docs/architecture.svg and the table in docs/design.md")
    args = p.parse_args(argv)
    imports = read_imports()
    text = table(imports)
    print(text)
    if args.write:
        draw(imports, REPO / "docs" / "architecture.svg")
        write_table(text, REPO / "docs" / "design.md")
        print("wrote docs/architecture.svg and the table in docs/design.md", file=sys.stderr)
    broken = floor_violations(imports) + heavy_violations(imports)
    for line in broken:
        print(f"import rule broken: {line}", file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
