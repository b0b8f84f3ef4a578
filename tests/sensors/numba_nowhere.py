"""A numba cache locator that finds nowhere to write, as on a read-only install without NUMBA_CACHE_DIR.

Used through ``NUMBA_CACHE_LOCATOR_CLASSES=numba_nowhere.NowhereLocator`` (the tests run as root, for whom no
directory is read-only, so permissions alone cannot stage this).
"""

from __future__ import annotations

from typing import Any


class NowhereLocator:
    """Declines every function, so numba has no locator and refuses cache=True."""

    @classmethod
    def from_function(cls, py_func: Any, py_file: str) -> None:
        return None
