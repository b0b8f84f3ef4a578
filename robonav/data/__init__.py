"""Package data: mazes, launch files, the robot description (and later default policies).

In a wheel, `launch/` and `sim/` from the repository root are mapped into this folder at build time
(pyproject.toml, `force-include`); in a checkout they stay at the top. `resource()` finds a file in both.
"""

from __future__ import annotations

from pathlib import Path

from robonav.errors import UserError

_HERE = Path(__file__).resolve().parent
_REPO = _HERE.parent.parent


class ResourceNotFoundError(UserError, FileNotFoundError):
    """A packaged file is missing from both the installed package and the checkout."""


def resource(*parts: str) -> Path:
    """Path of a packaged file, e.g. ``resource("launch", "train.yaml")`` or ``resource("mazes", "loop.txt")``.

    Looks in ``robonav/data/`` first (installed wheel), then at the repository root (checkout).
    """
    for base in (_HERE, _REPO):
        p = base.joinpath(*parts)
        if p.exists():
            return p
    raise ResourceNotFoundError(
        f"packaged file {'/'.join(parts)!r} not found under {_HERE} nor {_REPO}: "
        "the install is incomplete; reinstall robonav (pip install --force-reinstall robonav)"
    )


def maze_dir() -> Path:
    """Folder of the hand-drawn maze files shipped with robonav."""
    return _HERE / "mazes"
