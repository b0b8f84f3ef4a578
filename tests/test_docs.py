"""The documentation lives in the repository and says what the committed results say.

* Nothing points outside the repository: no tracked text file names the old design file beside it, and every
  Markdown link to a repository path resolves to a file or folder that exists (and to a heading, when it names
  one in a Markdown page: GitHub's anchors).
* README.md is a front door: at most 250 lines.
* Figures: a number in README.md or docs/*.md that comes from a JSON file under results/ carries a marker right
  after it, and the number must equal the file's value rounded as printed::

      success 0.968<!-- fig: results/default_policy/results-default-test-500.json mean:success -->
      41.3 us<!-- fig: results/bench/step_latency.json rows.2.us_per_step -->   (the unit may sit between)
      +0.3 points<!-- fig: results/quantize/fp16.json success_diff x100 -->

  The marker is ``<!-- fig: FILE KEYS [xSCALE] -->``: FILE from the repository root; KEYS a dot path into the
  JSON (list items by index; a key holding a dot, such as ``test-c0.8``, is matched whole), or ``mean:FIELD``
  for the mean of FIELD over a list of rows (true counts 1); ``xSCALE`` multiplies first (percent: ``x100``).
  The number checked is the last one between the previous marker (or the line start) and this marker; it is
  compared at the decimals it is printed with (``0.968`` at 3, ``1,754,516`` at 0, ``1.4e-6`` in its mantissa).
  Every marker is checked; a missing file or key fails.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TEXT_SUFFIXES = {".md", ".py", ".yaml", ".yml", ".toml", ".h", ".service"}
IGNORED_DIRS = {".git", ".venv", "runs", "out", "typings", "__pycache__", "build", "dist"}
OUTSIDE = "../" + "shared"  # spelled in two parts so this file does not match itself
OLD_DESIGN = "DESIGN" + ".md"

MARKER = re.compile(r"<!--\s*fig:\s*(?P<file>\S+)\s+(?P<keys>\S+)(?:\s+x(?P<scale>[0-9.e+-]+))?\s*-->")
NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|\bsrc=\"([^\"]+)\"")


def tracked_files() -> list[Path]:
    """The repository's tracked files (git), or every file outside ignored folders where git is absent."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=60)
        names = [n for n in out.stdout.decode().split("\0") if n]
        if names:
            return [REPO / n for n in names if (REPO / n).is_file()]
    except (OSError, subprocess.CalledProcessError):
        pass
    return [p for p in REPO.rglob("*") if p.is_file() and not IGNORED_DIRS & set(p.relative_to(REPO).parts)]


def text_files() -> list[Path]:
    """Tracked text files: by suffix, plus the CI script and container recipes, which have none."""
    return [p for p in tracked_files()
            if p.suffix in TEXT_SUFFIXES or p.parent.name == ".ci" or p.name.startswith("Dockerfile")]


def doc_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _mentions(needle: str) -> list[str]:
    hits = []
    for path in text_files():
        for no, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if needle in line:
                hits.append(f"{path.relative_to(REPO)}:{no}: {line.strip()[:100]}")
    return hits


def test_no_file_points_at_the_shared_folder_beside_the_repository():
    hits = _mentions(OUTSIDE)
    assert not hits, f"{len(hits)} lines point outside the repository:\n" + "\n".join(hits)


def test_no_file_cites_the_old_design_file():
    """Fails until every citation of the design names docs/design.md (the old file lived outside the repo)."""
    hits = _mentions(OLD_DESIGN)
    assert not hits, (f"{len(hits)} lines cite {OLD_DESIGN}, which is not in the repository; cite docs/design.md "
                      "(same section names):\n" + "\n".join(hits))


