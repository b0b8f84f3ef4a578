"""How every sensor kernel is compiled: ``numba.njit(cache=True, nogil=True)``, plus three safeguards.

1. No reference counting. Kernels compile with numba's runtime (NRT) off: they never allocate (numba refuses to
   compile an allocation then, which enforces "no allocation per call"), and array arguments of the small
   per-cell helpers cost no atomic increments; here that made the memory update three times faster.
2. Read-only installs. Numba caches machine code next to the source (``__pycache__``), else in the user's cache
   directory (``~/.cache/numba``); ``NUMBA_CACHE_DIR``, when set, is tried first. Where none is writable (a
   read-only image, a service user without a home), numba refuses ``cache=True`` at import time ("no locator
   available"); ``kernel`` then compiles without an on-disk cache and warns once: the code works, it compiles
   again in every process (``Preprocessor.warmup()`` does it before the control loop). Set ``NUMBA_CACHE_DIR``
   to a writable directory to keep the cache on such a system.
3. Stale caches. Numba re-validates a cached kernel against the source file that defines it only, not against
   the files of the kernels it calls (and inlines), so an upgrade that changed only memory.py would run the old
   memory code inside a cached step kernel. Every kernel's cache key here also carries a digest of all of
   robonav/sensors' sources, so any change there recompiles every kernel.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from numba import njit

F = TypeVar("F", bound=Callable[..., Any])

_warned = False


def _sources_digest() -> str:
    """sha256 of every module of robonav.sensors (empty where they cannot be read, e.g. from a zip)."""
    try:
        paths = sorted(Path(__file__).resolve().parent.glob("*.py"))
        return hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in paths)).hexdigest()
    except OSError:
        return ""


SOURCES_DIGEST = _sources_digest()


def kernel(fn: F) -> F:
    """Compile ``fn`` as ``njit(cache=True, nogil=True)`` without NRT (see the module docstring)."""
    return _compile(fn, {})


def allocating_kernel(fn: F) -> F:
    """Like ``kernel`` but with NRT on, for code that allocates its scratch (the planner's A*, once per plan)."""
    return _compile(fn, {"_nrt": True})


def inline_kernel(fn: F) -> F:
    """A small per-element helper: like ``kernel``, and also inlined into its callers in numba's IR
    (``inline="always"``)."""
    return _compile(fn, {"inline": "always"})


def _compile(fn: F, extra: dict[str, Any]) -> F:
    global _warned
    options: dict[str, Any] = {"nogil": True, "_nrt": False, **extra}
    try:
        dispatcher = njit(cache=True, **options)(fn)
    except RuntimeError as exc:
        if "no locator available" not in str(exc):
            raise
        if not _warned:
            _warned = True
            warnings.warn(
                f"robonav.sensors: numba found no writable cache directory ({exc}); kernels compile in every "
                "process. Set NUMBA_CACHE_DIR to a writable directory to cache them.",
                RuntimeWarning,
                stacklevel=3,
            )
        return njit(**options)(fn)  # type: ignore[no-any-return]
    _key_with_sources(dispatcher)
    return dispatcher  # type: ignore[no-any-return]


def _key_with_sources(dispatcher: Any) -> None:
    """Append SOURCES_DIGEST to the dispatcher's cache index key (numba's FunctionCache._index_key; left alone
    if a numba version lacks it, which only loses safeguard 3)."""
    cache = getattr(dispatcher, "_cache", None)
    index_key = getattr(cache, "_index_key", None)
    if cache is None or index_key is None:
        return

    def keyed(sig: Any, codegen: Any) -> tuple[Any, ...]:
        return (*index_key(sig, codegen), SOURCES_DIGEST)

    cache._index_key = keyed
