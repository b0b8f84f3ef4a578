"""The root of robonav's errors (floor 0: imports nothing of robonav).

`RobonavError` is what robonav raises on purpose. `UserError` is the branch a user can cause (a bad flag, file,
setting, model or maze): the CLI prints it as one line, what, where, expected, what to do, with a non-zero exit
and no traceback (``--debug`` shows the traceback). Anything else that escapes is a bug and keeps its traceback.
Each module defines one small class per failure kind under these roots, usually also deriving from the builtin
it replaces (``ValueError``, ``OSError``) so existing ``except`` clauses keep working.
"""

from __future__ import annotations

__all__ = ["RobonavError", "UserError"]


class RobonavError(Exception):
    """Root of every exception robonav raises on purpose."""


class UserError(RobonavError):
    """Caused by what a user gave (a flag, a file, a setting, a model): printed as one line, never a traceback."""
