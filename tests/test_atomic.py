"""robonav.atomic: a failed write leaves the old file whole and no temporary behind; a good one replaces it."""

from __future__ import annotations

import os
import stat

import pytest

from robonav.atomic import atomic_path, write_bytes_atomic, write_text_atomic


def test_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    p = tmp_path / "sub" / "f.json"
    write_text_atomic(p, "one")
    write_text_atomic(p, "two")
    assert p.read_text() == "two"
    assert sorted(os.listdir(p.parent)) == ["f.json"]


def test_a_writer_that_fails_leaves_the_old_file_whole(tmp_path):
    p = tmp_path / "w.npz"
    write_bytes_atomic(p, b"old")
    with pytest.raises(RuntimeError, match="disk gone"), atomic_path(p) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("disk gone")
    assert p.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["w.npz"]


def test_a_new_file_gets_the_umask_mode_and_a_replaced_one_keeps_its_own(tmp_path):
    old = os.umask(0o027)
    try:
        fresh = tmp_path / "fresh.json"
        write_text_atomic(fresh, "{}")
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o640  # 0o666 less the umask, not mkstemp's 0o600
        kept = tmp_path / "kept.json"
        kept.write_text("{}")
        kept.chmod(0o604)
        write_text_atomic(kept, "[]")
        assert stat.S_IMODE(kept.stat().st_mode) == 0o604 and kept.read_text() == "[]"
    finally:
        os.umask(old)
