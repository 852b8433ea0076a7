"""Atomic writes: all or nothing, with the permissions a plain write would give."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from grader import fsutil
from grader.fsutil import atomic_write_bytes, atomic_write_text


def test_an_atomic_write_gets_the_mode_of_a_plain_write(tmp_path: Path) -> None:
    atomic_write_text(tmp_path / "gradebook.csv", "student,total\n")
    plain = tmp_path / "plain.csv"
    plain.write_text("student,total\n")
    assert stat.S_IMODE((tmp_path / "gradebook.csv").stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    assert stat.S_IMODE(plain.stat().st_mode) == 0o666 & ~fsutil._UMASK


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "evidence.json"
    atomic_write_text(target, "old")

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_bytes(target, b"new")
    assert target.read_text() == "old"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["evidence.json"]
