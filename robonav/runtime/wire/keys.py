"""The robot's wire key: read from a file named in the launch file or the environment, never the command line.

    key = load_key(settings.udp.key_file)   # None: no key configured (unsigned, loopback only)

Where it comes from, first found wins: the ``key_file`` setting (launch file), the file named by
``ROBONAV_WIRE_KEY_FILE``, the hex digits in ``ROBONAV_WIRE_KEY``. A key file holds the key as hex digits
(whitespace ignored), at least 32 (128 bits), 64 recommended; it must be readable by its owner only (``chmod 600``):
one that group or others may read is refused. The key never appears in a message, a log or a report.
Make one with ``write_key_file`` or ``python -c "import secrets; print(secrets.token_hex(32))" > robot.key;
chmod 600 robot.key``.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from robonav.atomic import write_text_atomic
from robonav.settings import SettingsError

__all__ = ["ENV_KEY", "ENV_KEY_FILE", "MIN_KEY_BYTES", "WireKeyError", "load_key", "read_key_file", "write_key_file"]

ENV_KEY_FILE = "ROBONAV_WIRE_KEY_FILE"
"""Environment variable naming a key file."""
ENV_KEY = "ROBONAV_WIRE_KEY"
"""Environment variable holding the key as hex digits."""
MIN_KEY_BYTES = 16
"""Shortest key accepted (128 bits)."""


class WireKeyError(SettingsError):
    """A wire key file or variable is missing, unreadable, readable by others, or not a key."""


def _parse(text: str, where: str) -> bytes:
    digits = "".join(text.split())
    try:
        key = bytes.fromhex(digits)
    except ValueError:
        raise WireKeyError(f"{where}: not a wire key: expected hex digits (e.g. 64 from "
                           "`python -c \"import secrets; print(secrets.token_hex(32))\"`).") from None
    if len(key) < MIN_KEY_BYTES:
        raise WireKeyError(f"{where}: the key has {len(key)} bytes, expected at least {MIN_KEY_BYTES} "
                           f"({2 * MIN_KEY_BYTES} hex digits; 64 recommended).")
    return key


def read_key_file(path: str | os.PathLike[str]) -> bytes:
    """The key in ``path``; refuses a file group or others may read, with what to do."""
    p = Path(os.path.expanduser(os.fspath(path)))
    try:
        st = p.stat()
    except OSError as e:
        raise WireKeyError(f"wire key file {p}: cannot read it ({e.strerror}); expected a file of hex digits, "
                           "mode 600.") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise WireKeyError(f"wire key file {p}: mode {stat.S_IMODE(st.st_mode):03o} lets group or others read it; "
                           f"expected 600: run `chmod 600 {p}`.")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise WireKeyError(f"wire key file {p}: cannot read it ({e}); expected a file of hex digits.") from None
    return _parse(text, f"wire key file {p}")


def load_key(key_file: str | None, env: Mapping[str, str] | None = None) -> bytes | None:
    """The wire key from ``key_file``, else ``$ROBONAV_WIRE_KEY_FILE``, else ``$ROBONAV_WIRE_KEY``; None if none
    is configured."""
    env = os.environ if env is None else env
    if key_file:
        return read_key_file(key_file)
    if env.get(ENV_KEY_FILE):
        return read_key_file(env[ENV_KEY_FILE])
    if env.get(ENV_KEY):
        return _parse(env[ENV_KEY], f"${ENV_KEY}")
    return None


def write_key_file(path: str | os.PathLike[str], key: bytes | None = None) -> bytes:
    """Write ``key`` (None: 32 fresh random bytes) to ``path`` as hex, mode 600, atomically; returns the key."""
    key = secrets.token_bytes(32) if key is None else key
    write_text_atomic(path, key.hex() + "\n")  # the temporary file is created 600 and renamed over path
    os.chmod(path, 0o600)
    return key
