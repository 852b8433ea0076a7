"""Directories of one sandboxed student process, and the grader's in-sandbox runtime files.

A ``WorkDir`` owns every path of one run (a notebook, a module, or a clean room)::

    <base>/                 the grader's; created fresh under the output folder's scratch space
        work/               the student process's cwd: a copy of the submission (writable inside)
            .grader/out/    what the student process hands back (untrusted: read via grader.channel)
            .grader/...     the student process's own HOME state (matplotlib, IPython, caches)
        job/                instructions for the runtime scripts (read-only inside the sandbox)
        grader/             the grader's own files (kernel log, kernelspec): never visible inside

Nothing the grader writes and later reads back lives where a student process can write.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from grader.execute.limits import Mount
from grader.execute.sandbox import remove_tree

INSIDE = Path(__file__).resolve().parent.parent / "inside"
RUNTIME_FILES = ("harvest.py", "module_runner.py", "cleanroom.py", "startup.py", "fastdata.py", "gpucap.py")
STUDENT_STATE = ".grader"  # the student process's own state in its work dir; intake ignores such folders


def install_runtime(destination: Path) -> Path:
    """Copy the scripts that run inside the sandbox to a directory mounted read-only there.

    They are copied rather than used in place so that the sandbox never needs a view of the
    grader's source tree (which sits beside the rubric and the reference solutions).
    """
    destination = destination.resolve()
    if destination.is_symlink():
        destination.unlink()
    destination.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_FILES:  # each replaced in one step: a concurrent run (another shard) never sees half a file
        staged = destination / f".{name}.{os.getpid()}.tmp"
        staged.unlink(missing_ok=True)
        shutil.copyfile(INSIDE / name, staged)
        staged.chmod(0o444)
        os.replace(staged, destination / name)  # replaces a link itself, never what it points at
    return destination


@dataclass(frozen=True)
class WorkDir:
    base: Path

    @property
    def root(self) -> Path:
        """The student process's working directory (and HOME): a copy of the submission."""
        return self.base / "work"

    @property
    def out(self) -> Path:
        """Where the student process writes its results (tensors, JSON)."""
        return self.root / STUDENT_STATE / "out"

    @property
    def state(self) -> Path:
        """The student process's own state (matplotlib, IPython profile, caches)."""
        return self.root / STUDENT_STATE

    @property
    def jobs(self) -> Path:
        """Instructions for the runtime scripts, mounted read-only."""
        return self.base / "job"

    def job_file(self, name: str) -> Path:
        return self.jobs / name

    @property
    def private(self) -> Path:
        """The grader's own files for this run; never mounted into the sandbox."""
        return self.base / "grader"

    @property
    def kernel_log(self) -> Path:
        return self.private / "kernel.log"

    @property
    def kernelspecs(self) -> Path:
        return self.private / "kernels"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def job_mounts(self) -> list[Mount]:
        return [Mount(self.jobs, self.jobs)]

    def data_mounts(self, public_dir: Path) -> list[Mount]:
        """MNIST where notebooks look for it: ``data/`` (the handout's root), ``../data`` (PyTorch's MNIST
        example) and, for ``root='.'``, ``MNIST/``."""
        mounts = [Mount(source=public_dir, target=self.data), Mount(source=public_dir, target=self.base / "data")]
        if not (self.root / "MNIST").exists():
            mounts.append(Mount(source=public_dir / "MNIST", target=self.root / "MNIST"))
        return mounts


def make_workdir(base: Path, submission_root: Path, files: list[Path]) -> WorkDir:
    """A fresh set of directories holding a copy of ``files`` (paths under ``submission_root``).

    ``base`` is a grader-chosen path under the grader's scratch space, unique per run. Its path
    is absolute: sandboxes bind it, and the kernel runs in it, whatever the grader's cwd.
    """
    work = WorkDir(base.resolve())
    remove_tree(work.base)
    work.root.mkdir(parents=True)
    for path in files:
        target = work.root / path.relative_to(submission_root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    work.out.mkdir(parents=True)
    work.jobs.mkdir()
    work.private.mkdir(mode=0o700)
    os.chmod(work.private, 0o700)
    return work