def _link_targets(path: Path) -> list[tuple[int, str]]:
    out = []
    in_code = False
    for no, line in enumerate(path.read_text().splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_code = not in_code
        if in_code:
            continue
        for m in LINK.finditer(re.sub(r"`[^`]*`", "", line)):
            out.append((no, m.group(1) or m.group(2)))
    return out


def anchors(path: Path) -> set[str]:
    """The anchors GitHub gives a Markdown page: one per heading (lower case, punctuation dropped, spaces to
    hyphens, repeats numbered) and every explicit ``<a id="...">``."""
    out: set[str] = set(re.findall(r'<a id="([^"]+)"', path.read_text()))
    seen: dict[str, int] = {}
    in_code = False
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
        m = None if in_code else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def test_every_markdown_link_to_the_repository_resolves():
    broken = []
    for path in (p for p in tracked_files() if p.suffix == ".md"):
        for no, target in _link_targets(path):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                continue  # a web address: public projects are fine
            where = f"{path.relative_to(REPO)}:{no}: {target}"
            if target.startswith("/"):
                broken.append(f"{where} (an absolute path: link repository files relative to the page)")
                continue
            file, _, anchor = target.partition("#")
            resolved = (path.parent / file).resolve() if file else path
            if not resolved.is_relative_to(REPO):
                broken.append(f"{where} (outside the repository)")
            elif not resolved.exists():
                broken.append(f"{where} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                broken.append(f"{where} (no heading #{anchor} in {resolved.relative_to(REPO)})")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_readme_is_a_front_door():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines, at most 250: move detail into docs/"


def _value(data, keys: str) -> float:
    if keys.startswith("mean:"):
        field = keys.removeprefix("mean:")
        rows = [row[field] for row in data]
        return sum(float(v) for v in rows) / len(rows)
    rest = keys
    while rest:
        if isinstance(data, list):
            head, _, rest = rest.partition(".")
            data = data[int(head)]
            continue
        matches = [k for k in data if rest == k or rest.startswith(k + ".")]
        if not matches:
            raise KeyError(f"no key {rest.split('.')[0]!r} (has {sorted(data)[:12]})")
        key = max(matches, key=len)
        data, rest = data[key], rest[len(key) + 1:]
    return float(data)


def _printed_equals(printed: str, value: float) -> tuple[bool, str]:
    text = printed.replace(",", "").lstrip("+")
    mantissa, e, _ = text.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    expected = f"{value:.{decimals}e}" if e else f"{value:.{decimals}f}"
    return float(expected) == float(text), expected


def figure_markers() -> list[tuple[str, str, str, str, str | None]]:
    """(where, printed number, file, keys, scale) for every marker in README.md and docs/*.md."""
    out = []
    for path in doc_files():
        if not path.exists():
            continue
        for no, line in enumerate(path.read_text().splitlines(), 1):
            start = 0
            for m in MARKER.finditer(line):
                numbers = NUMBER.findall(line[start:m.start()])
                where = f"{path.relative_to(REPO)}:{no}"
                out.append((where, numbers[-1] if numbers else "", m["file"], m["keys"], m["scale"]))
                start = m.end()
    return out


def test_the_readme_carries_figure_markers():
    assert any(w.startswith("README.md") for w, *_ in figure_markers()), "README.md has no figure marker"


@pytest.mark.parametrize("where, printed, file, keys, scale", figure_markers())
def test_a_marked_figure_equals_its_result_file(where, printed, file, keys, scale):
    assert printed, f"{where}: no number before the marker for {file} {keys}"
    path = REPO / file
    assert path.is_file(), f"{where}: {file} does not exist (figures come from committed result files)"
    value = _value(json.loads(path.read_text()), keys) * (float(scale) if scale else 1.0)
    same, expected = _printed_equals(printed, value)
    assert same, f"{where}: printed {printed}, but {file} {keys} is {value!r} (printed so: {expected})"


def test_anchors_are_githubs(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# Design\n## On the robot (`robonav run`, `robonav build`)\n## R2D2's `default-q`\n## Notes\n"
                    "```\n## not a heading\n```\n## Notes\n<a id=\"guidance\"></a>\n")
    assert anchors(page) == {"design", "on-the-robot-robonav-run-robonav-build", "r2d2s-default-q", "notes",
                             "notes-1", "guidance"}


def test_the_figure_check_bites():
    assert _printed_equals("0.968", 0.9684)[0] and not _printed_equals("0.968", 0.9686)[0]
    assert _printed_equals("1,754,516", 1754516.0)[0] and not _printed_equals("1,754,516", 1754517.0)[0]
    assert _printed_equals("1.4e-6", 1.430511474609375e-06)[0] and not _printed_equals("1.5e-6", 1.43e-06)[0]
    assert _printed_equals("-0.6", -0.006 * 100)[0] and _printed_equals("+0.3", 0.003 * 100)[0]
    data = {"suites": {"test-c0.8": {"rows": [{"x": 2.5}]}}, "flags": [{"ok": True}, {"ok": False}]}
    assert _value(data, "suites.test-c0.8.rows.0.x") == 2.5
    assert _value(data["flags"], "mean:ok") == 0.5
    with pytest.raises(KeyError):
        _value(data, "suites.test.rows")
    m = next(MARKER.finditer("SPL 0.731, success 0.968 [0.9, 1.0]<!-- fig: results/a.json b x100 -->"))
    assert (m["file"], m["keys"], m["scale"]) == ("results/a.json", "b", "100")
    assert NUMBER.findall("took 6,257 ticks, 41.3 us, 1.4e-6 max")[-3:] == ["6,257", "41.3", "1.4e-6"]
