"""The runtime folder: the scripts run inside sandboxes, installed so concurrent runs never see half a file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from grader.execute.workdir import INSIDE, RUNTIME_FILES, install_runtime


def test_installing_replaces_each_script_whole_and_never_follows_a_link(tmp_path: Path) -> None:
    runtime = install_runtime(tmp_path / "runtime")
    (runtime / "cleanroom.py").unlink()
    (runtime / "harvest.py").unlink()
    outside = tmp_path / "outside.txt"
    outside.write_text("not the grader's")
    os.symlink(outside, runtime / "harvest.py")
    install_runtime(runtime)  # a second shard installing into the same folder, after damage
    assert sorted(p.name for p in runtime.iterdir()) == sorted(RUNTIME_FILES), "no staged file left behind"
    for name in RUNTIME_FILES:
        path = runtime / name
        assert not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) == 0o444
        assert path.read_bytes() == (INSIDE / name).read_bytes()
    assert outside.read_text() == "not the grader's"
